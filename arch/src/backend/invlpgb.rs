//! AMD's INVLPGB + TLBSYNC broadcast invalidation: the hardware invalidates every CPU's
//! TLB and nobody takes an interrupt, so this flush never stands in for the sync.
//!
//! Chosen when CPUID reports INVLPGB (or `setcpuid=invlpgb` pretends it does, to test
//! the decision). QEMU cannot execute the instructions; when the CPU does not really
//! have them, the invalidation is emulated as the hardware behaves: each target's TLB is
//! emptied (by an IPI whose function only reloads CR3) and **no flush handler runs
//! there**, so lazy CPUs do not leave the address space and no CPU's flushed generation
//! moves, as with the real instruction; the receipt names nobody as interrupted. It
//! differs from the hardware in scope and cost: it reaches only the flush's targets
//! (the hardware invalidates on every CPU) and it does interrupt them to do so. Whatever must run on other CPUs (lazy holders leaving a dying address
//! space) must use its own cross call (`Mmu::shoot_lazy_holders`).

use mm::cpumask::CpuMask;
use mm::hw::{BackendKind, FlushBackend};
use mm::irq::{Handler, IrqsOn};

use crate::ipi::call_handler_on_many;
use crate::stats::IpiReason;

/// The INVLPGB backend.
pub struct Invlpgb {
    /// The CPU really executes INVLPGB/TLBSYNC.
    pub hardware: bool,
}

impl FlushBackend for Invlpgb {
    fn kind(&self) -> BackendKind {
        BackendKind::Invlpgb
    }

    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, _handler: &Handler) -> CpuMask {
        if self.hardware {
            // SAFETY: CPUID reports INVLPGB. rax=0 (no address/ASID/PCID filters), ecx=0,
            // edx=0: invalidate all non-global translations of every CPU, then wait.
            unsafe {
                core::arch::asm!(".byte 0x0f, 0x01, 0xfe", in("rax") 0u64, in("ecx") 0u32, in("edx") 0u32);
                core::arch::asm!(".byte 0x0f, 0x01, 0xff");
            }
            return CpuMask::new();
        }
        // Emulation: the same effect on every target's TLB, no handler, nobody counted
        // as interrupted (the hardware interrupts nobody).
        // The targets are mm's decision (`flush.rs`, rule 2), taken as given.
        call_handler_on_many(on, targets, IpiReason::Flush, &|_| {
            x86_64::instructions::tlb::flush_all()
        });
        CpuMask::new()
    }
}
