//! Mapping and looking up pages in four-level x86-64 page tables, reached through
//! [`PhysMem`]. Writers hold the address space's page-table lock (they take its guard);
//! lookups take none. How entries are read and written: [`crate::entry`]; the walk:
//! [`crate::pt_walk`].

use core::sync::atomic::Ordering;

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::PageTableGuard;
use crate::entry::{Entry, EntryFlags, EntrySlot};
use crate::hw::PhysMem;
use crate::level::{ENTRIES, Level};
use crate::pt_walk::PathWalk;

/// 4 KiB.
pub const PAGE_SIZE: u64 = Level::Pte.span();
/// 2 MiB.
pub const HUGE_SIZE: u64 = Level::Pmd.span();
/// 1 GiB.
pub const GIANT_SIZE: u64 = Level::Pud.span();

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfMemory,
    /// Something is mapped there already (or a huge page covers it).
    AlreadyMapped,
}

/// The slot of `va`'s entry at `level` in the locked address space, creating the tables
/// above it (zeroed) where absent: user-accessible in the lower half, kernel-only in the
/// upper ([`Entry::table`]).
pub fn slot_or_alloc<'m>(
    locked: &PageTableGuard,
    mem: &'m dyn PhysMem,
    va: VirtAddr,
    level: Level,
) -> Result<EntrySlot<'m>, MapError> {
    let mut walk = PathWalk::new(mem, locked.root(), va);
    while let Some(step) = walk.next() {
        if step.level == level {
            return Ok(step.slot);
        }
        if step.entry.is_present() && !step.is_table() {
            // A huge page covers `va` (or the root entry has the reserved page-size bit).
            return Err(MapError::AlreadyMapped);
        }
        if !step.entry.is_present() {
            let table = mem.alloc_frame().ok_or(MapError::OutOfMemory)?;
            // Release: the zeroed table is visible before the entry that points to it.
            step.slot.install(locked, Entry::table(table, va));
            walk.enter(table);
        }
    }
    unreachable!("a walk reaches every level above a leaf")
}

/// Installs a leaf entry at `level`, creating the tables above it as needed.
fn map_leaf(
    locked: &PageTableGuard,
    mem: &dyn PhysMem,
    va: VirtAddr,
    level: Level,
    entry: Entry,
) -> Result<(), MapError> {
    let slot = slot_or_alloc(locked, mem, va, level)?;
    if slot.read().is_present() {
        return Err(MapError::AlreadyMapped);
    }
    slot.install(locked, entry);
    Ok(())
}

/// Maps the 4 KiB page at `va` to the frame `frame` in the locked address space.
pub fn map_4k(
    locked: &PageTableGuard,
    mem: &dyn PhysMem,
    va: VirtAddr,
    frame: PhysAddr,
    flags: EntryFlags,
) -> Result<(), MapError> {
    map_leaf(locked, mem, va, Level::Pte, Entry::page(frame, flags))
}

/// Maps the 2 MiB page at `va` (aligned) to the block `block` (aligned).
pub fn map_2m(
    locked: &PageTableGuard,
    mem: &dyn PhysMem,
    va: VirtAddr,
    block: PhysAddr,
    flags: EntryFlags,
) -> Result<(), MapError> {
    map_leaf(locked, mem, va, Level::Pmd, Entry::huge_page(block, flags))
}

/// Maps the 1 GiB page at `va` (aligned) to the physical range starting at `range`
/// (aligned), with a level-3 leaf (the page-size bit, as for 2 MiB at level 2).
///
/// The range is not mm's: it is memory the caller owns and keeps, such as a device's
/// or firmware's range, or RAM it lends read-only (Linux's PFN maps). An unmap clears
/// the entry and frees nothing of it ([`crate::unmap::unmap_range`]); the caller may
/// reuse the range once that unmap's gather has finished (its flush is done).
pub fn map_1g(
    locked: &PageTableGuard,
    mem: &dyn PhysMem,
    va: VirtAddr,
    range: PhysAddr,
    flags: EntryFlags,
) -> Result<(), MapError> {
    assert!(
        va.offset_in(Level::Pud) == 0 && range.align_down(Level::Pud) == range,
        "map_1g: {va:#x} -> {range:#x} is not 1 GiB-aligned"
    );
    map_leaf(locked, mem, va, Level::Pud, Entry::huge_page(range, flags))
}

/// Follows `va` down to its leaf entry: (level, slot), a 1 GiB page included; None if a
/// level is not present (or the root entry has the reserved page-size bit).
pub fn leaf(mem: &dyn PhysMem, root: PhysAddr, va: VirtAddr) -> Option<(Level, EntrySlot<'_>)> {
    PathWalk::new(mem, root, va)
        .find(|step| step.is_leaf())
        .map(|step| (step.level, step.slot))
}

/// Physical address `va` maps to, if any.
pub fn translate(mem: &dyn PhysMem, root: PhysAddr, va: VirtAddr) -> Option<PhysAddr> {
    let (level, slot) = leaf(mem, root, va)?;
    Some(slot.read().addr().align_down(level) + va.offset_in(level))
}

/// Whether every entry of the table at `table` is empty.
pub fn table_is_empty(mem: &dyn PhysMem, table: PhysAddr) -> bool {
    (0..ENTRIES).all(|i| mem.word(table, i).load(Ordering::Acquire) == 0)
}

#[cfg(test)]
#[path = "pgtable_tests.rs"]
mod tests;
