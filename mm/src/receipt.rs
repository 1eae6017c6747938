//! The evidence a flush returns: the only key to skipping a table-free sync.
//!
//! Linux's `tlb_table_flush_implies_ipi_broadcast()` is a global yes/no; the skip it
//! allows is correct only *after* a flush that interrupted every CPU that could be
//! walking the tables (review of v10: "nothing guarantees there was one"). In gatherOS
//! the skip needs a [`FlushReceipt`], which only `flush_tlb_mm_range` can create, and
//! which says which address space was flushed, whether lazy CPUs were included
//! (`freed_tables || unshared_tables`), which backend ran and whom it interrupted.
//!
//! A receipt excuses only unlinks made *before* its flush. The unlinker takes an
//! [`UnlinkMark`] (the address space's generation, read after the entry was cleared);
//! the flush's generation is a later bump of the same counter, so `generation > mark`
//! holds exactly when the flush began after the unlink. Ordering: the clear, the mark's
//! read and the flush's `fetch_add` are all SeqCst, so in their single total order the
//! flush's read of the CPU mask comes after the clear.

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

    /// Whether this flush stands in for the sync owed by the unlink marked `unlinked`:
    /// it was such a broadcast and it began after that unlink.
    pub fn excuses(&self, mm: &AddressSpace, unlinked: UnlinkMark) -> bool {
        self.generation > unlinked.0 && self.was_ipi_broadcast_for(mm)
    }
}

impl FlushReceipt {
    /// Whether this is the flush step 2 of [`crate::unlinked_table`] asks for after the
    /// unlink marked `unlinked` of one of `mm`'s tables: of `mm`, for freed or unshared
    /// tables, begun after that unlink.
    pub fn follows_unlink(&self, mm: &AddressSpace, unlinked: UnlinkMark) -> bool {
        self.mm_id == mm.id() && self.tables && self.generation > unlinked.0
    }

    /// The CPUs that took this flush's interrupt after the unlink marked `unlinked` of one
    /// of `mm`'s tables (none if the flush is of another address space or began before):
    /// a CPU interrupted then was outside any walk, so no walk it is in can have begun
    /// before the unlink.
    pub fn interrupted_after(&self, mm: &AddressSpace, unlinked: UnlinkMark) -> CpuMask {
        if self.mm_id == mm.id() && self.generation > unlinked.0 {
            self.interrupted
        } else {
            CpuMask::new()
        }
    }
}

/// When a table was unlinked, in flush generations: taken right after the entry that
/// pointed to it was cleared ([`UnlinkMark::now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkMark(u64);

impl UnlinkMark {
    /// Marks an unlink of one of `mm`'s tables that has just been made.
    pub fn now(mm: &AddressSpace) -> Self {
        Self(mm.generation())
    }
}
