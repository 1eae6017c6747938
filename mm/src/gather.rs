//! `MmuGather`: batching the teardown of mappings so that nothing is freed before the
//! TLB flush that makes it unreachable (Linux's `asm-generic/tlb.h`, `mm/mmu_gather.c`).
//!
//! # Who may free what, when
//!
//! Tearing down a mapping has three steps, always in this order:
//! 1. **Clear** the entry (under the address space's page-table lock) and tell the
//!    gather: `remove_tlb_entry` extends the range to flush and records the level
//!    (`cleared_ptes` .. `cleared_p4ds`); the page goes into a page batch
//!    (`remove_page`); a page table that became empty is unlinked from its parent and
//!    handed to `free_pte_table` / `free_pmd_table` / `free_pud_table`, which also set
//!    `freed_tables`.
//! 2. **Flush** (`flush_mmu_tlbonly`): one `flush_tlb_mm_range` for the whole range, with
//!    the stride of the smallest level cleared, everything if `fullmm`/`need_flush_all`,
//!    and `freed_tables || unshared_tables` so that lazy CPUs are interrupted when a table
//!    went away. After it, no CPU's TLB or paging-structure cache holds the old entries.
//! 3. **Free**: data pages right after the flush (nothing can reach them any more); page
//!    tables only once no lock-free walker can still be inside them: through the table
//!    batch and a grace period, or, if no batch page can be had, right after a
//!    `table_sync_one` that may be skipped only with the flush's receipt (see
//!    [`crate::table_free`]).
//!
//! A full page batch forces steps 2 and 3 early (`flush_mmu`). Two gathers in flight on
//! the same address space at once (`flush_pending > 1`) make `finish` flush everything:
//! the other one may have cleared entries that are not flushed yet. Tables shared with
//! other address spaces are not freed but *unshared* (`unshared_tables`); the sync still
//! follows, since the last sharer may reuse the table.

use core::sync::atomic::Ordering;

use crate::addr_space::AddressSpace;
use crate::breakage::Breakage;
use crate::flush::{FLUSH_ALL, Mmu};
use crate::pgtable::{self, ADDR_MASK, HUGE, PRESENT, PhysMem};
use crate::receipt::{FlushReceipt, UnlinkMark};
use crate::stats::TlbEvent;
use crate::table_free::{BATCH_COUNT, TABLE_BATCH, TableFreer, TableSyncHw};

/// Pages one gather holds before it must flush and free (Linux: ~510 per batch page,
/// about 10000 in all; gatherOS uses one fixed batch).
pub const PAGE_BATCH: usize = 512;

/// Everything a gather talks to.
pub struct GatherCtx<'a> {
    /// TLB machinery.
    pub mmu: Mmu<'a>,
    /// Physical memory.
    pub mem: &'a dyn PhysMem,
    /// The table freer.
    pub freer: &'a TableFreer,
    /// Sync IPIs and grace-period hardware.
    pub sync: &'a dyn TableSyncHw,
}

/// Level bits of what was cleared since the last flush.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleared {
    /// 4 KiB entries.
    pub ptes: bool,
    /// Level-2 entries (2 MiB pages, or pointers to PTE tables).
    pub pmds: bool,
    /// Level-3 entries.
    pub puds: bool,
    /// Level-4 entries.
    pub p4ds: bool,
}

impl Cleared {
    fn any(&self) -> bool {
        self.ptes || self.pmds || self.puds || self.p4ds
    }

    /// The flush stride: the smallest level cleared.
    pub fn stride_shift(&self) -> u32 {
        if self.ptes {
            12
        } else if self.pmds {
            21
        } else if self.puds {
            30
        } else {
            39
        }
    }
}

/// One gather on one address space.
pub struct MmuGather<'a> {
    ctx: &'a GatherCtx<'a>,
    mm: &'a AddressSpace,
    /// Range to flush, `[start, end)`; empty when `start >= end`.
    pub start: u64,
    /// See `start`.
    pub end: u64,
    /// The whole address space is being torn down.
    pub fullmm: bool,
    /// Something requires flushing everything.
    pub need_flush_all: bool,
    /// A page table was freed since the last flush.
    pub freed_tables: bool,
    /// A shared page table was unshared since the last flush.
    pub unshared_tables: bool,
    /// Levels cleared since the last flush.
    pub cleared: Cleared,
    pages: [u64; PAGE_BATCH],
    npages: usize,
    table_batch: Option<u64>,
    ntables: usize,
    last_receipt: Option<FlushReceipt>,
}

