//! A page table unlinked from its parent and not yet given back: the one sequence every
//! path that removes a table follows (unmap and teardown through the gather, collapse,
//! unshare), held by a type.
//!
//! 1. **Clear and mark**: [`EntrySlot::unlink`](crate::entry::EntrySlot::unlink) (or
//!    [`unlink_shared`](crate::entry::EntrySlot::unlink_shared) for a table other
//!    address spaces keep) clears the entry that points to the table and takes the
//!    [`UnlinkMark`] right after, in one call, and returns an [`UnlinkedTable`].
//! 2. **Flush**: a flush of the address space for freed or unshared tables
//!    (`flush_tlb_mm_range` with `freed`, through the gather, collapse or unshare), which
//!    returns its [`FlushReceipt`].
//! 3. **Skip, sync or wait, then free**: [`TableFreer::release`] takes the table and the
//!    receipt, checks that the flush began after the unlink, skips the sync if the
//!    receipt excuses it or syncs in the boot's form (broadcast, targeted, wait), and
//!    only then frees the frame. On the batched path [`TableFreer::defer`] puts the table
//!    into a [`TableBatch`](crate::table_free::TableBatch), which
//!    [`TableFreer::queue_batch`] hands, with the receipt of a flush made after its last
//!    unlink, to a grace or walk period.
//!
//! An `UnlinkedTable` is `#[must_use]`, neither `Clone` nor `Copy`, and its frame is
//! private: step 3 is the only way back to a free frame, so freeing a table unlinked so
//! without its flush and sync does not compile (what the types cannot see: code that
//! clears a table entry with the raw [`EntrySlot::clear`](crate::entry::EntrySlot::clear)
//! and frees the frame through [`PhysMem`](crate::hw::PhysMem); no mm path does, and
//! dropping an `UnlinkedTable` leaks its frame rather than free it early):
//!
//! ```compile_fail
//! # use mm::{hw::PhysMem, unlinked_table::UnlinkedTable};
//! fn free_now(mem: &dyn PhysMem, table: UnlinkedTable) {
//!     mem.free_table(table.frame);
//! }
//! ```
//!
//! nor can one be made but by unlinking:
//!
//! ```compile_fail
//! # use mm::{addr::PhysAddr, addr_space::AddressSpace, receipt::UnlinkMark};
//! # use mm::unlinked_table::UnlinkedTable;
//! fn forge(mm: &AddressSpace, frame: PhysAddr) -> UnlinkedTable<'_> {
//!     UnlinkedTable { mm, frame, mark: UnlinkMark::now(mm), shared: false }
//! }
//! ```
//!
//! [`TableFreer::release`]: crate::table_free::TableFreer::release
//! [`TableFreer::defer`]: crate::table_free::TableFreer::defer
//! [`TableFreer::queue_batch`]: crate::table_free::TableFreer::queue_batch
//! [`FlushReceipt`]: crate::receipt::FlushReceipt

use crate::addr::PhysAddr;
use crate::addr_space::AddressSpace;
use crate::receipt::UnlinkMark;

/// A page table of `mm` whose parent entry has been cleared (step 1 at the top of this
/// file), waiting for its flush and its sync.
#[must_use = "an unlinked table goes back only through TableFreer::release or a table batch, after its flush"]
#[derive(Debug)]
pub struct UnlinkedTable<'a> {
    mm: &'a AddressSpace,
    frame: PhysAddr,
    mark: UnlinkMark,
    shared: bool,
}

impl<'a> UnlinkedTable<'a> {
    /// Step 1's result: `frame` was unlinked from `mm` just now (the entry is cleared).
    /// Only `EntrySlot::unlink` and `unlink_shared` call this.
    pub(crate) fn just_unlinked(mm: &'a AddressSpace, frame: PhysAddr, shared: bool) -> Self {
        Self {
            mm,
            frame,
            mark: UnlinkMark::now(mm),
            shared,
        }
    }

    /// The address space it was unlinked from.
    pub fn mm(&self) -> &'a AddressSpace {
        self.mm
    }

    /// When it was unlinked.
    pub fn mark(&self) -> UnlinkMark {
        self.mark
    }

    /// Whether other address spaces still use it (an unshare: it is synced, not freed).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Step 3 only (`table_free.rs`): the frame, the value consumed.
    pub(crate) fn into_frame(self) -> PhysAddr {
        self.frame
    }
}
