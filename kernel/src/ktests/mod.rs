//! The in-kernel tests and their harness. Product code never imports this folder; the
//! boot hands control to [`harness::run`] when `test=on`. Tests register themselves with
//! `ktest::kernel_test!` and declare what they need (CPUs, backend).
//!
//! - [`harness`]: runs, filters, resumes after a panic, checks frame leaks.
//! - [`oracle`]: the TLB coherence oracle; [`coherence`] its tests.
//! - the others test one concern each, named by their file.

mod coherence;
mod exceptions;
pub mod harness;
mod idle_leave;
mod mem;
mod options;
mod options_fuzz;
mod oracle;
mod race;
mod share;
mod shootdown;
mod smp;
mod soak;
mod teardown_fault;
mod tlb;
mod trace_gate;
mod trace_order;
mod watchdog;

/// Waits until `cond`, calling `relax` between tries (`sched::yield_now` where a task of
/// this CPU must get to run, `core::hint::spin_loop` where the waiter must stay the
/// running task); bounded like a join (only against a hang: a loaded host may starve a
/// vCPU for long), failing with `what` it waited for.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool, relax: fn()) {
    let end = crate::sched::join_deadline();
    while !cond() {
        assert!(
            arch::cpu::rdtsc() < end,
            "waited {} ms for {what}",
            crate::sched::JOIN_BOUND_MS
        );
        relax();
    }
}