impl<'a> MmuGather<'a> {
    /// `tlb_gather_mmu`: starts a gather on `mm`.
    pub fn new(ctx: &'a GatherCtx<'a>, mm: &'a AddressSpace) -> Self {
        mm.flush_pending.fetch_add(1, Ordering::SeqCst);
        Self {
            ctx,
            mm,
            start: u64::MAX,
            end: 0,
            fullmm: false,
            need_flush_all: false,
            freed_tables: false,
            unshared_tables: false,
            cleared: Cleared::default(),
            pages: [0; PAGE_BATCH],
            npages: 0,
            table_batch: None,
            ntables: 0,
            last_receipt: None,
        }
    }

    /// `tlb_gather_mmu_fullmm`: a gather that tears down all of `mm`.
    pub fn new_fullmm(ctx: &'a GatherCtx<'a>, mm: &'a AddressSpace) -> Self {
        let mut g = Self::new(ctx, mm);
        g.fullmm = true;
        g
    }

    /// The address space.
    pub fn mm(&self) -> &'a AddressSpace {
        self.mm
    }

    fn extend(&mut self, start: u64, end: u64) {
        self.start = self.start.min(start);
        self.end = self.end.max(end);
    }

    fn reset_range(&mut self) {
        self.start = u64::MAX;
        self.end = 0;
        self.freed_tables = false;
        self.unshared_tables = false;
        self.cleared = Cleared::default();
    }

    /// An entry at `level` (1 = PTE .. 4) mapping `[va, va + size)` was cleared.
    pub fn remove_tlb_entry(&mut self, level: u32, va: u64, size: u64) {
        self.extend(va, va + size);
        match level {
            1 => self.cleared.ptes = true,
            2 => self.cleared.pmds = true,
            3 => self.cleared.puds = true,
            _ => self.cleared.p4ds = true,
        }
    }

    /// Queues a data page to be freed after the flush; a full batch flushes first.
    pub fn remove_page(&mut self, pa: u64) {
        if self.npages == PAGE_BATCH {
            self.flush_mmu();
        }
        self.pages[self.npages] = pa;
        self.npages += 1;
    }

    /// Pages queued and not yet freed.
    pub fn pending_pages(&self) -> usize {
        self.npages
    }

    /// `pte_free_tlb`: the PTE table at `table`, which mapped around `va`, was unlinked.
    pub fn free_pte_table(&mut self, va: u64, table: u64) {
        self.extend(va, va + pgtable::PAGE_SIZE);
        self.cleared.pmds = true;
        self.freed_tables = true;
        self.remove_table(table);
    }

    /// `pmd_free_tlb`: a level-2 table was unlinked.
    pub fn free_pmd_table(&mut self, va: u64, table: u64) {
        self.extend(va, va + pgtable::PAGE_SIZE);
        self.cleared.puds = true;
        self.freed_tables = true;
        self.remove_table(table);
    }

    /// `pud_free_tlb`: a level-3 table was unlinked.
    pub fn free_pud_table(&mut self, va: u64, table: u64) {
        self.extend(va, va + pgtable::PAGE_SIZE);
        self.cleared.p4ds = true;
        self.freed_tables = true;
        self.remove_table(table);
    }

    /// A level-3 entry pointing to a table shared with other address spaces was cleared
    /// in this one (`huge_pmd_unshare`): the range it covered must be flushed like a
    /// freed table, and the sync must follow before the table can be reused.
    ///
    /// The stride is that of the leaves under the cleared entry, not the entry's own
    /// level: the shared table may map 4 KiB pages, so every 4 KiB translation of the
    /// gigabyte may be cached (1 GiB at 4 KiB is over the ceiling: a full flush). Linux's
    /// hugetlb unshare, `tlb_flush_pmd_range(addr & PUD_MASK, PUD_SIZE)`, uses the PMD
    /// stride, because its shared tables hold only 2 MiB leaves; over 512 units it is a
    /// full flush too. A 1 GiB stride would be one INVLPG at the start of the gigabyte.
    pub fn unshare_table(&mut self, va: u64, size: u64) {
        self.extend(va, va + size);
        if self.ctx.mmu.breakage == Breakage::Stride {
            self.cleared.puds = true; // test-only: the cleared entry's own stride
        } else {
            self.cleared.ptes = true;
        }
        self.unshared_tables = true;
    }

    /// `tlb_remove_table`: into the batch, or — without a batch page — flush, sync, free.
    fn remove_table(&mut self, table: u64) {
        if self.table_batch.is_none() {
            self.table_batch = self.ctx.freer.alloc_batch(self.ctx.mem);
            self.ntables = 0;
        }
        let Some(batch) = self.table_batch else {
            // Fallback (`tlb_remove_table_one`): make the table unreachable from every
            // TLB now, exclude walkers, free at once. The table was unlinked just before
            // this call; only a flush after that may excuse the sync.
            let unlinked = UnlinkMark::now(self.mm);
            let receipt = self.flush_mmu_tlbonly();
            self.ctx.freer.table_sync_one(
                self.ctx.sync,
                self.ctx.mmu.stats,
                receipt.as_ref(),
                self.mm,
                unlinked,
            );
            self.ctx.mem.free_table(table);
            self.ctx
                .mmu
                .stats
                .count(self.ctx.sync.this_cpu(), TlbEvent::TablesFreed);
            self.last_receipt = receipt;
            return;
        };
        self.ctx
            .mem
            .entry(batch, self.ntables)
            .store(table, Ordering::Release);
        self.ntables += 1;
        self.ctx
            .mmu
            .stats
            .count(self.ctx.sync.this_cpu(), TlbEvent::TablesDeferred);
        if self.ntables == TABLE_BATCH {
            self.flush_mmu_tlbonly();
            self.table_flush();
        }
    }

    /// Hands the table batch to the freer (after the flush that unlinked its tables).
    fn table_flush(&mut self) {
        let Some(batch) = self.table_batch.take() else {
            return;
        };
        self.ctx
            .mem
            .entry(batch, BATCH_COUNT)
            .store(self.ntables as u64, Ordering::Release);
        self.ctx.freer.queue_batch(self.ctx.mem, batch);
        self.ntables = 0;
    }

    /// `tlb_flush_mmu_tlbonly`: flushes what was cleared since the last flush, if
    /// anything, and resets range and flags. Returns the flush's receipt.
    pub fn flush_mmu_tlbonly(&mut self) -> Option<FlushReceipt> {
        if !(self.cleared.any()
            || self.freed_tables
            || self.unshared_tables
            || self.fullmm
            || self.need_flush_all)
        {
            return None;
        }
        if !self.fullmm && !self.need_flush_all && self.start >= self.end {
            return None;
        }
        let (start, end) = if self.fullmm || self.need_flush_all {
            (0, FLUSH_ALL)
        } else {
            (self.start, self.end)
        };
        let tables = self.freed_tables || self.unshared_tables;
        let receipt =
            self.ctx
                .mmu
                .flush_tlb_mm_range(self.mm, start, end, self.cleared.stride_shift(), tables);
        self.reset_range();
        Some(receipt)
    }

    /// `tlb_flush_mmu`: flush, then free the table batch (grace period) and the pages.
    pub fn flush_mmu(&mut self) {
        if let Some(r) = self.flush_mmu_tlbonly() {
            self.last_receipt = Some(r);
        }
        self.table_flush();
        let cpu = self.ctx.sync.this_cpu();
        for &pa in &self.pages[..self.npages] {
            self.ctx.mem.free_frame(pa);
        }
        self.ctx
            .mmu
            .stats
            .add(cpu, TlbEvent::PagesFreed, self.npages as u64);
        self.npages = 0;
    }

    /// `tlb_finish_mmu`: a last flush and free; everything if another gather on the same
    /// address space is in flight. Returns the last flush's receipt, if any.
    pub fn finish(mut self) -> Option<FlushReceipt> {
        if self.mm.flush_pending.load(Ordering::SeqCst) > 1 {
            self.reset_range();
            self.fullmm = true;
            self.freed_tables = true;
        }
        if self.fullmm {
            // The whole address space goes away with its tables: lazy CPUs must leave it.
            self.freed_tables = true;
        }
        self.flush_mmu();
        self.mm.flush_pending.fetch_sub(1, Ordering::SeqCst);
        self.ctx
            .mmu
            .stats
            .count(self.ctx.sync.this_cpu(), TlbEvent::Gathers);
        self.ctx
            .freer
            .poll(self.ctx.sync, self.ctx.mem, self.ctx.mmu.stats);
        self.last_receipt.take()
    }
}

