//! Shared page tables (hugetlb PMD sharing analogue) and unsharing.
//!
//! Several address spaces may point a level-3 entry at the same level-2 table. Unsharing
//! clears one address space's pointer; the table lives on for the others, so it is not
//! freed, but the flush is done as for a freed table (`unshared_tables`: lazy CPUs are
//! interrupted too) and `table_sync_one` follows: the last remaining sharer may reuse or
//! free the table, and no walker of this address space may still be inside it.
//! Unmapping inside a shared region is not supported: unshare first.

use core::sync::atomic::Ordering;

use crate::addr_space::AddressSpace;
use crate::gather::{GatherCtx, MmuGather};
use crate::pgtable::{self, ADDR_MASK, PRESENT, PhysMem, USER, WRITABLE};
use crate::receipt::{FlushReceipt, UnlinkMark};

/// Span of one level-3 entry.
pub const PUD_SIZE: u64 = 1 << 30;

/// Why sharing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareError {
    /// The owner has no level-2 table at `va`.
    NothingToShare,
    /// The other address space already maps something there.
    Occupied,
    /// No memory for the other address space's upper table.
    OutOfMemory,
}

fn pud_entry(mem: &dyn PhysMem, root: u64, va: u64, create: bool) -> Option<&core::sync::atomic::AtomicU64> {
    let e4 = mem.entry(root, pgtable::index(va, 4));
    let mut v = e4.load(Ordering::Acquire);
    if v & PRESENT == 0 {
        if !create {
            return None;
        }
        let t = mem.alloc_frame()?;
        e4.store(t | PRESENT | WRITABLE | USER, Ordering::Release);
        v = t | PRESENT;
    }
    Some(mem.entry(v & ADDR_MASK, pgtable::index(va, 3)))
}

/// Makes `other` use `owner`'s level-2 table for the 1 GiB region at `va`.
pub fn share_pmd_table(
    mem: &dyn PhysMem,
    owner: &AddressSpace,
    other: &AddressSpace,
    va: u64,
) -> Result<u64, ShareError> {
    let src = pud_entry(mem, owner.root(), va, false).ok_or(ShareError::NothingToShare)?;
    let v = src.load(Ordering::Acquire);
    if v & PRESENT == 0 {
        return Err(ShareError::NothingToShare);
    }
    let dst = pud_entry(mem, other.root(), va, true).ok_or(ShareError::OutOfMemory)?;
    if dst.load(Ordering::Acquire) & PRESENT != 0 {
        return Err(ShareError::Occupied);
    }
    dst.store(v, Ordering::Release);
    Ok(v & ADDR_MASK)
}

/// Unshares the level-2 table at `va` from `mm` (`huge_pmd_unshare`): clear, flush as a
/// freed table, sync. Returns the flush's receipt, or None if nothing was shared there.
pub fn unshare_pmd_table(ctx: &GatherCtx, mm: &AddressSpace, va: u64) -> Option<FlushReceipt> {
    let e = pud_entry(ctx.mem, mm.root(), va, false)?;
    if e.swap(0, Ordering::SeqCst) & PRESENT == 0 {
        return None;
    }
    let unlinked = UnlinkMark::now(mm);
    let mut g = MmuGather::new(ctx, mm);
    g.unshare_table(va & !(PUD_SIZE - 1), PUD_SIZE);
    let receipt = g.flush_mmu_tlbonly();
    ctx.freer
        .table_sync_one(ctx.sync, ctx.mmu.stats, receipt.as_ref(), mm, unlinked);
    g.finish();
    receipt
}
