//! Physical memory for page tables and user pages: mm's `PhysMem` over the frame
//! allocator, reached through the bootloader's physical-memory mapping
//! ([`crate::mem::layout`]). Freed frames and tables go through [`crate::mem::poison`]
//! first, so that a stale reader sees poison rather than a reused frame.

use core::sync::atomic::AtomicU64;
use mm::pgtable::{ENTRIES, PhysMem};

use crate::mem::{frames, huge_pool, paging, poison};

/// Physical memory through the bootloader's mapping and the frame allocator.
pub struct KernelMem;

impl PhysMem for KernelMem {
    fn alloc_frame(&self) -> Option<u64> {
        frames::alloc_zeroed().map(|f| f.as_u64())
    }

    fn free_frame(&self, pa: u64) {
        poison::poison_data_frame(pa);
        frames::free(x86_64::PhysAddr::new(pa));
    }

    fn free_table(&self, pa: u64) {
        if !poison::free_table_poisoned(pa) {
            frames::free(x86_64::PhysAddr::new(pa));
        }
    }

    fn alloc_huge(&self) -> Option<u64> {
        // Not zeroed: the caller fills the whole block (as Linux's collapse does).
        huge_pool::take()
    }

    fn copy_frame(&self, dst: u64, src: u64) {
        let off = paging::phys_offset();
        // SAFETY: both are whole frames owned by the caller (a page being collapsed and
        // the huge block replacing it), mapped at phys_offset, and distinct.
        unsafe { core::ptr::copy_nonoverlapping((src + off) as *const u8, (dst + off) as *mut u8, 4096) };
    }

    fn free_huge(&self, pa: u64) {
        (0..ENTRIES as u64).for_each(|i| poison::poison_data_frame(pa + i * mm::pgtable::PAGE_SIZE));
        huge_pool::give_back(pa);
    }

    fn entry(&self, table: u64, index: usize) -> &AtomicU64 {
        paging::phys_word(table, index)
    }
}

/// Physical memory for page tables.
pub static MEM: KernelMem = KernelMem;

/// Writes `value` into physical memory at `pa` (through the physical mapping).
pub fn write_phys(pa: u64, value: u64) {
    // SAFETY: `pa` is a frame the caller owns, mapped at phys_offset.
    unsafe { core::ptr::write_volatile((pa + paging::phys_offset()) as *mut u64, value) }
}