/// Size of the hole at `va`: how far the first absent entry on its path reaches.
fn hole_at(mem: &dyn PhysMem, root: u64, va: u64) -> u64 {
    let mut table = root;
    for level in (1..=4u32).rev() {
        let v = mem
            .entry(table, pgtable::index(va, level))
            .load(Ordering::Acquire);
        let span = 1u64 << (12 + 9 * (level - 1));
        if v & PRESENT == 0 {
            return span - (va & (span - 1));
        }
        table = v & ADDR_MASK;
    }
    pgtable::PAGE_SIZE
}

/// Unmaps `[start, end)` of the gather's address space (4 KiB and whole 2 MiB mappings),
/// queueing pages and freeing page tables that became empty, at every level below the
/// root. The caller holds the address space's page-table lock.
pub fn unmap_range(g: &mut MmuGather, start: u64, end: u64) {
    let mem = g.ctx.mem;
    let root = g.mm.root();
    let mut va = start;
    // A PTE table that had entries cleared and is not yet checked for emptiness: it is
    // checked once, when the walk leaves its 2 MiB block (Linux: `free_pgtables` after
    // the zap), not after every page.
    let mut cleared_in: Option<u64> = None;
    while va < end {
        if let Some(t) = cleared_in
            && t >> 21 != va >> 21
        {
            free_empty_tables(g, t);
            cleared_in = None;
        }
        let Some((level, e)) = pgtable::leaf(mem, root, va) else {
            va = va.saturating_add(hole_at(mem, root, va));
            continue;
        };
        let size = if level == 2 {
            pgtable::HUGE_SIZE
        } else {
            pgtable::PAGE_SIZE
        };
        let old = e.swap(0, Ordering::SeqCst);
        g.remove_tlb_entry(level, va & !(size - 1), size);
        if level == 2 {
            // A 2 MiB block goes back right after a flush that covers it.
            g.flush_mmu();
            mem.free_huge(old & ADDR_MASK);
            free_empty_tables(g, va);
        } else {
            g.remove_page(old & ADDR_MASK);
            cleared_in = Some(va);
        }
        va = (va & !(size - 1)).saturating_add(size);
    }
    if let Some(t) = cleared_in {
        free_empty_tables(g, t);
    }
}

