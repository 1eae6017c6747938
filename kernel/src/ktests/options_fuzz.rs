//! Fuzzing the boot options (in the kernel, where they are parsed): thousands of option
//! texts from a fixed seed, made of every known key, unknown keys and hostile values
//! (empty, huge, negative, overlong, odd bytes). Parsing must never panic; every unknown
//! key and bad value comes back as an error, which boot logs as one line and ignores.
//! Real boots with fuzzed options are `tests/tests/fuzz.rs`.

extern crate alloc;
use alloc::string::String;
use alloc::vec::Vec;

use rand_core::{Rng as _, SeedableRng};
use rand_xorshift::XorShiftRng as Rng;

use crate::options::{BootOptions, KEYS, OptionError};

/// Option texts tried.
const CASES: usize = 3000;
/// The seed of the generator (rand_xorshift's; fixed: a failure is reproducible).
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// A number below `n`.
fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// One of `items` (not empty).
fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[below(rng, items.len())]
}

const VALUES: &[&str] = &[
    "",
    "on",
    "off",
    "0",
    "1",
    "-1",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "pv",
    "native",
    "xapic",
    "x2apic",
    "debug",
    "trace",
    "always",
    "force-skip",
    "decided",
    "fail",
    "ok",
    "stride",
    "lazy",
    "noflush",
    "none",
    "smp",
    "tlb",
    "unmap,collapse",
    "A,B,C",
    "busy",
    "halt",
    "invlpgb",
    "pcid",
    "x2apic,pcid",
    "==",
    "=on",
    "\u{e9}t\u{e9}",
    "0x10",
    "1e9",
    " ",
];

fn value(rng: &mut Rng) -> String {
    match below(rng, 4) {
        0 => {
            // Random printable bytes, up to 300 of them.
            let n = below(rng, 300);
            (0..n).map(|_| (b'!' + below(rng, 94) as u8) as char).collect()
        }
        1 => alloc::format!("{}", rng.next_u64()),
        _ => String::from(pick(rng, VALUES)),
    }
}

fn key(rng: &mut Rng) -> String {
    match below(rng, 8) {
        0 => alloc::format!(
            "cpuid.{}",
            pick(rng, &["x2apic", "pcid", "invlpgb", "nonsense", ""])
        ),
        1 => value(rng),
        _ => String::from(KEYS[below(rng, KEYS.len())].name),
    }
}

fn option_text(rng: &mut Rng) -> String {
    let words = below(rng, 12);
    let mut text = String::new();
    for _ in 0..words {
        let k = key(rng);
        text.push_str(&k);
        if below(rng, 5) != 0 {
            text.push('=');
            text.push_str(&value(rng));
        }
        text.push(' ');
    }
    text
}

ktest::kernel_test!(
    fn fuzzed_boot_options_parse_without_panicking_and_unknown_keys_are_refused() {
        let mut rng = Rng::seed_from_u64(SEED);
        let (mut refused, mut accepted) = (0usize, 0usize);
        // Parse wants `'static` text (the ramdisk's); one buffer is reused per case.
        let buf: &'static mut String = alloc::boxed::Box::leak(alloc::boxed::Box::new(String::new()));
        for _ in 0..CASES {
            let text = option_text(&mut rng);
            buf.clear();
            buf.push_str(&text);
            // SAFETY: `buf` lives forever; the parse result is dropped before it changes.
            let stat: &'static str = unsafe { &*(buf.as_str() as *const str) };
            let (_, errors): (BootOptions, Vec<OptionError>) = BootOptions::parse(stat);
            for e in &errors {
                if let OptionError::UnknownKey(k) = e {
                    assert!(
                        !KEYS.iter().any(|key| key.name == *k),
                        "a known key was refused: {k} in {text:?}"
                    );
                }
            }
            refused += errors.len();
            accepted += text.split_ascii_whitespace().count().saturating_sub(errors.len());
        }
        log::info!(
            "options-fuzz: seed={SEED:#x} cases={CASES} words_refused={refused} words_accepted={accepted}"
        );
        assert!(refused > 0 && accepted > 0);
    }
);

ktest::kernel_test!(
    fn every_listed_key_is_known_to_the_parser() {
        for k in KEYS.iter().map(|key| key.name) {
            let text = alloc::format!("{k}=on");
            let text: &'static str = alloc::boxed::Box::leak(text.into_boxed_str());
            let (_, errors) = BootOptions::parse(text);
            assert!(
                !errors.contains(&OptionError::UnknownKey(k)),
                "{k} is listed in KEYS but refused"
            );
        }
    }
);
