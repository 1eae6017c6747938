//! Physical memory for page tables and user pages: mm's `PhysMem` over the frame
//! allocator, reached through the bootloader's physical-memory mapping
//! ([`crate::mem::layout`]). Freed frames and tables go through [`crate::mem::poison`]
//! first, so that a stale reader sees poison rather than a reused frame.

use core::sync::atomic::AtomicU64;
use mm::addr::PhysAddr;
use mm::hw::PhysMem;
use mm::level::{ENTRIES, Level};

use crate::mem::{frames, huge_pool, paging, poison};

/// Physical memory through the bootloader's mapping and the frame allocator.
pub struct KernelMem;

impl PhysMem for KernelMem {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        frames::alloc_zeroed().map(|f| PhysAddr::new(f.as_u64()))
    }

    fn free_frame(&self, pa: PhysAddr) {
        poison::poison_data_frame(pa.as_u64());
        frames::free(x86_64::PhysAddr::new(pa.as_u64()));
    }

    fn free_table(&self, pa: PhysAddr) {
        if !poison::free_table_poisoned(pa.as_u64()) {
            frames::free(x86_64::PhysAddr::new(pa.as_u64()));
        }
    }

    fn alloc_huge(&self) -> Option<PhysAddr> {
        // Not zeroed: the caller fills the whole block (as Linux's collapse does).
        huge_pool::take().map(PhysAddr::new)
    }

    fn copy_frame(&self, dst: PhysAddr, src: PhysAddr) {
        let (dst, src) = (dst.as_u64(), src.as_u64());
        let off = paging::phys_offset();
        // SAFETY: both are whole frames owned by the caller (a page being collapsed and
        // the huge block replacing it), mapped at phys_offset, and distinct.
        unsafe { core::ptr::copy_nonoverlapping((src + off) as *const u8, (dst + off) as *mut u8, 4096) };
    }

    fn free_huge(&self, pa: PhysAddr) {
        let pa = pa.as_u64();
        (0..ENTRIES as u64).for_each(|i| poison::poison_data_frame(pa + i * Level::Pte.span()));
        huge_pool::give_back(pa);
    }

    fn word(&self, frame: PhysAddr, index: usize) -> &AtomicU64 {
        paging::phys_word(frame.as_u64(), index)
    }
}

/// Physical memory for page tables.
pub static MEM: KernelMem = KernelMem;

/// Writes `value` into physical memory at `pa` (through the physical mapping).
pub fn write_phys(pa: u64, value: u64) {
    // SAFETY: `pa` is a frame the caller owns, mapped at phys_offset.
    unsafe { core::ptr::write_volatile((pa + paging::phys_offset()) as *mut u64, value) }
}