/// `fullmm` teardown: unmaps the whole lower (user) half of `mm` and frees every table
/// below the root. The root itself stays with the caller.
pub fn teardown(ctx: &GatherCtx, mm: &AddressSpace) -> Option<FlushReceipt> {
    let mut g = MmuGather::new_fullmm(ctx, mm);
    unmap_range(&mut g, 0, 1 << 47);
    sweep_tables(&mut g, mm.root(), 4, 0);
    g.finish()
}

/// Frees every table below `table` (level `level`, covering addresses from `base`) in
/// the lower half; used after a full unmap, when they hold no mappings any more (such
/// as tables left empty by an unshare).
fn sweep_tables(g: &mut MmuGather, table: u64, level: u32, base: u64) {
    let mem = g.ctx.mem;
    let top = if level == 4 { 256 } else { pgtable::ENTRIES };
    for i in 0..top {
        let e = mem.entry(table, i);
        let v = e.load(Ordering::Acquire);
        if v & PRESENT == 0 || (level == 2 && v & HUGE != 0) {
            continue;
        }
        let va = base + ((i as u64) << (12 + 9 * (level - 1)));
        let child = v & ADDR_MASK;
        if level > 2 {
            sweep_tables(g, child, level - 1, va);
        }
        if pgtable::table_is_empty(mem, child) {
            e.store(0, Ordering::SeqCst);
            match level {
                2 => g.free_pte_table(va, child),
                3 => g.free_pmd_table(va, child),
                _ => g.free_pud_table(va, child),
            }
        }
    }
}

/// Unlinks and frees the tables on the path to `va` that became empty, bottom up,
/// never the root.
fn free_empty_tables(g: &mut MmuGather, va: u64) {
    let mem = g.ctx.mem;
    // tables[l] is the table at level l on the path (4 = root); `deepest` the lowest found.
    let mut tables = [0u64; 5];
    tables[4] = g.mm.root();
    let mut deepest = 4;
    for level in (2..=4usize).rev() {
        let v = mem
            .entry(tables[level], pgtable::index(va, level as u32))
            .load(Ordering::Acquire);
        if v & PRESENT == 0 || v & HUGE != 0 {
            break;
        }
        tables[level - 1] = v & ADDR_MASK;
        deepest = level - 1;
    }
    for level in deepest..=3 {
        let table = tables[level];
        if !pgtable::table_is_empty(mem, table) {
            return;
        }
        mem.entry(tables[level + 1], pgtable::index(va, level as u32 + 1))
            .store(0, Ordering::SeqCst);
        match level {
            1 => g.free_pte_table(va, table),
            2 => g.free_pmd_table(va, table),
            _ => g.free_pud_table(va, table),
        }
    }
}
