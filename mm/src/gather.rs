//! `MmuGather`: batching the teardown of mappings so that nothing is freed before the
//! TLB flush that makes it unreachable (Linux's `asm-generic/tlb.h`, `mm/mmu_gather.c`).
//!
//! # Who may free what, when
//!
//! Tearing down a mapping has three steps, always in this order:
//! 1. **Clear** the entry (under the address space's page-table lock) and tell the
//!    gather: `remove_tlb_entry` extends the range to flush and records the level
//!    (`cleared_ptes` .. `cleared_p4ds`); the page goes into a page batch
//!    (`remove_page`); a page table that became empty is unlinked from its parent
//!    (`EntrySlot::unlink`, which returns it as an [`UnlinkedTable`]) and handed to
//!    `free_table` (Linux's `pte_free_tlb` / `pmd_free_tlb` / `pud_free_tlb`), which also
//!    sets `freed_tables`. The walks that do the clearing (unmap, teardown)
//!    are in [`crate::unmap`], as Linux keeps `mm/memory.c` apart from
//!    `mm/mmu_gather.c`.
//! 2. **Flush** (`flush_mmu_tlbonly`): one `flush_tlb_mm_range` for the whole range, with
//!    the stride of the smallest level cleared, everything if `fullmm`/`need_flush_all`,
//!    and `freed_tables || unshared_tables` so that lazy CPUs are interrupted when a table
//!    went away. After it, no CPU's TLB or paging-structure cache holds the old entries.
//! 3. **Free**: data pages right after the flush (nothing can reach them any more); page
//!    tables only once no lock-free walker can still be inside them: through the table
//!    batch and a grace (or walk) period, or, if no batch page can be had, through
//!    `TableFreer::release`, whose sync may be skipped only with the flush's receipt (the
//!    one sequence of [`crate::unlinked_table`], which collapse and unshare follow too).
//!
//! A full page batch forces steps 2 and 3 early (`flush_mmu`). Two gathers in flight on
//! the same address space at once (`flush_pending > 1`) make `finish` flush everything:
//! the other one may have cleared entries that are not flushed yet. Tables shared with
//! other address spaces are not freed but *unshared* (`unshared_tables`); the sync still
//! follows, since the last sharer may reuse the table.

use core::sync::atomic::Ordering;

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::{AddressSpace, PageTableGuard};
use crate::flush::{FLUSH_ALL, Mmu};
use crate::hw::PhysMem;
use crate::irq::IrqsOn;
use crate::level::Level;
use crate::receipt::FlushReceipt;
use crate::stats::TlbEvent;
use crate::table_free::{TableBatch, TableFreer};
use crate::unlinked_table::UnlinkedTable;

/// Pages one gather holds before it must flush and free (Linux: ~510 per batch page,
/// about 10000 in all; gatherOS uses one fixed batch).
pub const PAGE_BATCH: usize = 512;

/// Everything a gather talks to.
pub struct GatherCtx<'a> {
    /// TLB machinery.
    pub mmu: Mmu<'a>,
    /// Physical memory.
    pub mem: &'a dyn PhysMem,
    /// The table freer, with the hardware, memory and counters it works with.
    pub freer: TableFreer<'a>,
    /// How the gather, collapse and unshare ask for their flushes: [`AsAsked`] (the
    /// [`Mmu`] flushes exactly what was asked) unless a test wires in a double.
    pub flushes: &'a dyn FlushRequests,
}

impl GatherCtx<'_> {
    /// The flush of a gather, a collapse or an unshare, through [`GatherCtx::flushes`].
    pub fn flush(&self, on: &mut IrqsOn, req: FlushRequest) -> FlushReceipt {
        self.flushes.flush(&self.mmu, on, req)
    }
}

/// One flush as unmapping, collapse and unsharing ask for it: the arguments of
/// [`Mmu::flush_tlb_mm_range`], before its ceiling turns a long range into a full flush.
#[derive(Debug, Clone, Copy)]
pub struct FlushRequest<'a> {
    /// The address space.
    pub mm: &'a AddressSpace,
    /// First address.
    pub start: VirtAddr,
    /// End address (exclusive).
    pub end: VirtAddr,
    /// The stride: the level of the translations that may be cached.
    pub stride: Level,
    /// Page tables were freed or unshared (lazy CPUs are included).
    pub tables: bool,
    /// Which step asks.
    pub cause: FlushCause,
}

