//! The running CPU's interrupt state as types: proof that interrupts are off
//! ([`IrqsOff`]) for handlers, and the capability that interrupts are on ([`IrqsOn`]) for
//! waits for other CPUs.
//!
//! Rules the types hold (Linux asserts them, `lockdep_assert_irqs_disabled` and the
//! `WARN_ON_ONCE(irqs_disabled())` of `smp_call_function_many`):
//! - A TLB handler (`flush_tlb_func`, `switch_mm`, the lazy-leave and cross-call handlers)
//!   runs with interrupts off: a tick in its middle could schedule and `switch_mm` under
//!   it. Each takes an [`IrqsOff`], which only two things make: [`RunningCpu::with_irqs_off`]
//!   (which turns interrupts off itself) and [`IrqsOff::entered`] (an interrupt entry,
//!   where the hardware turned them off).
//! - A wait for other CPUs (the table-free sync, a grace period, a drain, a remote flush or
//!   cross call) runs with interrupts on: with them off it waits for a CPU that waits for
//!   it. Each takes an [`IrqsOn`]; [`RunningCpu::with_irqs_off`] borrows the caller's
//!   `IrqsOn` mutably for as long as its closure runs, so the closure cannot wait:
//!
//! ```
//! use mm::irq::{IrqsOff, IrqsOn};
//! use mm::hw::RunningCpu;
//! fn handler(_off: IrqsOff<'_>) {}
//! fn wait(_on: &IrqsOn) {} // stands for `TableFreer::table_sync_one` & co.
//! fn fine(cpu: &dyn RunningCpu, on: &mut IrqsOn) {
//!     cpu.with_irqs_off(on, &mut |off| handler(off));
//!     wait(on); // interrupts are on again
//! }
//! ```
//!
//! but not inside:
//!
//! ```compile_fail,E0502
//! use mm::hw::RunningCpu;
//! use mm::irq::IrqsOn;
//! use mm::table_free::TableFreer;
//! fn misuse(cpu: &dyn RunningCpu, on: &mut IrqsOn, freer: &TableFreer) {
//!     cpu.with_irqs_off(on, &mut |_off| {
//!         freer.drain(on); // `*on` is borrowed mutably for the closure's whole run
//!     });
//! }
//! ```
//!
//! (The expected error code stays out of the example's comments: rustdoc looks for it
//! in the compiler's whole output, which quotes the failing line, so a comment naming
//! it would pass any error.)
//!
//! The types see the paths mm takes; they do not see code that turns interrupts off by
//! other means (`arch::irq::without_interrupts`, a raw [`RunningCpu::run_irqs_disabled`])
//! around a holder of an `IrqsOn`. So the one place the machine actually waits for other
//! CPUs (arch's cross call) reads the flag again, through [`IrqsOn::confirm`]: a wait
//! reached with interrupts off is refused there, naming its caller, as Linux's
//! `smp_call_function_many` warns.
//!
//! Pinning: a task never migrates (gatherOS's scheduler pins tasks), and neither token is
//! `Send`, so the CPU a holder read with `this_cpu()` stays the CPU it runs on.
//!
//! Neither token is `Send` (a proof about one CPU's flag must not move to another
//! thread), nor constructible outside this file but through the functions above. The
//! hardware flag is read in one function, `expect_irqs`: when a token is made from it
//! ([`IrqsOn::check`] at the start of a waiting operation, [`IrqsOff::entered`] at an
//! interrupt entry) and where the machine waits ([`IrqsOn::confirm`]); nowhere else
//! asserts the interrupt state.

use core::marker::PhantomData;
use core::panic::Location;

use crate::hw::RunningCpu;

/// Proof that interrupts are off on the running CPU for `'a`: handed to a closure by
/// [`RunningCpu::with_irqs_off`] or [`IrqsOff::entered`], and to handlers by them.
/// Zero-sized; `Copy` within its lifetime; not `Send`.
#[derive(Clone, Copy)]
pub struct IrqsOff<'a> {
    _scope: PhantomData<&'a ()>,
    _not_send: PhantomData<*const ()>,
}

impl IrqsOff<'_> {
    /// Only for code that has just turned interrupts off itself (`with_irqs_off`, and the
    /// simulated machine's interrupt entry, which sets its flag).
    pub(crate) fn new() -> Self {
        Self {
            _scope: PhantomData,
            _not_send: PhantomData,
        }
    }

    /// An interrupt entry (or a handler loop the caller runs with interrupts off): reads
    /// the running CPU's flag, panics if interrupts are on, and runs `f` with the proof.
    #[track_caller]
    pub fn entered<R>(cpu: &dyn RunningCpu, what: &str, f: impl FnOnce(IrqsOff<'_>) -> R) -> R {
        expect_irqs(cpu, false, what, Location::caller());
        f(IrqsOff::new())
    }
}

/// A handler that runs on (or on behalf of) another CPU with interrupts off: it receives
/// the proof, and cannot capture an [`IrqsOn`] (a handler is `Sync`; the capability is not).
pub type Handler<'a> = dyn Fn(IrqsOff<'_>) + Sync + 'a;

/// The capability to wait for other CPUs: interrupts are on on the running CPU whenever
/// its holder can use it (see the top of this file). Not `Clone`, not `Send`.
pub struct IrqsOn {
    _not_send: PhantomData<*const ()>,
}

impl IrqsOn {
    /// The capability for a task about to wait: reads the running CPU's flag and panics,
    /// naming the caller and `what` it was about to do, if interrupts are off.
    #[track_caller]
    pub fn check(cpu: &dyn RunningCpu, what: &str) -> Self {
        expect_irqs(cpu, true, what, Location::caller());
        Self {
            _not_send: PhantomData,
        }
    }

    /// Where the machine waits for other CPUs: reads the flag again and panics, naming the
    /// caller, if interrupts were turned off around this capability's holder by a path the
    /// types do not see (see the top of this file).
    #[track_caller]
    pub fn confirm(&self, cpu: &dyn RunningCpu, what: &str) {
        expect_irqs(cpu, true, what, Location::caller());
    }
}

/// The one run-time check of the interrupt flag: `what` needs interrupts `enabled`.
fn expect_irqs(cpu: &dyn RunningCpu, enabled: bool, what: &str, at: &Location<'_>) {
    let now = cpu.irqs_enabled();
    assert!(
        now == enabled,
        "cpu {} {what} with interrupts {} at {at}: {}",
        cpu.this_cpu(),
        if now { "enabled" } else { "disabled" },
        if enabled {
            "a wait for other CPUs would wait for itself (this can deadlock)"
        } else {
            "a handler must run with interrupts off"
        }
    );
}
