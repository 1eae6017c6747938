//! The in-kernel test harness.
//!
//! Runs the tests registered with `ktest::kernel_test!` on the real boot path, sorted by
//! name, filtered as `cargo test -- <filter>` would. The kernel has no unwinding, so a
//! panicking test ends the boot: the panic handler reports the test (ok for
//! `should_panic`, FAILED otherwise), prints a `harness: resume ...` line and exits with
//! the `Resume` verdict; the host boots again with `test.start` past it and the results
//! so far, so one run still ends with a single `N passed, N failed` line.

extern crate alloc;
use alloc::vec::Vec;
use arch::qemu_exit::{ExitCode, exit};
use core::sync::atomic::{AtomicUsize, Ordering};
use ktest::registry::{Firmware, KERNEL_TESTS, KernelTest, Machine};
use spin::Once;

use crate::options::TestOptions;

const NO_TEST: usize = usize::MAX;

struct Run {
    tests: Vec<&'static KernelTest>,
    passed: AtomicUsize,
    failed: AtomicUsize,
    ignored: AtomicUsize,
    current: AtomicUsize,
}

static RUN: Once<Run> = Once::new();

/// Whether `test` is selected by the options' suites, backend and scale selections,
/// filters and skips.
pub fn selected(test: &KernelTest, opts: &TestOptions) -> bool {
    opts.suites.contains(&test.needs.suite)
        && (!opts.backend_tests || test.needs.about_the_backend())
        && (!opts.scale_tests || test.needs.about_scale)
        && selected_by_name(test.name, opts)
}

/// Whether `name` is selected by the options' filters and skips.
pub fn selected_by_name(name: &str, opts: &TestOptions) -> bool {
    let matches = |f: &&str| if opts.exact { name == *f } else { name.contains(*f) };
    (opts.filters.is_empty() || opts.filters.iter().any(matches))
        && !opts.skips.iter().any(|s| name.contains(*s))
}

/// Runs the selected tests from `opts.start` on, then exits QEMU with the verdict.
pub fn run(opts: &TestOptions, firmware: Option<Firmware>) -> ! {
    let mut tests: Vec<&'static KernelTest> = KERNEL_TESTS.iter().filter(|t| selected(t, opts)).collect();
    tests.sort_unstable_by_key(|t| t.name);
    let run = RUN.call_once(|| Run {
        tests,
        passed: AtomicUsize::new(opts.passed),
        failed: AtomicUsize::new(opts.failed),
        ignored: AtomicUsize::new(opts.ignored),
        current: AtomicUsize::new(NO_TEST),
    });
    crate::console::panic::set_observer(&Harness);
    // The tests keep Linux's lazy TLB (`never`) unless the boot asks for a policy: most
    // were written about CPUs that hold an address space lazily, and under the product's
    // `deep` a CPU that sleeps through a tick (any tick, on a loaded host) lets go, so
    // their verdicts would depend on the host's load. The idle-leave tests set each
    // policy themselves (`ktests::idle_leave`), and the oracle runs under every one.
    if crate::options::boot_options().idle.is_none() {
        crate::sched::set_idle_policy(bench_spec::Idle::Never);
        log::info!("idle: leave_mm=never (the tests' default)");
    }
    if opts.start == 0 {
        let other_suites = KERNEL_TESTS
            .iter()
            .filter(|t| !opts.suites.contains(&t.needs.suite) && selected_by_name(t.name, opts))
            .count();
        let mut suites = alloc::string::String::new();
        for (k, s) in opts.suites.iter().enumerate() {
            suites.push_str(if k == 0 { "" } else { "," });
            suites.push_str(s.name());
        }
        log::info!("harness: running {} tests", run.tests.len());
        log::info!("harness: suites={suites} in_other_suites={other_suites}");
    }
    let machine = Machine {
        cpus: arch::cpus::count(),
        backend: crate::tlb::mmu().backend.kind(),
        firmware,
        traced: crate::tracing::enabled(),
    };
    for (i, test) in run.tests.iter().enumerate().skip(opts.start) {
        if let Some(why) = test.needs.unmet(&machine) {
            log::info!("test {} ... ignored ({why})", test.name);
            run.ignored.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        crate::tlb::settle();
        let frames_before = crate::mem::frames_used_outside_heap();
        run.current.store(i, Ordering::SeqCst);
        (test.run)();
        // Still this test's: a panic while its deferred frees drain is its failure.
        crate::tlb::settle();
        let leaked = crate::mem::frames_used_outside_heap() as i64 - frames_before as i64;
        run.current.store(NO_TEST, Ordering::SeqCst);
        if test.should_panic {
            log::info!("test {} ... FAILED", test.name);
            log::info!("  reason: test did not panic as expected");
            run.failed.fetch_add(1, Ordering::SeqCst);
        } else if leaked != 0 {
            // Every test gives back what it took: the frame count is the machine's check
            // that tables, pages and roots were really freed (not only counted).
            log::info!("test {} ... FAILED", test.name);
            log::info!("  reason: harness: frames_leaked={leaked} (in use outside the heap, after settle)");
            run.failed.fetch_add(1, Ordering::SeqCst);
        } else {
            log::info!("test {} ... ok", test.name);
            run.passed.fetch_add(1, Ordering::SeqCst);
        }
    }
    finish(run)
}

/// The summary line the host parses: `N passed, N failed` (`, N ignored` if any).
/// Formatted without allocating: the panic path prints it too.
struct Summary(usize, usize, usize);

impl core::fmt::Display for Summary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} passed, {} failed", self.0, self.1)?;
        if self.2 > 0 {
            write!(f, ", {} ignored", self.2)?;
        }
        Ok(())
    }
}

