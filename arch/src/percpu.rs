//! Per-CPU data, reached through the GS base register.
//!
//! Each CPU owns one [`PerCpu`], allocated by the boot CPU and never freed; GS base
//! points at it and its first word points at itself, so [`current`] is a single
//! `mov rax, gs:[0]`. Only the owning CPU touches the non-atomic parts (the APIC).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

use crate::apic::Lapic;
use crate::stats::IpiCounters;

/// One CPU's private state.
#[repr(C)]
pub struct PerCpu {
    /// Points at this structure (read through `gs:[0]`).
    self_ptr: *const PerCpu,
    /// Logical CPU number: 0 for the boot CPU, then in MADT order.
    pub index: usize,
    /// Local APIC ID.
    pub apic_id: u32,
    /// Set once the CPU has finished its bring-up.
    pub online: AtomicBool,
    /// Timer ticks taken.
    pub ticks: AtomicU64,
    /// IPI counters by reason.
    pub ipis: IpiCounters,
    lapic: UnsafeCell<Option<Lapic>>,
    /// Cross-call requests waiting to run on this CPU.
    pub(crate) calls: crate::call_queue::CallQueue,
    /// The cross-call request this CPU is running now (0: none), for the watchdog.
    pub(crate) running_call: core::sync::atomic::AtomicUsize,
    /// This CPU's side of the watchdog (its NMI answers).
    pub watchdog: crate::watchdog_cpu::WatchdogCpu,
}

// SAFETY: the only non-Sync field, `lapic`, is touched by the owning CPU alone (see
// `PerCpu::lapic`); everything else is atomic or immutable after creation.
unsafe impl Sync for PerCpu {}
// SAFETY: as above; a PerCpu is created on the boot CPU and handed to its owner.
unsafe impl Send for PerCpu {}

impl PerCpu {
    /// A new, offline CPU record.
    pub fn new(index: usize, apic_id: u32) -> Self {
        Self {
            self_ptr: core::ptr::null(),
            index,
            apic_id,
            online: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            ipis: IpiCounters::new(),
            lapic: UnsafeCell::new(None),
            calls: crate::call_queue::CallQueue::new(),
            running_call: core::sync::atomic::AtomicUsize::new(0),
            watchdog: crate::watchdog_cpu::WatchdogCpu::new(),
        }
    }

    /// Records the structure's final address (read back through `gs:[0]`).
    ///
    /// # Safety
    /// `this` must be the record's permanent address, before any shared reference exists.
    pub unsafe fn set_self_ptr(this: *mut PerCpu) {
        // SAFETY: exclusive access per the contract.
        unsafe { (*this).self_ptr = this };
    }

    /// Makes `self` the running CPU's per-CPU data and gives it its APIC.
    ///
    /// # Safety
    /// Once per CPU, by the CPU that owns `self`, before it goes online.
    pub unsafe fn install(&'static self, lapic: Lapic) {
        // SAFETY: nobody else touches the APIC slot of an offline CPU's record.
        unsafe { *self.lapic.get() = Some(lapic) };
        GsBase::write(VirtAddr::from_ptr(self as *const PerCpu));
    }

    /// The running CPU's APIC. Interrupt handlers use it too, so callers keep the borrow
    /// short and interrupts off (`with_lapic` does both).
    #[allow(clippy::mut_from_ref)]
    fn lapic(&self) -> &mut Lapic {
        debug_assert!(core::ptr::eq(self, current().expect("no per-CPU data")));
        // SAFETY: only the owning CPU calls this (asserted above), with interrupts off
        // (see `with_lapic`), so no other reference to the APIC is live.
        unsafe { (*self.lapic.get()).as_mut().expect("apic not initialised") }
    }
}

/// The running CPU's data, or None before [`PerCpu::install`] ran on it.
pub fn current() -> Option<&'static PerCpu> {
    if GsBase::read().is_null() {
        return None;
    }
    let ptr: *const PerCpu;
    // SAFETY: GS base points at an installed PerCpu whose first word is its own address.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags)) };
    // SAFETY: PerCpu records live forever once installed.
    Some(unsafe { &*ptr })
}

/// The running CPU's logical index (0 before per-CPU data exists).
pub fn cpu_index() -> usize {
    current().map_or(0, |p| p.index)
}

/// Runs `f` with the running CPU's APIC, interrupts off.
pub fn with_lapic<R>(f: impl FnOnce(&mut Lapic) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        f(current().expect("per-CPU data not installed").lapic())
    })
}