/// Which teardown step asks for a flush: the flush is the same protocol for all three;
/// a request says where it comes from (for whoever watches the requests: a test double,
/// a trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushCause {
    /// A gather's flush: entries cleared by unmap or teardown.
    Unmap,
    /// A collapse: the level-2 entry over a full PTE table was cleared.
    Collapse,
    /// An unshare: the level-3 entry over a shared level-2 table was cleared.
    Unshare,
}

impl FlushRequest<'_> {
    /// Sends the request, as asked, through `mmu` (waiting for other CPUs: `on`).
    pub fn send(self, mmu: &Mmu, on: &mut IrqsOn) -> FlushReceipt {
        mmu.flush_tlb_mm_range(on, self.mm, self.start, self.end, self.stride, self.tables)
    }
}

/// Where the flushes of unmapping, collapse and unsharing go. The product's is [`AsAsked`];
/// the seam exists for test doubles that rewrite a request before the [`Mmu`] sees it
/// (the kernel's `tlb::faults`), since the range is gone once `flush_tlb_mm_range` has
/// applied its ceiling.
pub trait FlushRequests: Sync {
    /// Flushes what `req` asks for through `mmu` (waiting for other CPUs: `on`).
    fn flush(&self, mmu: &Mmu, on: &mut IrqsOn, req: FlushRequest) -> FlushReceipt;
}

/// The product's [`FlushRequests`]: [`Mmu::flush_tlb_mm_range`], as asked.
pub struct AsAsked;

impl FlushRequests for AsAsked {
    fn flush(&self, mmu: &Mmu, on: &mut IrqsOn, req: FlushRequest) -> FlushReceipt {
        req.send(mmu, on)
    }
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

    /// Records that an entry at `level` was cleared.
    pub fn set(&mut self, level: Level) {
        match level {
            Level::Pte => self.ptes = true,
            Level::Pmd => self.pmds = true,
            Level::Pud => self.puds = true,
            Level::Pgd => self.p4ds = true,
        }
    }

    /// The flush stride: the smallest level cleared (the root's when none was).
    pub fn stride(&self) -> Level {
        if self.ptes {
            Level::Pte
        } else if self.pmds {
            Level::Pmd
        } else if self.puds {
            Level::Pud
        } else {
            Level::Pgd
        }
    }
}

/// One gather on one address space: the one whose page-table lock the guard it is built
/// from holds, for as long as the gather lives (Linux's `tlb_gather_mmu` under the mmap
/// lock).
///
/// It is built from the guard, so this compiles:
/// ```
/// # use mm::{addr_space::PageTableGuard, gather::{GatherCtx, MmuGather}};
/// fn start<'a>(ctx: &'a GatherCtx<'a>, locked: &'a PageTableGuard<'a>) -> MmuGather<'a> {
///     MmuGather::new(ctx, locked)
/// }
/// ```
/// and a gather on an address space whose lock is not held does not:
/// ```compile_fail
/// # use mm::{addr_space::AddressSpace, gather::{GatherCtx, MmuGather}};
/// fn start<'a>(ctx: &'a GatherCtx<'a>, mm: &'a AddressSpace) -> MmuGather<'a> {
///     MmuGather::new(ctx, mm)
/// }
/// ```
pub struct MmuGather<'a> {
    ctx: &'a GatherCtx<'a>,
    locked: &'a PageTableGuard<'a>,
    /// `locked.mm()`, kept at hand.
    mm: &'a AddressSpace,
    /// Range to flush, `[start, end)`; empty when `start >= end`.
    pub start: VirtAddr,
    /// See `start`.
    pub end: VirtAddr,
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
    pages: [PhysAddr; PAGE_BATCH],
    npages: usize,
    table_batch: Option<TableBatch<'a>>,
    last_receipt: Option<FlushReceipt>,
    /// The gather flushes and syncs, which wait for other CPUs: interrupts are on.
    on: IrqsOn,
    /// Tracing recorded when the gather began ([`trace::on`], read once per gather: the
    /// per-entry sites of the walks that clear read this instead, see `trace::event_if`).
    traced: bool,
    /// What the whole gather covered, for its `gather_end` trace event (kept only when
    /// `traced`).
    span: TracedSpan,
}

