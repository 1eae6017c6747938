//! `cargo test` entry for the in-kernel tests: boots the kernel in QEMU in every
//! configuration below and runs the tests registered with `ktest::kernel_test!`.
//!
//! This is a `harness = false` test so that `cargo test -- <filter>` reaches the kernel:
//! the filters, `--exact` and `--skip` are passed to it as boot options. Set
//! `GATHEROS_TEST_CONFIGS` (e.g. `bios:1,uefi:4`) to choose configurations.
//!
//! Time bounds are progress-based, so that a slow boot on a busy host is not a failure:
//! a boot is killed when it prints no line for `GATHEROS_TEST_TIMEOUT` seconds (default
//! [`SILENCE_SECS`]; the longest quiet stretch of a healthy run is one test, and the
//! kernel's own waits fail it long before), and in any case after [`WHOLE_BOOT_FACTOR`]
//! times that. A failure prints what the boot produced: its failures and last lines.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use boot::image::Firmware;
use boot::qemu::QemuConfig;
use boot::testrun::{self, Selection};

/// The configurations `cargo test` boots (firmware, CPUs, extra boot options).
///
/// Tests declare what they need (`kernel_test!(needs(..) ...)`: CPUs, backend,
/// firmware) and a configuration without it reports them as ignored; they declare their
/// suite too (`needs(watchdog())`, `needs(soak())`), and a configuration picks suites
/// with `test.suites=` (default: quick and watchdog). The paravirt and INVLPGB boots run
/// the tests about the flush backend (`test.backend_tests=on`: those limited to some
/// backends, `needs(pv())`, `needs(handler_flush())`, ..., or declared
/// `needs(per_backend())`). No configuration names tests: the race and oracle tests
/// declare `up_to_cpus(16)` (minutes at 64 CPUs under TCG), so `-smp 64` reports them as
/// ignored, and `-smp 288` runs the tests about scale (`test.scale_tests=on`: those
/// declared `scale()`, the cross-call, TLB, heap and watchdog tests).
///
/// Both firmwares, odd and even CPU counts up to 64, xAPIC forced, the paravirt flush
/// backend, INVLPGB as the hardware behaves (emulated: no handler runs on other CPUs),
/// and `-smp 288`: APIC IDs above 255, x2APIC only (about a minute under TCG on two
/// cores). The watchdog suite reboots once (its fatal case), so it runs in three
/// configurations. The soak suite (`kernel/src/ktests/soak.rs`) runs at `-smp 4`
/// natively and under pv, 5000 table frees each here (about 40 s each under TCG on two
/// cores, twice that on a loaded host; the full 10^5 is `soak.tables=100000`, 12 to 23
/// minutes per backend).
const CONFIGS: &[(Firmware, u32, &str)] = &[
    (Firmware::Bios, 1, QUICK),
    (Firmware::Bios, 2, QUICK),
    // Traced (`trace=tlb`): the order tests read the recorded events (about 7 s here);
    // with early acknowledgement (`mm::flush` rule 8), which the trace shows.
    (
        Firmware::Bios,
        4,
        "trace=tlb tlb.early_ack=on test.suites=quick,watchdog",
    ),
    // The initiator's local flush after the wait (`serial`; the oracle runs every round
    // mode in each configuration, the race detector and the rest the boot's).
    (Firmware::Bios, 7, "tlb.local_flush=serial test.suites=quick"),
    (Firmware::Bios, 64, "tlb.early_ack=on test.suites=quick"),
    (Firmware::Bios, 4, "apic=xapic test.suites=quick,watchdog"),
    (Firmware::Uefi, 1, QUICK),
    (Firmware::Uefi, 4, QUICK),
    (Firmware::Bios, 2, PV),
    // Early acknowledgement under pv too, traced (where the local flush runs).
    (
        Firmware::Bios,
        4,
        "trace=tlb tlb.early_ack=on tlb.backend=pv test.suites=quick test.backend_tests=on",
    ),
    (Firmware::Bios, 8, PV),
    (
        Firmware::Bios,
        2,
        "setcpuid=invlpgb test.suites=quick test.backend_tests=on",
    ),
    // The soaks, each in a boot of its own (about 40 s each here).
    (Firmware::Bios, 4, "test.suites=soak soak.tables=5000"),
    (
        Firmware::Bios,
        4,
        "tlb.backend=pv test.suites=soak soak.tables=5000",
    ),
    (
        Firmware::Bios,
        288,
        "test.suites=quick,watchdog test.scale_tests=on",
    ),
];

/// Default of `GATHEROS_TEST_TIMEOUT`: seconds a boot may print nothing. A healthy
/// test prints its line within 2 minutes even at `-smp 288` on a loaded two-core host
/// (the longest, the all-to-all call storm, joins its tasks within 120 s or fails).
const SILENCE_SECS: u64 = 300;
/// A whole boot is bounded by this many times the silence bound (a boot that keeps
/// printing but never ends).
const WHOLE_BOOT_FACTOR: u64 = 12;

/// The in-kernel tests that read the trace: a configuration with `trace=tlb` runs them.
const TRACE_ORDER_TESTS: &str = "test kernel::ktests::trace_order::";

/// Boot options of most native-backend configurations: the quick suite.
const QUICK: &str = "test.suites=quick";
/// Boot options of the paravirt-backend configurations: only the tests about the backend.
const PV: &str = "tlb.backend=pv test.suites=quick test.backend_tests=on";

struct Options {
    selection: Selection,
    list: bool,
    ignored: bool,
    nocapture: bool,
}

