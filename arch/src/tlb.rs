//! The x86 TLB instructions behind mm's [`LocalTlb`].

use core::sync::atomic::{AtomicU64, Ordering};
use mm::cpumask::{CpuMask, MAX_CPUS};
use mm::hw::{LocalTlb, RunningCpu};

use crate::cpu::X86Cpu;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

/// The running CPU's TLB: INVLPG, CR3 reloads, CR3 loads.
pub struct X86Tlb;

impl LocalTlb for X86Tlb {
    fn cpu(&self) -> &dyn RunningCpu {
        &X86Cpu
    }

    fn flush_page(&self, va: mm::addr::VirtAddr) {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va.as_u64()));
    }

    fn flush_all(&self) {
        x86_64::instructions::tlb::flush_all();
    }

    fn load_root(&self, root: mm::addr::PhysAddr) {
        let frame = PhysFrame::containing_address(x86_64::PhysAddr::new(root.as_u64()));
        // SAFETY: every root mm hands us maps the kernel's upper half identically (the
        // kernel copies it into each new address space), so execution continues.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        // Relaxed: mm's `switch_mm` clears this CPU's bit in the old address space's mask
        // only after this returns (a Release RMW), and a releaser reads the empty mask
        // (Acquire) before it asks [`cpus_on_root`], so it sees this store.
        LOADED_ROOTS[crate::percpu::cpu_index()].store(root.as_u64(), Ordering::Relaxed);
    }
}

/// The root each CPU last loaded through [`X86Tlb`] (0: none yet; the boot tables),
/// which the fault path cannot read from another CPU's CR3.
static LOADED_ROOTS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The CPUs whose CR3 holds `root`, as far as their loads through mm tell (a CPU whose
/// load is under way may not be counted yet; one that has left it is not).
pub fn cpus_on_root(root: mm::addr::PhysAddr) -> CpuMask {
    (0..crate::cpus::count())
        .filter(|&c| LOADED_ROOTS[c].load(Ordering::Relaxed) == root.as_u64())
        .collect()
}

/// The page-table root in the running CPU's CR3.
pub fn loaded_root() -> mm::addr::PhysAddr {
    mm::addr::PhysAddr::new(Cr3::read().0.start_address().as_u64())
}