/// The range, table levels freed and tables flag of a whole gather (trace only).
#[derive(Debug, Clone, Copy)]
struct TracedSpan {
    start: u64,
    end: u64,
    levels: u64,
    tables: bool,
}

impl<'a> MmuGather<'a> {
    /// `tlb_gather_mmu`: starts a gather on the locked address space. Interrupts must be
    /// on (the gather's flushes and syncs wait for other CPUs): checked here, once.
    #[track_caller]
    pub fn new(ctx: &'a GatherCtx<'a>, locked: &'a PageTableGuard<'a>) -> Self {
        let mm = locked.mm();
        let on = IrqsOn::check(ctx.mmu.tlb.cpu(), "starts an mmu_gather");
        // SeqCst is more than needed: a nested gather learns of this one through the
        // entries this one clears, which it reads under the same page-table lock, so the
        // lock's release/acquire already orders this increment before its `finish`'s
        // read (Relaxed would do, as Linux's `inc_tlb_flush_pending` relies on its
        // page-table lock too). Not a loom site: no model runs two gathers at once.
        mm.flush_pending.fetch_add(1, Ordering::SeqCst);
        let traced = trace::on();
        trace::event_if!(traced, GatherBegin, mm.id());
        Self {
            ctx,
            locked,
            mm,
            start: VirtAddr::new(u64::MAX),
            end: VirtAddr::new(0),
            fullmm: false,
            need_flush_all: false,
            freed_tables: false,
            unshared_tables: false,
            cleared: Cleared::default(),
            pages: [PhysAddr::new(0); PAGE_BATCH],
            npages: 0,
            table_batch: None,
            last_receipt: None,
            on,
            traced,
            span: TracedSpan {
                start: u64::MAX,
                end: 0,
                levels: 0,
                tables: false,
            },
        }
    }

    /// `tlb_gather_mmu_fullmm`: a gather that tears down all of the locked address space.
    #[track_caller]
    pub fn new_fullmm(ctx: &'a GatherCtx<'a>, locked: &'a PageTableGuard<'a>) -> Self {
        let mut g = Self::new(ctx, locked);
        g.fullmm = true;
        g
    }

    /// Whether this gather records trace events (tracing was on when it began).
    pub fn traced(&self) -> bool {
        self.traced
    }

