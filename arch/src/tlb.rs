//! The x86 TLB instructions behind mm's [`LocalTlb`].

use mm::hw::{LocalTlb, RunningCpu};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

/// The running CPU's TLB: INVLPG, CR3 reloads, CR3 loads.
pub struct X86Tlb;

impl X86Tlb {
    /// Runs `f` with interrupts off (generic form of [`RunningCpu::with_irqs_off`]).
    pub fn with_irqs_off_fn<R>(&self, f: impl FnOnce() -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(f)
    }
}

impl RunningCpu for X86Tlb {
    fn this_cpu(&self) -> usize {
        crate::percpu::cpu_index()
    }

    fn with_irqs_off(&self, f: &mut dyn FnMut()) {
        x86_64::instructions::interrupts::without_interrupts(f)
    }

    fn irqs_enabled(&self) -> bool {
        x86_64::instructions::interrupts::are_enabled()
    }
}

impl LocalTlb for X86Tlb {
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
    }
}

/// The page-table root in the running CPU's CR3.
pub fn loaded_root() -> mm::addr::PhysAddr {
    mm::addr::PhysAddr::new(Cr3::read().0.start_address().as_u64())
}
