//! The runner's flags, fuzzed: random command lines from a fixed seed must parse or
//! be refused with a message, never panic, and a parsed one must turn into QEMU
//! arguments or a message.
use super::*;

use rand_core::{Rng as _, SeedableRng};
use rand_xorshift::XorShiftRng as Rng;

const FLAGS: &[&str] = &[
    "--smp",
    "--mem",
    "--uefi",
    "--accel",
    "--cpu",
    "--timeout",
    "--args",
    "--gdb",
    "--usb",
    "--kernel",
    "run",
    "test",
    "bench",
    "image",
    "flash",
    "setup",
    "--iters",
    "--os",
    "--bogus",
    "-x",
];
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "4",
    "288",
    "289",
    "-1",
    "4294967296",
    "512M",
    "0M",
    "1M",
    "2G",
    "2T",
    "9999999999999G",
    "512Q",
    "tcg",
    "kvm",
    "max",
    "host",
    "qemu64,-x2apic",
    "Skylake-Server",
    "EPYC-v4",
    "a b",
    "log=debug",
    "\u{0}",
    "--",
    "=",
    "/nonexistent",
    "\u{e9}",
];

#[test]
fn fuzzed_command_lines_parse_or_are_refused_without_panicking() {
    let mut rng = Rng::seed_from_u64(0x5eed_1234_abcd_0001);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..5000 {
        let mut argv = vec!["gatheros".to_string()];
        for _ in 0..rng.next_u64() % 8 {
            argv.push(FLAGS[rng.next_u64() as usize % FLAGS.len()].to_string());
            if rng.next_u64() % 3 != 0 {
                argv.push(VALUES[rng.next_u64() as usize % VALUES.len()].to_string());
            }
        }
        match Cli::try_parse_from(&argv) {
            Ok(cli) => {
                ok += 1;
                let run = match &cli.command {
                    Some(Cmd::Run(r)) | Some(Cmd::Test { run: r, .. }) => r,
                    _ => &cli.run,
                };
                if run.accel == Accel::Tcg {
                    let _ = qemu::args(&run.qemu(), std::path::Path::new("/tmp/x.img"));
                }
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    eprintln!("runner-fuzz: seed=0x5eed1234abcd0001 cases=5000 parsed={ok} refused={refused}");
    assert!(ok > 0 && refused > 0);
}

#[test]
fn value_parsers_refuse_with_messages() {
    for s in ["", "0", "289", "-3", "x"] {
        assert!(qemu::parse_smp(s).is_err(), "{s}");
    }
    for s in ["", "0M", "1M", "9999999999999G", "512Q", "M"] {
        assert!(qemu::parse_mem(s).is_err(), "{s}");
    }
    for s in ["512M", "2G", "64", "1T"] {
        assert!(qemu::parse_mem(s).is_ok(), "{s}");
    }
}

#[test]
fn the_trace_command_takes_the_benchmarks_names_and_boots_its_options() {
    let parse = |args: &str| Cli::try_parse_from(format!("gatheros trace {args}").split_whitespace());
    let Ok(Cli {
        command: Some(Cmd::Trace(plan)),
        ..
    }) = parse("--op collapse --scen C")
    else {
        panic!("trace --op collapse --scen C does not parse");
    };
    assert_eq!((plan.smp, plan.out.to_str()), (4, Some("trace-out")));
    assert_eq!(
        plan.boot_args(),
        "bench=tlb bench.ops=collapse bench.scen=C bench.iters=1 trace=tlb tlb.sync=broadcast tlb.backend=native"
    );
    let Ok(Cli {
        command: Some(Cmd::Trace(plan)),
        ..
    }) = parse("--op unshare --scen A --mode invlpgb --sync targeted --smp 2")
    else {
        panic!("with a mode and a sync form it does not parse");
    };
    assert!(
        plan.boot_args().ends_with("tlb.sync=targeted setcpuid=invlpgb"),
        "{}",
        plan.boot_args()
    );
    for bad in [
        "--op collapse",
        "--op bogus --scen C",
        "--op collapse --scen D",
        "--op collapse --scen C --sync skip",
    ] {
        let e = parse(bad).err().unwrap_or_else(|| panic!("{bad} parsed"));
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn trace_cost_takes_rounds_and_only_gatheros() {
    let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
    match parse("gatheros bench --trace-cost --rounds 3 --smp 4").map(|c| c.command) {
        Ok(Some(Cmd::Bench {
            trace_cost: true,
            rounds: 3,
            ..
        })) => {}
        Ok(_) => panic!("not a trace-cost bench"),
        Err(e) => panic!("{e}"),
    }
    assert!(
        parse("gatheros bench --rounds 3").is_err(),
        "--rounds without --trace-cost"
    );
    assert!(parse("gatheros bench --trace-cost --os linux").is_err());
}
