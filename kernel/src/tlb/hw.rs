//! The hardware that mm's table freeing and lock-free walker need, on this machine:
//! sync IPIs, grace-period counters (ticks), the static key, the watchdog's clock, and
//! the walker's view of the running CPU.

use core::sync::atomic::Ordering;

/// What a waiting CPU does between polls of a grace period or a drain: the scheduler
/// installs `yield_now` here ([`set_relax`]), so that waiting lets other tasks run
/// (a hook, so that this wiring does not import the scheduler that imports it).
static RELAX: spin::Once<fn()> = spin::Once::new();

/// Makes every wait of the table freer call `f` between polls (the scheduler's yield).
pub fn set_relax(f: fn()) {
    RELAX.call_once(|| f);
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

    fn sync_ipi_all_others(&self, on: &mm::irq::IrqsOn) {
        arch::ipi::call_handler_on_many(on, &arch::cpus::online(), arch::stats::IpiReason::Sync, &|_| {});
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
        if let Some(f) = RELAX.get() {
            f();
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
        arch::pv_host::preemption_point();
    }

    fn loaded_root(&self) -> mm::addr::PhysAddr {
        arch::tlb::loaded_root()
    }
}

/// The walker's hardware.
pub static WALKER_HW: WalkerHw = WalkerHw;
