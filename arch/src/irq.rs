//! The interrupt flag of the running CPU: the one place outside `arch`'s own drivers
//! where IF is read or changed. The kernel and its scheduler go through these, so every
//! interrupts-off section is visible as `arch::irq::...`.

/// Runs `f` with interrupts disabled, restoring the previous state afterwards
/// (`local_irq_save` / `local_irq_restore`).
#[inline]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(f)
}

/// Whether interrupts are enabled on the running CPU (IF).
#[inline]
pub fn are_enabled() -> bool {
    x86_64::instructions::interrupts::are_enabled()
}

/// Disables interrupts (CLI).
#[inline]
pub fn disable() {
    x86_64::instructions::interrupts::disable();
}

/// Enables interrupts (STI).
#[inline]
pub fn enable() {
    x86_64::instructions::interrupts::enable();
}

/// Enables interrupts and halts until the next one (STI; HLT, with no window between).
#[inline]
pub fn enable_and_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}
