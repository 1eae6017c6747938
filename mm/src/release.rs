//! Releasing an address space for good (Linux's `exit_mmap`, then the last `mmdrop`).
//!
//! Who may free what, when:
//! - Everything below the root goes through a `fullmm` gather ([`teardown`]): pages after
//!   its flush, tables after the flush and a grace period (or the sync), like any unmap.
//!   That flush is made as for freed tables, so CPUs that hold the address space lazily
//!   are interrupted too, and leave it.
//! - The root is different: a CPU that has the address space loaded (running a task of
//!   it, or lazily, in an idle loop or a kernel thread) has the root in CR3 and its
//!   speculative walks start there, whatever the TLB holds. The root may be freed only
//!   when no CPU has it loaded, i.e. when the address space's CPU mask is empty. Lazy
//!   CPUs leave at the next freed-tables flush; a CPU still running a task that is just
//!   ending leaves when it switches away. Until then the releaser waits and flushes
//!   again (Linux keeps the `mm_struct` and its pgd alive by reference counts, `mm_count`,
//!   which lazy CPUs hold; gatherOS has no reference counts and asks the mask instead).

use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::flush::FLUSH_ALL;
use crate::gather::{GatherCtx, teardown};

/// Tears `mm` down and frees its root once no CPU has it loaded. Between attempts it
/// calls `wait` (the caller yields, and returns false to give up); on giving up it
/// returns the CPUs that still have it loaded, and the root is not freed. The caller
/// guarantees nothing will load `mm` again.
pub fn release(ctx: &GatherCtx, mm: &AddressSpace, mut wait: impl FnMut() -> bool) -> Result<(), CpuMask> {
    {
        let _g = mm.pt_lock.lock();
        teardown(ctx, mm);
    }
    loop {
        let holders = mm.cpumask.load();
        if holders.is_empty() {
            break;
        }
        if !wait() {
            return Err(holders);
        }
        // Lazy holders leave on a freed-tables flush (nothing is left to flush).
        ctx.mmu.flush_tlb_mm_range(mm, 0, FLUSH_ALL, 12, true);
    }
    ctx.mem.free_frame(mm.root());
    Ok(())
}
