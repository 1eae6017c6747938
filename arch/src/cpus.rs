//! The table of CPUs: every CPU the firmware reported, by logical index, and which of
//! them are online.

extern crate alloc;
use alloc::boxed::Box;
use alloc::vec::Vec;
use mm::cpumask::{AtomicCpuMask, CpuMask};
use spin::Once;

use crate::percpu::PerCpu;

static CPUS: Once<Vec<&'static PerCpu>> = Once::new();
static ONLINE: AtomicCpuMask = AtomicCpuMask::new();

/// Creates the per-CPU records for `apic_ids` (index 0 must be the boot CPU). Once, on
/// the boot CPU, before any AP starts.
pub fn register(apic_ids: &[u32]) {
    CPUS.call_once(|| {
        apic_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let raw = Box::into_raw(Box::new(PerCpu::new(i, id)));
                // SAFETY: `raw` was just leaked: its address is final and unshared.
                unsafe { PerCpu::set_self_ptr(raw) };
                // SAFETY: leaked, so it lives forever; mutation after this point goes
                // through atomics and UnsafeCells only.
                unsafe { &*raw }
            })
            .collect()
    });
}

/// Number of CPUs reported by the firmware (online or not).
pub fn count() -> usize {
    CPUS.get().map_or(1, |c| c.len())
}

/// The record of CPU `index`.
pub fn get(index: usize) -> &'static PerCpu {
    CPUS.get().expect("cpus not registered")[index]
}

/// Logical index of the CPU with `apic_id`.
pub fn index_of_apic_id(apic_id: u32) -> Option<usize> {
    CPUS.get()?.iter().position(|c| c.apic_id == apic_id)
}

/// Marks CPU `index` online (it now takes IPIs).
pub fn set_online(index: usize) {
    get(index)
        .online
        .store(true, core::sync::atomic::Ordering::Release);
    ONLINE.set(index);
}

/// The online CPUs.
pub fn online() -> CpuMask {
    ONLINE.load()
}

/// Number of online CPUs.
pub fn online_count() -> usize {
    ONLINE.load().count()
}

/// The IPI counters of every online CPU, summed.
pub fn ipi_totals() -> crate::stats::IpiSnapshot {
    online()
        .iter()
        .map(|c| get(c).ipis.snapshot())
        .fold(crate::stats::IpiSnapshot::default(), |a, b| a + b)
}
