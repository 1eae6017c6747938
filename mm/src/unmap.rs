//! Unmapping and teardown: the walks that clear entries and unlink empty tables, telling
//! an [`MmuGather`] about each (Linux's `zap_page_range` and `free_pgtables` in
//! `mm/memory.c`, kept apart from the gather itself, `mm/mmu_gather.c`).
//!
//! Everything here writes entries under the address space's page-table lock, whose guard
//! the gather is built from and holds ([`MmuGather::new`]): the tables written and the
//! gather's address space are one by construction. Nothing is freed here: pages and
//! tables go to the gather, which frees them after its flush ([`crate::gather`]).
//!
//! # The unmap walk: each table once
//!
//! [`unmap_range`] descends from the root once and keeps its path on the stack, as
//! Linux's nested `zap_pgd_range` .. `zap_pte_range` and Asterinas's `Cursor` do:
//! - In a table, it takes the entries that overlap the range in address order, each
//!   once: an absent entry is a hole, skipped whole; a leaf is cleared and told to the
//!   gather (`remove_tlb_entry`; a 4 KiB page to the page batch with `remove_page`, a
//!   2 MiB block freed right after `flush_mmu`, a 1 GiB page freed not at all); an entry
//!   pointing to a table is descended into with the part of the range under it.
//! - On the way back up from a child table in which it changed something (cleared a
//!   leaf, freed a table), it reads the child once more: if every entry is empty now, it
//!   clears the entry pointing to it and hands it to `free_table`, with the address of
//!   the last change made in it. A table it changed nothing in is left as it is, even if
//!   empty. The root is never freed.
//! - So each table is read once on the way down (one entry per page, table or hole in
//!   the range) and at most once more to see that it is empty; nothing walks from the
//!   root per page. A table is freed as soon as the walk leaves it, before the walk
//!   goes on to its next sibling, so pages and tables reach the gather in address order.
//!
//! Teardown first unmaps the whole lower half so, then sweeps every table left below
//! the root, empty ones included ([`teardown`]).
//!
//! A 1 GiB page (a level-3 leaf, [`pgtable::map_1g`]) maps a range mm did not allocate:
//! an unmap clears it, flushes it like any leaf (stride 1 GiB) and frees nothing of it.
//! A root entry with the reserved page-size bit is something gatherOS never creates: an
//! unmap that meets one panics, naming it, rather than leave it mapped in a range its
//! caller believes empty (or walk into it as if it were a table).
//!
//! [`teardown_with_steps`] tells a [`TeardownSteps`] which of its steps the running CPU
//! is in, so that a fault there can say so ([`crate::teardown_step`]).

use crate::addr::{PhysAddr, USER_END, VirtAddr};
use crate::addr_space::PageTableGuard;
use crate::entry::EntrySlot;
use crate::gather::{GatherCtx, MmuGather};
use crate::hw::TeardownSteps;
use crate::level::{ENTRIES, Level};
use crate::pgtable;
use crate::receipt::FlushReceipt;
use crate::teardown_step::{NoSteps, TeardownStep};

/// Root entries that map the lower (user) half.
const USER_ROOT_ENTRIES: usize = Level::ROOT.index(USER_END);

/// Unmaps `[start, end)` of the locked address space (4 KiB, and whole 2 MiB and 1 GiB
/// mappings), queueing pages and freeing page tables that became empty, at every level
/// below the root, through the gather `g`, which holds the lock. A 1 GiB page's
/// range is not freed (it is not mm's, see [`pgtable::map_1g`]). Panics on a reserved
/// root entry in the range (see the top of this file). One descent from the root (the
/// walk's rule at the top of this file).
pub fn unmap_range(g: &mut MmuGather, start: VirtAddr, end: VirtAddr) {
    let root = g.locked().root();
    zap_table(g, root, Level::ROOT, start, end);
}

