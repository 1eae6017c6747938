//! Collapse (khugepaged analogue): a fully populated PTE table becomes one 2 MiB mapping.
//!
//! Order, as in Linux's `collapse_huge_page`: unlink the PTE table (clear the level-2
//! entry that points to it) and flush (`pmdp_collapse_flush`; gatherOS flushes it as a
//! freed table, so lazy CPUs are included), then release it (the sequence of
//! [`crate::unlinked_table`]: the sync, so that no lock-free walker can still be inside
//! the old PTE table; then, in its last use, copy the data and free the small pages;
//! then the table is freed), and install the huge mapping.
//!
//! The flush's stride is that of the 512 4 KiB leaves under the cleared entry, not the
//! entry's own 2 MiB: 512 pages is over the ceiling, so a full flush ("collapse entails
//! shooting down ptes not pmd"). A 2 MiB stride would make the range one unit, and the
//! handler's single INVLPG at `va` would leave the other 511 translations alive on every
//! CPU while their frames are freed.

use crate::addr::VirtAddr;
use crate::addr_space::PageTableGuard;
use crate::entry::{Entry, EntryFlags, EntrySlot};
use crate::gather::{FlushCause, FlushRequest, GatherCtx};
use crate::irq::IrqsOn;
use crate::level::{ENTRIES, Level};
use crate::pt_walk::PathWalk;
use crate::receipt::FlushReceipt;
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

/// Collapses the 2 MiB region at `va` of the locked address space. Interrupts on (it
/// flushes and syncs, waiting for other CPUs): checked here.
#[track_caller]
pub fn collapse(
    ctx: &GatherCtx,
    locked: &PageTableGuard,
    va: VirtAddr,
) -> Result<FlushReceipt, CollapseError> {
    let mut on = IrqsOn::check(ctx.mmu.tlb.cpu(), "collapses a 2 MiB region");
    let mem = ctx.mem;
    let mm = locked.mm();
    let va = va.align_down(Level::Pmd);
    let pmd = PathWalk::new(mem, locked.root(), va)
        .find(|step| step.level == Level::Pmd)
        .filter(|step| step.is_table())
        .ok_or(CollapseError::NoPteTable)?;
    let pte_table = pmd.entry.addr();
    if (0..ENTRIES).any(|i| {
        !EntrySlot::of(mem, locked.root(), pte_table, i)
            .read()
            .is_present()
    }) {
        return Err(CollapseError::NotFullyPopulated);
    }
    let huge = mem.alloc_huge().ok_or(CollapseError::OutOfMemory)?;
    let unlinked = pmd.slot.unlink(locked, Level::Pmd);
    let receipt = ctx.flush(
        &mut on,
        FlushRequest {
            mm,
            start: va,
            end: va + Level::Pmd.span(),
            stride: Level::Pte,
            tables: true,
            cause: FlushCause::Collapse,
        },
    );
    let cpu = ctx.mmu.tlb.cpu().this_cpu();
    // No walker is inside the old table any more: copy its pages, free them, and the
    // table after them.
    ctx.freer.release(&on, unlinked, &receipt, &mut |pte_table| {
        for i in 0..ENTRIES {
            let small = EntrySlot::of(mem, locked.root(), pte_table, i).read().addr();
            mem.copy_frame(huge + i as u64 * Level::Pte.span(), small);
            mem.free_frame(small);
        }
    });
    ctx.mmu.stats.add(cpu, TlbEvent::PagesFreed, ENTRIES as u64);
    pmd.slot.install(
        locked,
        Entry::huge_page(huge, EntryFlags::WRITABLE | EntryFlags::NO_EXECUTE),
    );
    Ok(receipt)
}
