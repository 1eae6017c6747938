//! Collapse (khugepaged analogue): a fully populated PTE table becomes one 2 MiB mapping.
//!
//! Order, as in Linux's `collapse_huge_page`: clear the level-2 entry that points to the
//! PTE table and flush (`pmdp_collapse_flush`; gatherOS flushes it as a freed table, so
//! lazy CPUs are included), then `table_sync_one` so that no lock-free walker can still
//! be inside the old PTE table, copy the data, free the small pages and the table, and
//! install the huge mapping.
//!
//! The flush's stride is that of the 512 4 KiB leaves under the cleared entry, not the
//! entry's own 2 MiB: 512 pages is over the ceiling, so a full flush ("collapse entails
//! shooting down ptes not pmd"). A 2 MiB stride would make the range one unit, and the
//! handler's single INVLPG at `va` would leave the other 511 translations alive on every
//! CPU while their frames are freed.

use core::sync::atomic::Ordering;

use crate::addr_space::AddressSpace;
use crate::breakage::Breakage;
use crate::gather::GatherCtx;
use crate::pgtable::{self, ADDR_MASK, ENTRIES, HUGE, HUGE_SIZE, NO_EXECUTE, PRESENT, WRITABLE};
use crate::receipt::{FlushReceipt, UnlinkMark};
use crate::stats::TlbEvent;

/// Why a collapse did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollapseError {
    /// No PTE table there (absent, or already huge).
    NoPteTable,
    /// Some PTE is empty: only fully populated tables collapse.
    NotFullyPopulated,
    /// No 2 MiB block available.
    OutOfMemory,
}

/// Collapses the 2 MiB region at `va` of `mm`. The caller holds the page-table lock.
pub fn collapse(ctx: &GatherCtx, mm: &AddressSpace, va: u64) -> Result<FlushReceipt, CollapseError> {
    let mem = ctx.mem;
    let va = va & !(HUGE_SIZE - 1);
    let mut table = mm.root();
    for level in (3..=4).rev() {
        let v = mem
            .entry(table, pgtable::index(va, level))
            .load(Ordering::Acquire);
        if v & PRESENT == 0 {
            return Err(CollapseError::NoPteTable);
        }
        table = v & ADDR_MASK;
    }
    let pmd = mem.entry(table, pgtable::index(va, 2));
    let v = pmd.load(Ordering::Acquire);
    if v & PRESENT == 0 || v & HUGE != 0 {
        return Err(CollapseError::NoPteTable);
    }
    let pte_table = v & ADDR_MASK;
    if (0..ENTRIES).any(|i| mem.entry(pte_table, i).load(Ordering::Acquire) & PRESENT == 0) {
        return Err(CollapseError::NotFullyPopulated);
    }
    let huge = mem.alloc_huge().ok_or(CollapseError::OutOfMemory)?;
    pmd.store(0, Ordering::SeqCst);
    let unlinked = UnlinkMark::now(mm);
    let stride = if ctx.mmu.breakage == Breakage::Stride {
        pgtable::HUGE_SHIFT // test-only: the cleared entry's own stride
    } else {
        pgtable::PAGE_SHIFT
    };
    let receipt = ctx.mmu.flush_tlb_mm_range(mm, va, va + HUGE_SIZE, stride, true);
    ctx.freer
        .table_sync_one(ctx.sync, ctx.mmu.stats, Some(&receipt), mm, unlinked);
    let cpu = ctx.sync.this_cpu();
    for i in 0..ENTRIES {
        let small = mem.entry(pte_table, i).load(Ordering::Acquire) & ADDR_MASK;
        mem.copy_frame(huge + i as u64 * pgtable::PAGE_SIZE, small);
        mem.free_frame(small);
    }
    mem.free_table(pte_table);
    ctx.mmu.stats.add(cpu, TlbEvent::PagesFreed, ENTRIES as u64);
    ctx.mmu.stats.count(cpu, TlbEvent::TablesFreed);
    pmd.store(huge | PRESENT | WRITABLE | HUGE | NO_EXECUTE, Ordering::Release);
    Ok(receipt)
}