/// Clears what `[start, end)` maps in the table at `table` (of level `level`; the range
/// lies within the span of the entry that points to it), descending into its child
/// tables once each and freeing those that became empty (Linux's `zap_p*_range` and
/// `free_p*_range` in one pass).
///
/// Returns the address of the last change the walk made in this table (a leaf cleared,
/// a child table freed), None if it made none: only then may the table have become
/// empty, and its parent checks it, freeing it with that address as the gather's range.
fn zap_table(
    g: &mut MmuGather,
    table: PhysAddr,
    level: Level,
    start: VirtAddr,
    end: VirtAddr,
) -> Option<VirtAddr> {
    let locked = g.locked();
    let mem = g.ctx().mem;
    let mut changed = None;
    let mut va = start;
    while va < end {
        // The end of this entry's span, or of the range.
        let next = va.align_down(level).saturating_add(level.span()).min(end);
        let slot = EntrySlot::of(mem, locked.root(), table, level.index(va));
        let entry = slot.read();
        if let Some(child_level) = level.below()
            && entry.is_table_at(level)
        {
            let child = entry.addr();
            if let Some(at) = zap_table(g, child, child_level, va, next)
                && pgtable::table_is_empty(mem, child)
            {
                let unlinked = slot.unlink(locked, level);
                g.free_table(child_level, at, unlinked);
                changed = Some(at);
            }
        } else if entry.is_present() {
            assert!(
                entry.is_leaf_at(level),
                "unmap: {va:#x} is under {entry:?} at {level:?} that gatherOS does not unmap \
                 (the reserved page-size bit at the root)",
            );
            zap_leaf(g, slot, level, va);
            changed = Some(va);
        }
        // An absent entry is a hole: skipped whole.
        va = next;
    }
    changed
}

/// Clears the leaf at `slot` (of level `level`, mapping `va`) and tells the gather.
fn zap_leaf(g: &mut MmuGather, slot: EntrySlot, level: Level, va: VirtAddr) {
    let old = slot.clear(g.locked());
    trace::event_if!(
        g.traced(),
        EntryClear,
        g.mm().id(),
        va.as_u64(),
        level.number(),
        0
    );
    g.remove_tlb_entry(level, va);
    match level {
        Level::Pmd => {
            // A 2 MiB block goes back right after a flush that covers it.
            g.flush_mmu();
            g.ctx().mem.free_huge(old.addr());
        }
        // The caller's range: nothing to free; the gather's flush covers the entry.
        Level::Pud => {}
        _ => g.remove_page(old.addr()),
    }
}

/// `fullmm` teardown: unmaps the whole lower (user) half of the locked address space and
/// frees every table below the root. The root itself stays with the caller.
pub fn teardown(ctx: &GatherCtx, locked: &PageTableGuard) -> Option<FlushReceipt> {
    teardown_with_steps(ctx, locked, &NoSteps)
}

/// [`teardown`], telling `steps` each step before it is taken (it leaves the last one,
/// the flush, recorded: the caller goes on or calls [`TeardownSteps::leave`]).
pub fn teardown_with_steps(
    ctx: &GatherCtx,
    locked: &PageTableGuard,
    steps: &dyn TeardownSteps,
) -> Option<FlushReceipt> {
    let mm = locked.mm();
    let mut g = MmuGather::new_fullmm(ctx, locked);
    steps.enter(mm.id(), mm.root(), TeardownStep::Unmap);
    unmap_range(&mut g, VirtAddr::new(0), USER_END);
    steps.enter(mm.id(), mm.root(), TeardownStep::SweepTables);
    sweep_tables(&mut g, locked.root(), Level::ROOT, VirtAddr::new(0));
    steps.enter(mm.id(), mm.root(), TeardownStep::Flush);
    g.finish()
}

/// Frees every table below `table` (level `level`, covering addresses from `base`) in
/// the lower half; used after a full unmap, when they hold no mappings any more (such
/// as tables left empty by an unshare). A tree walk over whole tables, not a path.
fn sweep_tables(g: &mut MmuGather, table: PhysAddr, level: Level, base: VirtAddr) {
    let locked = g.locked();
    let mem = g.ctx().mem;
    let top = if level == Level::ROOT {
        USER_ROOT_ENTRIES
    } else {
        ENTRIES
    };
    let Some(child_level) = level.below() else {
        return;
    };
    for i in 0..top {
        let slot = EntrySlot::of(mem, locked.root(), table, i);
        let e = slot.read();
        if !e.is_table_at(level) {
            continue;
        }
        let va = base + ((i as u64) << level.shift());
        let child = e.addr();
        if child_level != Level::Pte {
            sweep_tables(g, child, child_level, va);
        }
        if pgtable::table_is_empty(mem, child) {
            let unlinked = slot.unlink(locked, level);
            g.free_table(child_level, va, unlinked);
        }
    }
}

#[cfg(test)]
#[path = "unmap_tests.rs"]
mod tests;
