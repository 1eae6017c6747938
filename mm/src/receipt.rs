//! The evidence a flush returns: the only key to skipping a table-free sync.
//!
//! Linux's `tlb_table_flush_implies_ipi_broadcast()` is a global yes/no; the skip it
//! allows is correct only *after* a flush that interrupted every CPU that could be
//! walking the tables (review of v10: "nothing guarantees there was one"). In gatherOS
//! the skip needs a [`FlushReceipt`], which only `flush_tlb_mm_range` can create, and
//! which says which address space was flushed, whether lazy CPUs were included
//! (`freed_tables || unshared_tables`), which backend ran and whom it interrupted.

use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::hw::BackendKind;

/// Proof of one completed flush. Not constructible outside this crate, not `Clone`.
#[derive(Debug)]
pub struct FlushReceipt {
    pub(crate) mm_id: usize,
    pub(crate) generation: u64,
    pub(crate) tables: bool,
    pub(crate) backend: BackendKind,
    /// Every other CPU in the mask at flush time (all that could be walking).
    pub(crate) could_walk: CpuMask,
    /// The CPUs the backend actually interrupted.
    pub(crate) interrupted: CpuMask,
}

impl FlushReceipt {
    /// The generation the flush established.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// CPUs the flush interrupted.
    pub fn interrupted(&self) -> &CpuMask {
        &self.interrupted
    }

    /// Whether this flush already was the sync for tables of `mm`: it covered `mm`, was
    /// made for freed or unshared tables (so lazy CPUs were included), and every CPU that
    /// could have been walking took an interrupt for it.
    pub fn was_ipi_broadcast_for(&self, mm: &AddressSpace) -> bool {
        self.mm_id == mm.id()
            && self.tables
            && self.backend == BackendKind::NativeIpi
            && self.could_walk.and_not(&self.interrupted).is_empty()
    }
}
