//! Unmapping and teardown: the walks that clear entries and unlink empty tables, telling
//! an [`MmuGather`] about each (Linux's `zap_page_range` and `free_pgtables` in
//! `mm/memory.c`, kept apart from the gather itself, `mm/mmu_gather.c`).
//!
//! Everything here writes entries under the address space's page-table lock, whose guard
//! the gather is built from and holds ([`MmuGather::new`]): the tables written and the
//! gather's address space are one by construction. Nothing is freed here: pages and
//! tables go to the gather, which frees them after its flush ([`crate::gather`]).
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
use crate::pt_walk::{PathWalk, Step};
use crate::receipt::FlushReceipt;
use crate::teardown_step::{NoSteps, TeardownStep};

/// Root entries that map the lower (user) half.
const USER_ROOT_ENTRIES: usize = Level::ROOT.index(USER_END);

/// Unmaps `[start, end)` of the locked address space (4 KiB, and whole 2 MiB and 1 GiB
/// mappings), queueing pages and freeing page tables that became empty, at every level
/// below the root, through the gather `g`, which holds the lock. A 1 GiB page's
/// range is not freed (it is not mm's, see [`pgtable::map_1g`]). Panics on a reserved
/// root entry in the range (see the top of this file).
pub fn unmap_range(g: &mut MmuGather, start: VirtAddr, end: VirtAddr) {
    let locked = g.locked();
    let mem = g.ctx().mem;
    let root = locked.root();
    let mut va = start;
    // A PTE table that had entries cleared and is not yet checked for emptiness: it is
    // checked once, when the walk leaves its 2 MiB block (Linux: `free_pgtables` after
    // the zap), not after every page.
    let mut cleared_in: Option<VirtAddr> = None;
    while va < end {
        if let Some(t) = cleared_in
            && t.align_down(Level::Pmd) != va.align_down(Level::Pmd)
        {
            free_empty_tables(locked, g, t);
            cleared_in = None;
        }
        // The walk ends at the leaf, or at the first absent entry: the hole it leaves.
        let last = PathWalk::new(mem, root, va)
            .last()
            .expect("a walk reads at least the root entry");
        if !last.entry.is_present() {
            va = va.saturating_add(last.level.span() - va.offset_in(last.level));
            continue;
        }
        let level = last.level;
        assert!(
            last.is_leaf(),
            "unmap: {va:#x} is under {:?} at {level:?} that gatherOS does not unmap \
             (the reserved page-size bit at the root)",
            last.entry
        );
        let old = last.slot.clear(locked);
        g.remove_tlb_entry(level, va);
        match level {
            Level::Pmd => {
                // A 2 MiB block goes back right after a flush that covers it.
                g.flush_mmu();
                mem.free_huge(old.addr());
                free_empty_tables(locked, g, va);
            }
            // The caller's range: nothing to free; the gather's flush covers the entry.
            Level::Pud => free_empty_tables(locked, g, va),
            _ => {
                g.remove_page(old.addr());
                cleared_in = Some(va);
            }
        }
        va = va.align_down(level).saturating_add(level.span());
    }
    if let Some(t) = cleared_in {
        free_empty_tables(locked, g, t);
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
            slot.clear(locked);
            g.free_table(child_level, va, child);
        }
    }
}

/// Unlinks and frees the tables on the path to `va` that became empty, bottom up,
/// never the root.
fn free_empty_tables(locked: &PageTableGuard, g: &mut MmuGather, va: VirtAddr) {
    let mem = g.ctx().mem;
    // path[l] is the step at level l on the path (4 = root); a huge entry or an absent
    // one ends it.
    let mut path: [Option<Step>; 5] = [None; 5];
    for step in PathWalk::new(mem, locked.root(), va) {
        path[step.level.number()] = Some(step);
    }
    for level in [Level::Pte, Level::Pmd, Level::Pud] {
        let (Some(step), Some(parent)) = (path[level.number()], path[level.number() + 1]) else {
            continue;
        };
        if !pgtable::table_is_empty(mem, step.table) {
            return;
        }
        parent.slot.clear(locked);
        g.free_table(level, va, step.table);
    }
}
