//! Physical memory through the bootloader's mapping of all of it (at `phys_offset`):
//! words of frames, and a mapper over the page tables loaded in CR3.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{OffsetPageTable, PageTable};

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Records where the bootloader mapped all physical memory.
pub fn init(phys_offset: u64) {
    PHYS_OFFSET.store(phys_offset, Ordering::Relaxed);
}

/// Virtual address at which physical memory starts.
pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed)
}

/// A mapper over the page tables currently loaded in CR3.
///
/// # Safety
/// The caller must not create two mappers that modify the same tables concurrently
/// (callers serialise through [`crate::heap`]'s init or their own page-table lock).
pub unsafe fn active_mapper() -> OffsetPageTable<'static> {
    let (frame, _) = Cr3::read();
    let offset = VirtAddr::new(phys_offset());
    let table = (offset + frame.start_address().as_u64()).as_mut_ptr::<PageTable>();
    // SAFETY: the level-4 table is mapped at `offset` by the bootloader; exclusivity is
    // the caller's promise.
    unsafe { OffsetPageTable::new(&mut *table, offset) }
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
