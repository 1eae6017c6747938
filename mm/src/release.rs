//! Releasing an address space for good (Linux's `exit_mmap`, then the last `mmdrop`).
//!
//! Who may free what, when:
//! - Everything below the root goes through a `fullmm` gather ([`crate::unmap::teardown`]): pages after
//!   its flush, tables after the flush and a grace period (or the sync), like any unmap.
//!   That flush is made as for freed tables, so CPUs that hold the address space lazily
//!   are interrupted too, and leave it.
//! - The root is different: a CPU that has the address space loaded (running a task of
//!   it, or lazily, in an idle loop or a kernel thread) has the root in CR3 and its
//!   speculative walks start there, whatever the TLB holds. The root may be freed only
//!   when no CPU has it loaded, i.e. when the address space's CPU mask is empty; that
//!   is proof because `switch_mm` clears a CPU's bit only after its CR3 holds another
//!   root. Lazy holders are told to leave by a cross call ([`Mmu::shoot_lazy_holders`],
//!   Linux's `MMU_LAZY_TLB_SHOOTDOWN`), not by the flush: a backend such as INVLPGB runs
//!   nothing on other CPUs, so a flush alone would leave them lazy forever. A CPU still
//!   running a task that is just ending leaves when it switches away. Until then the
//!   releaser waits and asks again (Linux keeps the `mm_struct` and its pgd alive by
//!   reference counts, `mm_count`, which lazy CPUs hold; gatherOS asks the mask instead).
//!
//! [`Mmu::shoot_lazy_holders`]: crate::flush::Mmu::shoot_lazy_holders

use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::gather::GatherCtx;
use crate::hw::TeardownSteps;
use crate::irq::IrqsOn;
use crate::teardown_step::{NoSteps, TeardownStep};
use crate::unmap::teardown_with_steps;

/// Tears `mm` down and frees its root once no CPU has it loaded. Between attempts it
/// calls `wait` (the caller yields, and returns false to give up); on giving up it
/// returns the CPUs that still have it loaded, and the root is not freed. The caller
/// guarantees nothing will load `mm` again.
#[track_caller]
pub fn release(ctx: &GatherCtx, mm: &AddressSpace, wait: impl FnMut() -> bool) -> Result<(), CpuMask> {
    release_with_steps(ctx, mm, &NoSteps, wait)
}

/// [`release`], telling `steps` each step before it is taken. It leaves the record
/// before each `wait` (the caller may run other work on this CPU meanwhile, whose
/// faults are not the release's) and when it returns. Interrupts on (it waits for other
/// CPUs): checked here.
#[track_caller]
pub fn release_with_steps(
    ctx: &GatherCtx,
    mm: &AddressSpace,
    steps: &dyn TeardownSteps,
    mut wait: impl FnMut() -> bool,
) -> Result<(), CpuMask> {
    let mut on = IrqsOn::check(ctx.mmu.tlb.cpu(), "releases an address space");
    teardown_with_steps(ctx, &mm.lock(), steps);
    loop {
        steps.enter(mm.id(), mm.root(), TeardownStep::ShootLazy);
        let holders = ctx.mmu.shoot_lazy_holders(&mut on, mm);
        if holders.is_empty() {
            break;
        }
        steps.leave();
        if !wait() {
            return Err(holders);
        }
    }
    // No atomic here; the free is ordered by two elsewhere: the empty mask was read by
    // `shoot_lazy_holders` (`AtomicCpuMask::load`, which is at least Acquire) and each CPU
    // cleared its bit after its CR3 load (`AtomicCpuMask::clear`, at least Release), so
    // every walk from this root happens before the free.
    steps.enter(mm.id(), mm.root(), TeardownStep::FreeRoot);
    ctx.mem.free_frame(mm.root());
    steps.leave();
    Ok(())
}