fn summary(run: &Run) -> Summary {
    Summary(
        run.passed.load(Ordering::SeqCst),
        run.failed.load(Ordering::SeqCst),
        run.ignored.load(Ordering::SeqCst),
    )
}

fn finish(run: &Run) -> ! {
    let failed = run.failed.load(Ordering::SeqCst);
    log::info!("{}", summary(run));
    if failed == 0 {
        crate::exit::done_ok()
    }
    log::info!("gatherOS: done (failed)");
    crate::exit::exit_held(ExitCode::Failure)
}

/// Whether the panic's message contains `expected` (within its first 512 bytes; formatted
/// without allocating, on the panic path).
fn message_contains(info: &core::panic::PanicInfo, expected: &str) -> bool {
    let m = crate::console::line_buf::LineBuf::format(format_args!("{}", info.message()));
    expected.is_empty()
        || m.as_bytes()
            .windows(expected.len())
            .any(|w| w == expected.as_bytes())
}

/// The harness as the panic handler's observer: [`on_panic`].
struct Harness;

impl crate::console::panic::PanicObserver for Harness {
    fn on_panic(&self, info: &core::panic::PanicInfo) {
        on_panic(info)
    }
}

/// Called by the panic handler: if a test was running, records its outcome and ends this
/// boot with `Resume`. Returns if no test was running.
pub fn on_panic(info: &core::panic::PanicInfo) {
    let Some(run) = RUN.get() else { return };
    let i = run.current.swap(NO_TEST, Ordering::SeqCst);
    if i == NO_TEST {
        return;
    }
    let test = run.tests[i];
    let expected_met = test.panic_expected.is_none_or(|e| message_contains(info, e));
    if test.should_panic && expected_met {
        run.passed.fetch_add(1, Ordering::SeqCst);
        crate::console::panic::emit(format_args!("test {} ... ok", test.name));
    } else if test.should_panic {
        run.failed.fetch_add(1, Ordering::SeqCst);
        crate::console::panic::emit(format_args!("test {} ... FAILED", test.name));
        crate::console::panic::emit(format_args!(
            "  reason: the panic message does not contain \"{}\"",
            test.panic_expected.unwrap_or("")
        ));
    } else {
        run.failed.fetch_add(1, Ordering::SeqCst);
        crate::console::panic::emit(format_args!("test {} ... FAILED", test.name));
    }
    let (passed, failed, ignored) = (
        run.passed.load(Ordering::SeqCst),
        run.failed.load(Ordering::SeqCst),
        run.ignored.load(Ordering::SeqCst),
    );
    if i + 1 == run.tests.len() {
        // Nothing left to resume: end the run here.
        crate::console::panic::emit(format_args!("{}", summary(run)));
        let (line, code) = if failed == 0 {
            ("gatherOS: done (ok)", ExitCode::Success)
        } else {
            ("gatherOS: done (failed)", ExitCode::Failure)
        };
        crate::console::panic::emit(format_args!("{line}"));
        exit(code);
    }
    crate::console::panic::emit(format_args!(
        "harness: resume start={} passed={passed} failed={failed} ignored={ignored}",
        i + 1
    ));
    exit(ExitCode::Resume)
}

ktest::kernel_test!(
    fn filters_select_like_cargo() {
        let opts = TestOptions {
            filters: alloc::vec!["frames"],
            ..Default::default()
        };
        assert!(selected_by_name("kernel::frames::alloc", &opts));
        assert!(!selected_by_name("kernel::heap::alloc", &opts));
        let exact = TestOptions {
            filters: alloc::vec!["kernel::heap::a"],
            exact: true,
            ..Default::default()
        };
        assert!(!selected_by_name("kernel::heap::alloc", &exact));
        let skip = TestOptions {
            skips: alloc::vec!["heap"],
            ..Default::default()
        };
        assert!(!selected_by_name("kernel::heap::alloc", &skip));
        assert!(selected_by_name("kernel::frames::alloc", &skip));
    }
);

ktest::kernel_test!(should_panic(expected = "expected panic") fn should_panic_tests_pass_when_they_panic() {
    panic!("expected panic");
});
