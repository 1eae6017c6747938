//! In-kernel tests of the watchdog on waits for other CPUs (`arch::watchdog`): each
//! injects the fault the watchdog exists for (a lost IPI, a CPU spinning with interrupts
//! off) and checks, on the machine, that the waiter reported it with the right laggard,
//! and that the laggard answered the watchdog's NMI from where it was stuck.
//!
//! The tests that keep the fatal default with a short bound are not `scale()` tests: at
//! `-smp 288` under TCG a vCPU may be off its host core for longer than such a bound,
//! which would make host load their verdict.
//!
//! The non-fatal tests shorten the bound and let the wait go on after the report; each
//! heals its own fault (the kick resends the lost IPI; the spinner stops when it sees
//! its NMI answered). The fatal test shows the default: a CPU that never answers (no
//! tick, no call served) fails the run at the next check point. The late-answer tests
//! show what the default lets pass: a laggard that answers after the report, and a wait that
//! looks past a bound only after every CPU had answered (its own vCPU was late: no
//! laggard, one line, no verdict).

use arch::ipi::call_on_cpu;
use arch::stats::IpiReason;
use arch::watchdog::{self, Wait};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ktest::lost_ipi::lose_next_call_ipi_to;
use mm::cpumask::CpuMask;

use crate::sched;

/// Runs `f` with a 300 ms non-fatal watchdog, restoring the boot settings after.
fn with_test_watchdog<R>(f: impl FnOnce() -> R) -> R {
    let bound = watchdog::bound_ms();
    watchdog::set_bound_ms(300);
    watchdog::set_fatal(false);
    let r = f();
    watchdog::set_fatal(true);
    watchdog::set_bound_ms(bound);
    r
}

/// Spins on `cpu` with interrupts off (no IPI, no tick gets through) until the
/// watchdog's NMI has been answered there; returns the task.
fn spin_with_irqs_off_until_answered(cpu: usize) -> sched::JoinHandle {
    static SPINNING: AtomicBool = AtomicBool::new(false);
    SPINNING.store(false, Ordering::SeqCst);
    let answered_before = watchdog::answer(cpu).count;
    let task = sched::spawn("irqs-off-spinner", cpu, None, move || {
        arch::irq::disable();
        SPINNING.store(true, Ordering::SeqCst);
        while watchdog::answer(cpu).count == answered_before {
            core::hint::spin_loop();
        }
        arch::irq::enable();
    });
    while !SPINNING.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    task
}

ktest::kernel_test!(
    needs(watchdog().and_cpus(2).and(scale())) fn watchdog_reports_a_lost_call_ipi_and_its_kick_delivers_the_call() {
        static RAN_ON: AtomicU64 = AtomicU64::new(u64::MAX);
        let (reports, _) = watchdog::reports();
        let answers = watchdog::answer(1).count;
        with_test_watchdog(|| {
            lose_next_call_ipi_to(1);
            call_on_cpu(1, IpiReason::Call, &|| {
                RAN_ON.store(arch::percpu::cpu_index() as u64, Ordering::SeqCst)
            });
        });
        let (after, laggards) = watchdog::reports();
        assert_eq!(after, reports + 1, "one report");
        assert_eq!(laggards, CpuMask::from_iter([1]));
        let a = watchdog::answer(1);
        assert_eq!(a.count, answers + 1, "cpu 1 answered the NMI");
        assert!(a.interrupts_enabled, "cpu 1 was idle with interrupts on: {a:?}");
        assert_eq!(RAN_ON.load(Ordering::SeqCst), 1, "the resent IPI ran the call");
    }
);

ktest::kernel_test!(
    needs(watchdog().and_cpus(2).and(scale())) fn watchdog_reports_a_cpu_spinning_with_interrupts_off_from_where_it_spins() {
        let (reports, _) = watchdog::reports();
        with_test_watchdog(|| {
            let spinner = spin_with_irqs_off_until_answered(1);
            call_on_cpu(1, IpiReason::Call, &|| {});
            spinner.join(crate::sched::JOIN_BOUND_MS);
        });
        let (after, laggards) = watchdog::reports();
        assert_eq!(after, reports + 1);
        assert_eq!(laggards, CpuMask::from_iter([1]));
        let a = watchdog::answer(1);
        assert!(!a.interrupts_enabled, "the NMI found interrupts off: {a:?}");
        assert!(a.rip >= 0xffff_8000_0000_0000, "a kernel address: {a:?}");
    }
);

