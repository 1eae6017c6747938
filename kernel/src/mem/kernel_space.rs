//! The kernel's own address space (Linux's `init_mm`), and the one way kernel memory is
//! mapped: mm's page-table code under that address space's lock.
//!
//! Why mm's tables and not the `x86_64` crate's `OffsetPageTable`: the root the
//! bootloader built is also an `mm::AddressSpace` (the address space lazy CPUs keep,
//! whose upper half every user root shares), so with one writer path its tables have one
//! lock and one set of rules. The crate's mapper would be a second writer that mm's lock
//! and invariants know nothing of.
//!
//! Rules:
//! - The lock is taken with interrupts off: the heap maps pages with its own lock held
//!   and interrupts off, and an interrupt on a CPU that held the page-table lock with
//!   interrupts on could allocate and wait for that heap lock.
//! - Nothing allocates from the heap while holding the lock (page tables come from the
//!   frame allocator), so heap growth under the lock cannot recurse.
//! - Mapping a page that was not present needs no TLB flush (x86 caches no non-present
//!   translations). Unmapping flushes the local TLB only. Its one caller unmaps the AP
//!   trampoline's identity mapping after every AP has left it: the APs did run and write
//!   through it, and may still cache it, but the frame lies below 1 MiB, is never handed
//!   out by the frame allocator, and the address is never mapped again, so a stale
//!   translation on an AP reaches only that unused frame.
//! - Kernel mappings live in the upper half, and each one's top-level entry exists
//!   before the first user address space copies entries 256..512 (see
//!   [`super::layout`]); the one lower-half mapping is that trampoline page, in the
//!   kernel's root only, while the APs start.
//! - Existing intermediate entries are used as they are (mm does not widen their
//!   flags, as the `x86_64` crate's mapper did): the trampoline's identity mapping goes
//!   through entries the bootloader made present and writable.

use mm::addr::{PhysAddr, VirtAddr};
use mm::addr_space::AddressSpace;
use mm::entry::EntryFlags;
use mm::hw::{LocalTlb, PhysMem};
use mm::level::Level;
use mm::pgtable::{self, MapError};
use spin::Once;

static KERNEL_MM: Once<AddressSpace> = Once::new();

/// Records the page tables in CR3 (the bootloader's) as the kernel's address space.
/// Boot CPU, before the heap maps its first page.
pub fn init() {
    KERNEL_MM.call_once(|| AddressSpace::new(arch::tlb::loaded_root()));
}

/// The kernel's address space (`init_mm`).
pub fn kernel_mm() -> &'static AddressSpace {
    KERNEL_MM
        .get()
        .expect("mem: the kernel's address space is not recorded yet")
}

/// Maps the 4 KiB page at `va` to `frame` with `flags` (present implied), taking any
/// page tables it needs from `mem`.
pub fn map_page(mem: &dyn PhysMem, va: u64, frame: u64, flags: EntryFlags) -> Result<(), MapError> {
    arch::irq::without_interrupts(|| {
        let locked = kernel_mm().lock();
        pgtable::map_4k(&locked, mem, VirtAddr::new(va), PhysAddr::new(frame), flags)
    })
}

/// Unmaps the 4 KiB page at `va` and flushes it from this CPU's TLB; returns the frame it
/// mapped (None: nothing was mapped there).
pub fn unmap_page(mem: &dyn PhysMem, va: u64) -> Option<u64> {
    let va = VirtAddr::new(va);
    let frame = arch::irq::without_interrupts(|| {
        let locked = kernel_mm().lock();
        match pgtable::leaf(mem, kernel_mm().root(), va)? {
            (Level::Pte, slot) => Some(slot.clear(&locked).addr()),
            _ => None, // a huge page: not one this function mapped
        }
    })?;
    arch::tlb::X86Tlb.flush_page(va);
    Some(frame.as_u64())
}