    /// The address space.
    pub fn mm(&self) -> &'a AddressSpace {
        self.mm
    }

    /// The guard of the address space's page-table lock: what the walks that clear
    /// entries for this gather write under.
    pub fn locked(&self) -> &'a PageTableGuard<'a> {
        self.locked
    }

    /// The gather's capability to wait for other CPUs (interrupts are on).
    pub fn irqs_on(&self) -> &IrqsOn {
        &self.on
    }

    /// What the gather talks to.
    pub fn ctx(&self) -> &'a GatherCtx<'a> {
        self.ctx
    }

    fn extend(&mut self, start: VirtAddr, end: VirtAddr) {
        if self.traced {
            self.span.start = self.span.start.min(start.as_u64());
            self.span.end = self.span.end.max(end.as_u64());
        }
        self.start = self.start.min(start);
        self.end = self.end.max(end);
    }

    fn reset_range(&mut self) {
        self.start = VirtAddr::new(u64::MAX);
        self.end = VirtAddr::new(0);
        self.freed_tables = false;
        self.unshared_tables = false;
        self.cleared = Cleared::default();
    }

    /// The entry at `level` that mapped `va` (and the rest of its span) was cleared.
    pub fn remove_tlb_entry(&mut self, level: Level, va: VirtAddr) {
        let start = va.align_down(level);
        self.extend(start, start + level.span());
        self.cleared.set(level);
    }

    /// Queues a data page to be freed after the flush; a full batch flushes first.
    pub fn remove_page(&mut self, pa: PhysAddr) {
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

    /// `pte_free_tlb` / `pmd_free_tlb` / `pud_free_tlb`: `table`, of level `level`,
    /// which mapped around `va`, was unlinked from the entry above it (step 1 of
    /// [`crate::unlinked_table`]); the gather flushes it and hands it to the freer.
    pub fn free_table(&mut self, level: Level, va: VirtAddr, table: UnlinkedTable<'a>) {
        self.extend(va, va + Level::Pte.span());
        self.cleared
            .set(level.above().expect("the root is never freed by a gather"));
        self.freed_tables = true;
        if self.traced {
            self.span.levels |= 1 << level.number();
            self.span.tables = true;
        }
        self.remove_table(table);
    }

    /// The level-3 entry for `va`, pointing to a table shared with other address spaces,
    /// was cleared in this one (`huge_pmd_unshare`): the gigabyte it covered must be flushed like a
    /// freed table, and the sync must follow before the table can be reused.
    ///
    /// The stride is that of the leaves under the cleared entry, not the entry's own
    /// level: the shared table may map 4 KiB pages, so every 4 KiB translation of the
    /// gigabyte may be cached (1 GiB at 4 KiB is over the ceiling: a full flush). Linux's
    /// hugetlb unshare, `tlb_flush_pmd_range(addr & PUD_MASK, PUD_SIZE)`, uses the PMD
    /// stride, because its shared tables hold only 2 MiB leaves; over 512 units it is a
    /// full flush too. A 1 GiB stride would be one INVLPG at the start of the gigabyte.
    pub fn unshare_table(&mut self, va: VirtAddr) {
        let start = va.align_down(Level::Pud);
        self.extend(start, start + Level::Pud.span());
        self.cleared.set(Level::Pte);
        self.unshared_tables = true;
    }

    /// `tlb_remove_table`: into the batch, or — without a batch page — flush, then
    /// [`TableFreer::release`] (sync, free).
    fn remove_table(&mut self, table: UnlinkedTable<'a>) {
        if self.table_batch.is_none() {
            self.table_batch = self.ctx.freer.alloc_batch(self.mm);
        }
        let Some(batch) = self.table_batch.as_mut() else {
            // Fallback (`tlb_remove_table_one`): make the table unreachable from every
            // TLB now, exclude walkers, free at once.
            let receipt = self.flush_mmu_tlbonly().expect("a freed table is always flushed");
            self.ctx.freer.release(&self.on, table, &receipt, &mut |_| {});
            self.last_receipt = Some(receipt);
            return;
        };
        if self.ctx.freer.defer(batch, table) {
            if let Some(r) = self.flush_mmu_tlbonly() {
                self.last_receipt = Some(r);
            }
            self.table_flush();
        }
    }

    /// Hands the table batch to the freer, with the receipt of the flush after its last
    /// unlink (the caller flushed just before).
    fn table_flush(&mut self) {
        let Some(batch) = self.table_batch.take() else {
            return;
        };
        let receipt = self
            .last_receipt
            .as_ref()
            .expect("a batch of tables is queued after their flush");
        self.ctx.freer.queue_batch(batch, receipt);
    }

    /// `tlb_flush_mmu_tlbonly`: flushes what was cleared since the last flush, if
    /// anything, and resets range and flags. Returns the flush's receipt.
    pub(crate) fn flush_mmu_tlbonly(&mut self) -> Option<FlushReceipt> {
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
            (VirtAddr::new(0), FLUSH_ALL)
        } else {
            (self.start, self.end)
        };
        let tables = self.freed_tables || self.unshared_tables;
        let receipt = self.ctx.flush(
            &mut self.on,
            FlushRequest {
                mm: self.mm,
                start,
                end,
                stride: self.cleared.stride(),
                tables,
                cause: if self.unshared_tables {
                    FlushCause::Unshare
                } else {
                    FlushCause::Unmap
                },
            },
        );
        self.reset_range();
        Some(receipt)
    }

    /// `tlb_flush_mmu`: flush, then free the table batch (grace period) and the pages.
    pub fn flush_mmu(&mut self) {
        if let Some(r) = self.flush_mmu_tlbonly() {
            self.last_receipt = Some(r);
        }
        self.table_flush();
        let cpu = self.ctx.mmu.tlb.cpu().this_cpu();
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
            .count(self.ctx.mmu.tlb.cpu().this_cpu(), TlbEvent::Gathers);
        self.ctx.freer.poll();
        let t = self.span;
        trace::event_if!(
            self.traced,
            GatherEnd,
            self.mm.id(),
            t.start,
            t.end,
            t.levels,
            t.tables,
            self.fullmm
        );
        self.last_receipt.take()
    }
}

#[cfg(test)]
#[path = "gather_tests.rs"]
mod tests;