ktest::kernel_test!(
    needs(watchdog().and_cpus(2).and(scale())) fn watchdog_reports_a_grace_period_held_up_by_a_cpu_with_interrupts_off() {
        crate::tlb::settle(); // nothing queued from earlier tests
        let mm = crate::user_space::new_address_space();
        let va = crate::workload::slot_va(0) & !0xfff;
        crate::workload::map_page(mm, va);
        let (reports, _) = watchdog::reports();
        // A tick grace period (the `broadcast` form's; the others' walk period does not
        // wait for a CPU that is not walking).
        crate::workload::with_sync_form(mm::table_free::SyncForm::Broadcast, || {
            with_test_watchdog(|| {
                let spinner = spin_with_irqs_off_until_answered(1);
                // Queued while cpu 1 spins: the batch's grace period cannot end before it stops.
                crate::user_space::unmap(mm, va, va + 4096); // its tables go to the RCU batch
                crate::tlb::settle(); // the drain waits for a grace period cpu 1 holds up
                spinner.join(crate::sched::JOIN_BOUND_MS);
            })
        });
        let (after, laggards) = watchdog::reports();
        assert_eq!(after, reports + 1);
        // Other idle CPUs may not have ticked within 300 ms under TCG (-smp 288): they
        // are laggards too, but cpu 1 must be one.
        assert!(laggards.contains(1), "{laggards:?}");
        assert!(!watchdog::answer(1).interrupts_enabled);
        crate::user_space::destroy(mm);
        crate::tlb::settle();
    }
);

/// Spins until `ms` milliseconds have passed since TSC `since` (the waiting CPU made
/// late on purpose: as a vCPU whose host thread was off its core).
fn spin_until_ms_after(since: u64, ms: u64) {
    let cycles = ms * (arch::timer::tsc_hz() / 1000);
    while arch::cpu::rdtsc().wrapping_sub(since) <= cycles {
        core::hint::spin_loop();
    }
}

ktest::kernel_test!(
    needs(watchdog().and_cpus(2)) fn watchdog_lets_a_laggard_that_answers_after_the_report_pass() {
        // The default, fatal watchdog: cpu 1 misses its IPI, is reported at the bound
        // and kicked; it answers then, long before the next check point, and the run
        // goes on.
        // SeqCst (Release/Acquire would do): set on cpu 1, read here after the call's
        // completion, which already orders it.
        static RAN: AtomicBool = AtomicBool::new(false);
        let bound = watchdog::bound_ms();
        watchdog::set_bound_ms(1000);
        let (reports, _) = watchdog::reports();
        lose_next_call_ipi_to(1);
        call_on_cpu(1, IpiReason::Call, &|| RAN.store(true, Ordering::SeqCst));
        watchdog::set_bound_ms(bound);
        let (after, laggards) = watchdog::reports();
        assert_eq!((after, laggards), (reports + 1, CpuMask::from_iter([1])), "reported once, cpu 1");
        assert!(RAN.load(Ordering::SeqCst), "the resent IPI ran the call");
    }
);

