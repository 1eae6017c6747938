//! What this crate calls back into the kernel: the back-edges from arch to the crate
//! above it, in one trait, so that a reader finds every one here and, in the kernel, as
//! the one `impl arch::hooks::KernelHooks`.
//!
//! The kernel registers its implementation once, on the boot CPU, before it starts the
//! APs ([`register`]); until then a tick or a reschedule IPI calls nothing (the interrupt
//! is counted and acknowledged only), and the APs cannot start ([`crate::smp::start_aps`]
//! refuses).

/// The kernel's side of arch's interrupts and of AP bring-up.
pub trait KernelHooks: Sync {
    /// Called by the LAPIC timer handler on every CPU, on each tick ([`crate::timer`]),
    /// with interrupts off and after the EOI: the scheduler's tick (wake sleepers,
    /// maybe preempt).
    fn tick(&self);

    /// Called by the reschedule-IPI handler on the CPU the IPI reached
    /// ([`crate::smp::send_reschedule`]), with interrupts off and after the EOI: the
    /// scheduler's `schedule`.
    fn reschedule(&self);

    /// Called on each AP once its arch set-up is done (descriptor tables, IDT, per-CPU
    /// data, APIC, tick), with interrupts off, on the AP's boot stack
    /// ([`crate::smp::start_aps`]): must call [`crate::smp::mark_online`], then never
    /// returns.
    fn ap_main(&self, cpu: usize) -> !;
}

/// The kernel's implementation, once registered.
static KERNEL: spin::Once<&'static dyn KernelHooks> = spin::Once::new();

/// Registers the kernel's hooks (boot CPU, once, before [`crate::smp::start_aps`]).
/// Panics if called twice: one implementation, one registration.
pub fn register(kernel: &'static dyn KernelHooks) {
    assert!(KERNEL.get().is_none(), "hooks: registered twice");
    KERNEL.call_once(|| kernel);
}

/// The registered hooks (None before [`register`]).
pub(crate) fn kernel() -> Option<&'static dyn KernelHooks> {
    KERNEL.get().copied()
}