fn parse_args() -> Options {
    let mut o = Options {
        selection: Selection::default(),
        list: false,
        ignored: false,
        nocapture: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--exact" => o.selection.exact = true,
            "--list" => o.list = true,
            "--ignored" => o.ignored = true,
            "--nocapture" | "--show-output" => o.nocapture = true,
            "--skip" => o.selection.skips.extend(args.next()),
            // Options that take a value and do not concern us.
            "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                args.next();
            }
            _ if a.starts_with("--skip=") => o.selection.skips.push(a["--skip=".len()..].to_string()),
            _ if a.starts_with('-') => {}
            _ => o.selection.filters.push(a),
        }
    }
    o
}

fn configs() -> Vec<(Firmware, u32, String)> {
    let Ok(spec) = std::env::var("GATHEROS_TEST_CONFIGS") else {
        return CONFIGS.iter().map(|&(f, n, a)| (f, n, a.to_string())).collect();
    };
    // `firmware:cpus[:boot options]`, comma-separated, e.g. `bios:288,bios:4:apic=xapic`.
    spec.split(',')
        .filter_map(|c| {
            let mut parts = c.trim().splitn(3, ':');
            let fw = if parts.next()? == "uefi" {
                Firmware::Uefi
            } else {
                Firmware::Bios
            };
            let smp = parts.next()?.parse().ok()?;
            Some((fw, smp, parts.next().unwrap_or("").to_string()))
        })
        .collect()
}

fn interesting(line: &str) -> bool {
    line.starts_with("test ")
        || line.starts_with("smp: ")
        || line.starts_with("panic:")
        || line.starts_with("  reason:")
        || testrun::parse_summary(line).is_some()
}

fn main() -> ExitCode {
    let opts = parse_args();
    if opts.list || opts.ignored {
        // In-kernel tests are listed by booting (`cargo run -- test`); `--ignored` has
        // nothing to run: a test is ignored by the machine it boots on (its `needs`).
        return ExitCode::SUCCESS;
    }
    if let Err(e) = boot::install::ensure() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let start = Instant::now();
    let silence = std::env::var("GATHEROS_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SILENCE_SECS);
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut passed, mut failed, mut ignored, mut broken) = (0, 0, 0, Vec::new());
    for (firmware, smp, extra) in configs() {
        let name = format!(
            "{firmware} smp={smp}{}{extra}",
            if extra.is_empty() { "" } else { " " }
        );
        println!("\nkernel tests: {name}");
        let began = Instant::now();
        let cfg = QemuConfig {
            firmware,
            smp,
            timeout: Duration::from_secs(silence * WHOLE_BOOT_FACTOR),
            silence: Some(Duration::from_secs(silence)),
            ..Default::default()
        };
        let mut log = Vec::new();
        let result = testrun::run(&cfg, &opts.selection, &extra, dir.path(), |l| {
            if opts.nocapture || interesting(l) {
                println!("{l}");
            }
            log.push(l.to_string());
        });
        let want = format!("smp: {smp}/{smp} CPUs online");
        // A configuration that asks for a backend must get it: its tests would otherwise
        // all be reported ignored (their `needs`) and the configuration pass.
        let backend = if extra.contains("tlb.backend=pv") {
            "tlb: backend=pv "
        } else if extra.contains("setcpuid=invlpgb") {
            "tlb: backend=invlpgb "
        } else {
            "tlb: backend="
        };
        // A traced configuration must run the order tests (`needs(traced())`): were the
        // key not on, they would all be reported ignored and the configuration pass.
        let every_test = opts.selection.filters.is_empty() && opts.selection.skips.is_empty();
        let traced_ran = log
            .iter()
            .filter(|l| l.starts_with(TRACE_ORDER_TESTS) && !l.contains(" ... ignored"))
            .count();
        let result = result.and_then(|r| {
            if !log.iter().any(|l| l.starts_with(&want)) {
                Err(format!("the kernel did not log `{want}`"))
            } else if !log.iter().any(|l| l.starts_with(backend)) {
                Err(format!("the kernel did not log `{backend}...`"))
            } else if extra.contains("trace=tlb") && every_test && traced_ran == 0 {
                Err(format!("trace=tlb: no `{TRACE_ORDER_TESTS}...` test ran"))
            } else {
                Ok(r)
            }
        });
        match result {
            Ok(r) => {
                passed += r.passed;
                failed += r.failed;
                ignored += r.ignored;
                if r.failed > 0 {
                    if !opts.nocapture {
                        let failed = format!("{} failed, {} passed", r.failed, r.passed);
                        println!("--- {name} ---\n{}", boot::qemu::describe(&failed, &log));
                    }
                    broken.push(format!("{name}: {}", r.failures.join(", ")));
                }
            }
            Err(e) => {
                if !opts.nocapture {
                    println!("--- full kernel output ({name}) ---\n{}", log.join("\n"));
                }
                println!("error: {name}: {e}");
                failed += 1;
                broken.push(format!("{name}: {e}"));
            }
        }
        // Where `cargo test`'s time goes (it must stay under about 15 minutes).
        println!("kernel tests: {name}: {:.0} s", began.elapsed().as_secs_f64());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nkernel-tests: total={} passed={passed} failed={failed} ignored={ignored}",
        passed + failed
    );
    if passed + failed == 0 && opts.selection.filters.is_empty() {
        println!("error: no in-kernel test ran");
        failed = 1;
    }
    for b in &broken {
        println!("failed: {b}");
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "test result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; 0 filtered out; finished in {secs:.2}s\n"
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
