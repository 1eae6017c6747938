//! Kernel memory: physical frames, the kernel heap, the kernel's page-table mappings,
//! physical memory for mm's page tables, the huge-page pool and the debug poisoning of
//! freed memory. [`layout`] states the kernel's virtual address map.

pub mod frames;
pub mod heap;
pub mod huge_pool;
pub mod kernel_space;
pub mod layout;
pub mod paging;
pub mod phys;
pub mod poison;

/// Frames in use outside the heap (which keeps what it takes): what a test or workload
/// must give back. Call after `tlb::settle` (tables waiting for a grace period are in use).
pub fn frames_used_outside_heap() -> u64 {
    frames::stats().used - heap::frames_taken()
}
