//! The kernel heap: `linked_list_allocator` over pages mapped at a fixed address.

use linked_list_allocator::LockedHeap;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, Size4KiB};

use crate::frames::GlobalFrames;

/// First address of the heap; outside the bootloader's dynamic mapping range (see
/// `main.rs`'s `BOOTLOADER_CONFIG`).
pub const HEAP_START: u64 = 0xffff_c000_0000_0000;
/// Heap size: room for per-CPU tables of a few hundred CPUs.
pub const HEAP_SIZE: u64 = 32 * 1024 * 1024;

/// The heap lock is held with interrupts off: an interrupt handler (or an IPI that the
/// holder is waiting to be answered) must never find it taken by the code it interrupted.
struct IrqSafeHeap(LockedHeap);

// SAFETY: forwards to LockedHeap, which upholds the GlobalAlloc contract.
unsafe impl core::alloc::GlobalAlloc for IrqSafeHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe { self.0.alloc(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: same contract as ours.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe { self.0.dealloc(ptr, layout) })
    }
}

#[global_allocator]
static ALLOCATOR: IrqSafeHeap = IrqSafeHeap(LockedHeap::empty());

/// Maps the heap pages and hands them to the allocator. Boot CPU, once.
pub fn init() {
    let first = Page::<Size4KiB>::containing_address(VirtAddr::new(HEAP_START));
    let last = Page::containing_address(VirtAddr::new(HEAP_START + HEAP_SIZE - 1));
    // SAFETY: single-threaded early boot; nobody else edits the page tables yet.
    let mut mapper = unsafe { crate::paging::active_mapper() };
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for page in Page::range_inclusive(first, last) {
        let frame = crate::frames::alloc_zeroed()
            .map(x86_64::structures::paging::PhysFrame::containing_address)
            .expect("heap: out of physical memory");
        // SAFETY: the heap range is reserved for us and unmapped; the frame is fresh.
        unsafe { mapper.map_to(page, frame, flags, &mut GlobalFrames) }
            .expect("heap: mapping failed")
            .flush();
    }
    // SAFETY: the range was just mapped writable and is used by nothing else.
    unsafe { ALLOCATOR.0.lock().init(HEAP_START as *mut u8, HEAP_SIZE as usize) };
}

/// Bytes in use and free in the heap.
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.0.lock();
    (heap.used(), heap.free())
}

arch::kernel_test!(
    fn heap_allocates_and_frees() {
        extern crate alloc;
        use alloc::vec::Vec;
        let (used_before, _) = usage();
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        drop(v);
        assert_eq!(usage().0, used_before);
    }
);
