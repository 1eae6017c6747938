//! A memory read that may fault: the probe of the TLB coherence oracle.
//!
//! [`read_u64`] loads one word through a virtual address. If the load faults (nothing
//! mapped, or the translation is gone), the page-fault handler sees that the faulting
//! instruction is the probe's load and resumes at the probe's fault exit instead of
//! panicking: an exception-table entry of one (Linux's `_ASM_EXTABLE` /
//! `copy_from_kernel_nofault`). Written in assembly so that the faulting instruction
//! has a known address and nothing of the caller's state lives across it.

use core::sync::atomic::{AtomicU64, Ordering};
use mm::cpumask::MAX_CPUS;
use x86_64::structures::idt::InterruptStackFrame;

/// Why a probe read faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFault {
    /// Nothing mapped (a not-present entry on the walk).
    NotMapped,
    /// The walk met reserved bits: it went through a poisoned (freed) page table.
    Reserved,
    /// Any other page fault (a protection violation).
    Other,
}

/// The error code of each CPU's last probe fault (written by the fault handler).
static LAST_ERROR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

// rdi = address. Returns rax = the word, rdx = 0; or, after a fault, rax = 0, rdx = 1.
core::arch::global_asm!(
    ".pushsection .text.gatheros_probe, \"ax\"",
    ".global gatheros_probe_read",
    "gatheros_probe_read:",
    "    xor edx, edx",
    ".global gatheros_probe_load",
    "gatheros_probe_load:",
    "    mov rax, qword ptr [rdi]",
    "    ret",
    ".global gatheros_probe_fault",
    "gatheros_probe_fault:",
    "    mov edx, 1",
    "    xor eax, eax",
    "    ret",
    ".popsection",
);

#[repr(C)]
struct Raw {
    value: u64,
    faulted: u64,
}

// SAFETY: the three symbols are defined by the `global_asm!` above, with this signature
// (rdi in; rax:rdx out as a 16-byte `repr(C)` struct) and as code labels.
unsafe extern "sysv64" {
    fn gatheros_probe_read(addr: u64) -> Raw;
    static gatheros_probe_load: u8;
    static gatheros_probe_fault: u8;
}

/// Reads the word at `va`, or says why the read faulted.
pub fn read_u64(va: u64) -> Result<u64, ProbeFault> {
    // SAFETY: the routine only loads from `va`; a fault there is caught by `fixup`
    // (the page-fault handler), which resumes at the routine's fault exit. It clobbers
    // only rax and rdx, the return registers of the declared ABI.
    let r = unsafe { gatheros_probe_read(va & !7) };
    if r.faulted == 0 {
        return Ok(r.value);
    }
    let error = LAST_ERROR[crate::percpu::cpu_index()].load(Ordering::Relaxed);
    Err(if error & (1 << 3) != 0 {
        ProbeFault::Reserved
    } else if error & 1 == 0 {
        ProbeFault::NotMapped
    } else {
        ProbeFault::Other
    })
}

/// Called by the page-fault handler with the fault's error code: if the fault is the
/// probe's load, records the code, redirects the return to the probe's fault exit and
/// returns true.
pub(crate) fn fixup(frame: &mut InterruptStackFrame, error: u64) -> bool {
    let load = &raw const gatheros_probe_load as u64;
    if frame.instruction_pointer.as_u64() != load {
        return false;
    }
    LAST_ERROR[crate::percpu::cpu_index()].store(error, Ordering::Relaxed);
    let resume = x86_64::VirtAddr::new(&raw const gatheros_probe_fault as u64);
    // SAFETY: the new RIP is the probe's own fault exit, in the same function, with the
    // same stack and registers: execution continues as if the load had returned.
    unsafe { frame.as_mut().update(|f| f.instruction_pointer = resume) };
    true
}
