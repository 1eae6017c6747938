//! Physical memory through the bootloader's mapping of all of it (at `phys_offset`):
//! words of frames, and their fills.

use core::sync::atomic::{AtomicU64, Ordering};

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Records where the bootloader mapped all physical memory.
pub fn init(phys_offset: u64) {
    PHYS_OFFSET.store(phys_offset, Ordering::Relaxed);
}

/// Virtual address at which physical memory starts.
pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed)
}

/// Word `index` of frame `pa` (`index < 512`), as an atomic: page-table entries and
/// poison fills go through it.
pub fn phys_word(pa: u64, index: usize) -> &'static AtomicU64 {
    assert!(index < 512);
    // SAFETY: all physical memory is mapped at phys_offset; an aligned u64 slot of a
    // frame is a valid AtomicU64. Callers only pass frames they own (or tables they
    // hold the lock of), for as long as they own them.
    unsafe { &*((pa + phys_offset()) as *const AtomicU64).add(index) }
}

/// Stores `value` in every word of frame `pa` from word `from` on.
pub fn fill_frame(pa: u64, from: usize, value: u64, order: Ordering) {
    for i in from..512 {
        phys_word(pa, i).store(value, order);
    }
}
