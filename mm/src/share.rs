//! Shared page tables (hugetlb PMD sharing analogue) and unsharing.
//!
//! Several address spaces may point a level-3 entry at the same level-2 table. Unsharing
//! clears one address space's pointer; the table lives on for the others, so it is not
//! freed, but the flush is done as for a freed table (`unshared_tables`: lazy CPUs are
//! interrupted too) and `table_sync_one` follows: the last remaining sharer may reuse or
//! free the table, and no walker of this address space may still be inside it.
//! Unmapping inside a shared region is not supported: unshare first.

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::PageTableGuard;
use crate::entry::EntrySlot;
use crate::gather::{GatherCtx, MmuGather};
use crate::hw::PhysMem;
use crate::level::Level;
use crate::pgtable::{MapError, slot_or_alloc};
use crate::pt_walk::PathWalk;
use crate::receipt::FlushReceipt;

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

/// The level-3 slot for `va` under `root`, if the root entry above it is present.
fn pud_slot(mem: &dyn PhysMem, root: PhysAddr, va: VirtAddr) -> Option<EntrySlot<'_>> {
    PathWalk::new(mem, root, va)
        .find(|step| step.level == Level::Pud)
        .map(|step| step.slot)
}

/// Makes `other` use `owner`'s level-2 table for the 1 GiB region at `va`. Both locks
/// are held (owner's first): the owner's entry must not change while it is copied.
pub fn share_pmd_table(
    mem: &dyn PhysMem,
    owner: &PageTableGuard,
    other: &PageTableGuard,
    va: VirtAddr,
) -> Result<PhysAddr, ShareError> {
    let src = pud_slot(mem, owner.root(), va).ok_or(ShareError::NothingToShare)?;
    let v = src.read();
    if !v.is_table_at(Level::Pud) {
        return Err(ShareError::NothingToShare); // absent, or a 1 GiB page
    }
    let dst = slot_or_alloc(other, mem, va, Level::Pud).map_err(|e| match e {
        MapError::OutOfMemory => ShareError::OutOfMemory,
        MapError::AlreadyMapped => ShareError::Occupied,
    })?;
    if dst.read().is_present() {
        return Err(ShareError::Occupied);
    }
    // Before the table becomes reachable from the other root: a freer of either
    // address space must then look for every walk (`WalkTag::for_freeing`).
    owner.mm().mark_shared_tables(owner);
    other.mm().mark_shared_tables(other);
    dst.install(other, v);
    Ok(v.addr())
}

/// Unshares the level-2 table at `va` from the locked address space (`huge_pmd_unshare`):
/// clear, flush as a freed table, sync. Returns the flush's receipt, or None if no table
/// was there (a 1 GiB page there is left alone).
#[track_caller]
pub fn unshare_pmd_table(ctx: &GatherCtx, locked: &PageTableGuard, va: VirtAddr) -> Option<FlushReceipt> {
    let e = pud_slot(ctx.mem, locked.root(), va)?;
    if !e.read().is_table_at(Level::Pud) {
        return None;
    }
    // The gather first (it checks that this CPU may wait) and only then the unlink, so
    // that a refusal leaves nothing cleared and unflushed.
    let mut g = MmuGather::new(ctx, locked);
    let unlinked = e.unlink_shared(locked, Level::Pud);
    g.unshare_table(va);
    let receipt = g
        .flush_mmu_tlbonly()
        .expect("an unshared table is always flushed");
    ctx.freer.release(g.irqs_on(), unlinked, &receipt, &mut |_| {});
    g.finish();
    Some(receipt)
}
