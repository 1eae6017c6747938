//! The x86 TLB instructions behind mm's [`LocalTlb`].

use mm::hw::LocalTlb;
use x86_64::PhysAddr;
use x86_64::VirtAddr;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

/// The running CPU's TLB: INVLPG, CR3 reloads, CR3 loads.
pub struct X86Tlb;

impl X86Tlb {
    /// Runs `f` with interrupts off (generic form of [`LocalTlb::with_irqs_off`]).
    pub fn with_irqs_off_fn<R>(&self, f: impl FnOnce() -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(f)
    }
}

impl LocalTlb for X86Tlb {
    fn this_cpu(&self) -> usize {
        crate::percpu::cpu_index()
    }

    fn flush_page(&self, va: u64) {
        x86_64::instructions::tlb::flush(VirtAddr::new_truncate(va));
    }

    fn flush_all(&self) {
        x86_64::instructions::tlb::flush_all();
    }

    fn load_root(&self, root: u64) {
        let frame = PhysFrame::containing_address(PhysAddr::new(root));
        // SAFETY: every root mm hands us maps the kernel's upper half identically (the
        // kernel copies it into each new address space), so execution continues.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    }

    fn with_irqs_off(&self, f: &mut dyn FnMut()) {
        x86_64::instructions::interrupts::without_interrupts(f)
    }

    fn irqs_enabled(&self) -> bool {
        x86_64::instructions::interrupts::are_enabled()
    }
}

/// The page-table root in the running CPU's CR3.
pub fn loaded_root() -> u64 {
    Cr3::read().0.start_address().as_u64()
}
