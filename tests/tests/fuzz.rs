//! Real boots with fuzzed boot options: random CPU counts, memory sizes, firmware and
//! option words (known keys with random values, unknown keys, garbage) from a fixed seed.
//! Every boot must end `gatherOS: done (ok)` (the exit code, and the line where `log=`
//! shows `info` lines): a bad word is refused with one logged line (`options: ...`) and
//! the kernel goes on with its default. The options that choose what runs instead of the
//! demo (`bench*`, `test*`) and the test-only breakage (`tlb.break`,
//! `tlb.table_sync=force-skip`) are left out here; the parser's own fuzz test
//! (`kernel/src/ktests/options_fuzz.rs`) covers every key.

use std::time::Duration;

use boot::image::{self, Firmware};
use boot::qemu::{self, QemuConfig, Verdict};
use rand_core::{Rng as _, SeedableRng};
use rand_xorshift::XorShiftRng as Rng;

/// Boots tried (each about 10 s under TCG).
const BOOTS: usize = 4;
/// The seed of the generator (rand_xorshift's; fixed: a failure is reproducible).
const SEED: u64 = 0xf00d_5eed_0000_0013;

/// The kernel's table of the keys it knows (`options::KEYS`), read from its source so
/// that the list is written once.
const KERNEL_OPTIONS: &str = include_str!("../../kernel/src/options/mod.rs");

/// The keys fuzzed here: the kernel's, less those that choose what runs (`bench*`,
/// `test*`) and the test-only breakage; plus a feature key, an unknown key and none.
fn keys() -> Vec<&'static str> {
    let table = KERNEL_OPTIONS
        .split_once("pub const KEYS: &[OptionKey] = &[")
        .and_then(|(_, rest)| rest.split_once("\n];"))
        .expect("kernel/src/options/mod.rs has no KEYS table")
        .0;
    let mut keys: Vec<&str> = table
        .split("key(")
        .skip(1)
        .filter_map(|row| row.trim_start().strip_prefix('"')?.split_once('"'))
        .map(|(name, _)| name)
        .filter(|k| !k.starts_with("bench") && !k.starts_with("test") && *k != "tlb.break")
        .collect();
    assert!(
        keys.contains(&"tlb.backend") && keys.contains(&"soak.tables"),
        "KEYS read wrongly: {keys:?}"
    );
    keys.extend(["cpuid.pcid", "frobnicate", ""]);
    keys
}

const VALUES: &[&str] = &[
    "",
    "on",
    "off",
    "0",
    "1",
    "50",
    "-1",
    "18446744073709551616",
    "pv",
    "native",
    "xapic",
    "x2apic",
    "debug",
    "warn",
    "always",
    "decided",
    "fail",
    "ok",
    "invlpgb",
    "pcid",
    "x2apic",
    "zzz",
    "=",
];

fn words(rng: &mut Rng, keys: &[&str]) -> String {
    let mut w = Vec::new();
    for _ in 0..rng.next_u64() % 7 {
        let (k, v) = (
            keys[rng.next_u64() as usize % keys.len()],
            VALUES[rng.next_u64() as usize % VALUES.len()],
        );
        w.push(if k.is_empty() {
            v.to_string()
        } else {
            format!("{k}={v}")
        });
    }
    w.join(" ")
}

/// Whether a boot with these options logs `info` lines (`gatherOS: done (ok)` is one): not
/// when the last `log=` word the kernel takes names `warn`, `error` or `off`.
fn logs_info(args: &str) -> bool {
    let levels = ["off", "error", "warn", "info", "debug", "trace"];
    args.split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix("log="))
        .filter_map(|value| levels.iter().position(|l| l.eq_ignore_ascii_case(value)))
        .next_back()
        .is_none_or(|level| level >= 3)
}

#[test]
fn fuzzed_boot_options_are_refused_or_taken_and_every_boot_ends_ok() {
    boot::install::ensure().expect("QEMU");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut rng = Rng::seed_from_u64(SEED);
    let keys = keys();
    for boot in 0..BOOTS {
        let smp = [1, 2, 3, 4, 8][rng.next_u64() as usize % 5];
        let mem = ["128M", "256M", "512M", "1G"][rng.next_u64() as usize % 4].to_string();
        let firmware = if rng.next_u64() % 3 == 0 {
            Firmware::Uefi
        } else {
            Firmware::Bios
        };
        let args = words(&mut rng, &keys);
        let cfg = QemuConfig {
            firmware,
            smp,
            mem: mem.clone(),
            // Progress-based: a boot on a busy host is slow, not silent.
            timeout: Duration::from_secs(900),
            silence: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let img = dir.path().join(format!("fuzz-{boot}.img"));
        image::build(&image::kernel_elf(), firmware, &args, &img).expect("image");
        println!("fuzz boot {boot}: {firmware} smp={smp} mem={mem} args={args:?}");
        let what = format!("boot {boot} ({firmware} smp={smp} mem={mem} args={args:?})");
        let out = qemu::run(&cfg, &img, |_| {}).unwrap_or_else(|e| panic!("{what}: {e}"));
        let refusals: Vec<&String> = out.lines.iter().filter(|l| l.contains("options: ")).collect();
        for r in &refusals {
            println!("  {r}");
        }
        // The exit code says ok; the line says it too unless `log=` hides `info` lines.
        let done_line = out.lines.iter().any(|l| l.contains("gatherOS: done (ok)"));
        assert!(
            out.verdict == Verdict::Success && (done_line || !logs_info(&args)),
            "{what} did not end `gatherOS: done (ok)`:\n{}",
            out.describe()
        );
    }
}
