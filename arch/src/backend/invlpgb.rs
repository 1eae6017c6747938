//! AMD's INVLPGB + TLBSYNC broadcast invalidation: the hardware invalidates every CPU's
//! TLB and nobody takes an interrupt, so this flush never stands in for the sync.
//!
//! Chosen when CPUID reports INVLPGB (or `setcpuid=invlpgb` pretends it does, to test
//! the decision). QEMU cannot execute the instructions; when the CPU does not really
//! have them, the invalidation itself is carried out with IPIs, while the backend keeps
//! reporting its kind, so receipts still refuse the skip.

use mm::cpumask::CpuMask;
use mm::hw::{BackendKind, FlushBackend};

use crate::ipi::call_on_many;
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

    fn flush_others(&self, targets: &CpuMask, handler: &(dyn Fn() + Sync)) -> CpuMask {
        if self.hardware {
            // SAFETY: CPUID reports INVLPGB. rax=0 (no address/ASID/PCID filters), ecx=0,
            // edx=0: invalidate all non-global translations of every CPU, then wait.
            unsafe {
                core::arch::asm!(".byte 0x0f, 0x01, 0xfe", in("rax") 0u64, in("ecx") 0u32, in("edx") 0u32);
                core::arch::asm!(".byte 0x0f, 0x01, 0xff");
            }
            return CpuMask::new();
        }
        let mut sent = targets.and(&crate::cpus::online());
        sent.clear(crate::percpu::cpu_index());
        call_on_many(&sent, IpiReason::Flush, handler);
        sent
    }
}
