//! In-kernel tests of the watchdog on waits for other CPUs (`arch::watchdog`): each
//! injects the fault the watchdog exists for (a lost IPI, a CPU spinning with interrupts
//! off) and checks, on the machine, that the waiter reported it with the right laggard,
//! and that the laggard answered the watchdog's NMI from where it was stuck.
//!
//! The non-fatal tests shorten the bound and let the wait go on after the report; each
//! heals its own fault (the kick resends the lost IPI; the spinner stops when it sees
//! its NMI answered). The fatal test shows the default: the report fails the run.

use arch::ipi::{call_on_cpu, lose_next_call_ipi_to};
use arch::stats::IpiReason;
use arch::watchdog;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

arch::kernel_test!(
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

arch::kernel_test!(
    needs(watchdog().and_cpus(2).and(scale())) fn watchdog_reports_a_cpu_spinning_with_interrupts_off_from_where_it_spins() {
        let (reports, _) = watchdog::reports();
        with_test_watchdog(|| {
            let spinner = spin_with_irqs_off_until_answered(1);
            call_on_cpu(1, IpiReason::Call, &|| {});
            spinner.join(10_000);
        });
        let (after, laggards) = watchdog::reports();
        assert_eq!(after, reports + 1);
        assert_eq!(laggards, CpuMask::from_iter([1]));
        let a = watchdog::answer(1);
        assert!(!a.interrupts_enabled, "the NMI found interrupts off: {a:?}");
        assert!(a.rip >= 0xffff_8000_0000_0000, "a kernel address: {a:?}");
    }
);

arch::kernel_test!(
    needs(watchdog().and_cpus(2).and(scale())) fn watchdog_reports_a_grace_period_held_up_by_a_cpu_with_interrupts_off() {
        crate::tlb::settle(); // nothing queued from earlier tests
        let mm = crate::user_space::new_address_space();
        let va = crate::workload::slot_va(0) & !0xfff;
        crate::workload::map_page(mm, va);
        let (reports, _) = watchdog::reports();
        with_test_watchdog(|| {
            let spinner = spin_with_irqs_off_until_answered(1);
            // Queued while cpu 1 spins: the batch's grace period cannot end before it stops.
            crate::user_space::unmap(mm, va, va + 4096); // its tables go to the RCU batch
            crate::tlb::settle(); // the drain waits for a grace period cpu 1 holds up
            spinner.join(10_000);
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

arch::kernel_test!(needs(watchdog().and_cpus(2).and(scale())) should_panic(expected = "watchdog: cpu 0 waited") fn watchdog_fails_the_run_on_a_lost_ipi_by_default() {
    watchdog::set_bound_ms(300);
    lose_next_call_ipi_to(1);
    call_on_cpu(1, IpiReason::Call, &|| {});
});
