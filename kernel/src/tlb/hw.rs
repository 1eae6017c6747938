//! The hardware that mm's table freeing and lock-free walker need, on this machine:
//! sync IPIs, grace-period counters (ticks), the static key, the watchdog's clock, and
//! the walker's view of the running CPU.

use core::sync::atomic::Ordering;

/// What a waiting CPU of the table freer does between polls of a grace period or a
/// drain: the scheduler's yield, so that waiting lets other tasks run. A back-edge
/// (this wiring is below the scheduler, which imports it), declared here and
/// implemented once by `crate::hooks`. Called on the waiting CPU, with interrupts on
/// (the freer waits only so), from [`SyncHw`]'s `relax`.
pub trait Relax: Sync {
    /// Lets other tasks on this CPU run before the next poll.
    fn relax(&self);
}

/// The registered [`Relax`] (none until the boot CPU registers the hooks: then waits
/// only spin).
static RELAX: spin::Once<&'static dyn Relax> = spin::Once::new();

/// Makes every wait of the table freer call `relax` between polls. Once, at boot.
pub fn set_relax(relax: &'static dyn Relax) {
    RELAX.call_once(|| relax);
}

/// Sync IPIs, grace-period counters and the static key, for mm's table freeing.
pub struct SyncHw;

impl mm::hw::TableSyncHw for SyncHw {
    fn cpu(&self) -> &dyn mm::hw::RunningCpu {
        &arch::cpu::X86Cpu
    }

    fn flush_implies_ipi_broadcast(&self) -> bool {
        arch::static_key::tlb_table_flush_implies_ipi_broadcast()
    }

    fn sync_ipi(&self, on: &mm::irq::IrqsOn, targets: &mm::cpumask::CpuMask) {
        arch::ipi::call_handler_on_many(on, targets, arch::stats::IpiReason::Sync, &|_| {});
    }

    fn online(&self) -> mm::cpumask::CpuMask {
        arch::cpus::online()
    }

    fn quiescent_count(&self, cpu: usize) -> u64 {
        // A tick is only taken with interrupts enabled: a quiescent state.
        arch::cpus::get(cpu).ticks.load(Ordering::SeqCst)
    }

    fn wait_clock(&self) -> u64 {
        arch::cpu::rdtsc()
    }

    fn wait_expired(
        &self,
        since: u64,
        what: &'static str,
        at: &'static core::panic::Location<'static>,
        laggards: &dyn Fn() -> mm::cpumask::CpuMask,
    ) -> bool {
        arch::watchdog::check_since(since, what, at, laggards)
    }

    fn relax(&self) {
        if let Some(r) = RELAX.get() {
            r.relax();
        }
        core::hint::spin_loop();
    }
}

/// The table freer's hardware.
pub static SYNC_HW: SyncHw = SyncHw;

/// The walker's view of this CPU.
pub struct WalkerHw;

impl mm::hw::WalkerHw for WalkerHw {
    fn cpu(&self) -> &dyn mm::hw::RunningCpu {
        &arch::cpu::X86Cpu
    }

    fn preemption_point(&self) {
        ktest::pv_host::preemption_point();
    }

    fn loaded_root(&self) -> mm::addr::PhysAddr {
        arch::tlb::loaded_root()
    }
}

/// The walker's hardware.
pub static WALKER_HW: WalkerHw = WalkerHw;