ktest::kernel_test!(
    needs(watchdog().and_cpus(2)) fn watchdog_calls_a_wait_past_its_bounds_with_no_laggard_a_late_answer() {
        // The default, fatal watchdog. A cross call that cpu 1 answers at once, checked
        // by a waiter that looks only after the first check point (one bound), then
        // after the second (three): no laggard either time, so late-answer lines, no
        // report, no failure.
        let bound = watchdog::bound_ms();
        watchdog::set_bound_ms(300);
        let (reports, _) = watchdog::reports();
        let late = watchdog::late_answers();
        let mut wait = Wait::start("late-answer-test");
        call_on_cpu(1, IpiReason::Call, &|| {});
        let none = CpuMask::new; // the call is done: no target holds it
        let since = arch::cpu::rdtsc();
        spin_until_ms_after(since, 400);
        wait.check(none, |_| {});
        assert_eq!(watchdog::late_answers(), late + 1, "past the report bound");
        // mm's waits (`check_since`): the same at each check point, and never a verdict.
        let at = core::panic::Location::caller();
        assert!(!watchdog::check_since(since, "late-answer-test", at, none));
        assert_eq!(watchdog::late_answers(), late + 2);
        assert!(!watchdog::check_since(since, "late-answer-test", at, none), "no repeat");
        // The second check point, where a stuck laggard would fail the run (3 bounds).
        spin_until_ms_after(since, 1000);
        wait.check(none, |_| {});
        assert!(!watchdog::check_since(since, "late-answer-test", at, none));
        watchdog::set_bound_ms(bound);
        assert_eq!(watchdog::late_answers(), late + 4, "at the second check point");
        assert_eq!(watchdog::reports().0, reports, "no report: nothing was lost");
    }
);

ktest::kernel_test!(needs(watchdog().and_cpus(2)) should_panic(expected = "watchdog: cpu 0 waited") fn watchdog_fails_the_run_when_a_cpu_never_answers() {
    // The default, fatal watchdog: cpu 1 spins with interrupts off for good. It is
    // reported (and answers the NMI) at the bound, and at the next check point (3 x 300
    // ms) still holds the call, having taken no tick and served no call: the run fails
    // there, naming it.
    watchdog::set_bound_ms(300);
    // SeqCst (Release/Acquire would do): cpu 1 says it is spinning with interrupts off.
    static SPINNING: AtomicBool = AtomicBool::new(false);
    let _stuck = sched::spawn("stuck", 1, None, || {
        arch::irq::disable();
        SPINNING.store(true, Ordering::SeqCst);
        loop {
            core::hint::spin_loop();
        }
    });
    while !SPINNING.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    call_on_cpu(1, IpiReason::Call, &|| {});
});

ktest::kernel_test!(
    needs(watchdog().and_cpus(2)) fn watchdog_keeps_alternating_waits_apart_and_gives_up_at_its_last_word() {
        // Two mm-style waits (`check_since`) under way on this CPU at once, checked in
        // turn (as two tasks that yield to each other while waiting), both held up by
        // cpu 1, which idles with interrupts on: it takes ticks, so it is never "stuck"
        // by progress. Each wait keeps its own record: exactly one report per check point
        // each (16 check points up to the last word), and each fails at its last word
        // (non-fatal here: `check_since` returns true).
        let bound = watchdog::bound_ms();
        watchdog::set_bound_ms(100);
        watchdog::set_fatal(false);
        let (reports, _) = watchdog::reports();
        let at = core::panic::Location::caller();
        let lag = || CpuMask::from_iter([1]);
        let a = arch::cpu::rdtsc();
        let b = arch::cpu::rdtsc();
        let (mut done_a, mut done_b) = (false, false);
        let started = arch::cpu::rdtsc();
        // Against a silent hang only (the verdicts above need no clock of their own).
        let limit = arch::timer::tsc_hz().saturating_mul(600);
        while !(done_a && done_b) && arch::cpu::rdtsc().wrapping_sub(started) < limit {
            spin_until_ms_after(arch::cpu::rdtsc(), 20);
            done_a = done_a || watchdog::check_since(a, "alternating-a", at, lag);
            done_b = done_b || watchdog::check_since(b, "alternating-b", at, lag);
        }
        watchdog::set_fatal(true);
        watchdog::set_bound_ms(bound);
        let (after, laggards) = watchdog::reports();
        assert!(done_a && done_b, "a wait never reached its last word (a={done_a} b={done_b})");
        assert_eq!(
            after - reports,
            2 * watchdog::GIVE_UP_FACTOR.div_ceil(2),
            "one report per check point and wait (16 each)"
        );
        assert_eq!(laggards, CpuMask::from_iter([1]));
    }
);
