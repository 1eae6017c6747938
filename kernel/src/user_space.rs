//! User address spaces: a new root that shares the kernel's upper half, and pages mapped
//! into its lower half. Each new root copies the kernel's top-level entries 256..512
//! (every kernel mapping exists before the first address space is made; see
//! [`crate::mem::layout`]).

extern crate alloc;
use alloc::boxed::Box;
use core::sync::atomic::Ordering;
use mm::addr_space::AddressSpace;
use mm::pgtable::{self, ENTRIES, PhysMem};

use crate::mem::phys::MEM;
use crate::tlb::kernel_mm;

/// A new, empty user address space sharing the kernel's upper half. Lives forever.
pub fn new_address_space() -> &'static AddressSpace {
    let root = MEM
        .alloc_frame()
        .expect("vm: out of memory for a page-table root");
    let kroot = kernel_mm().root();
    for i in 256..ENTRIES {
        let v = MEM.entry(kroot, i).load(Ordering::Relaxed);
        MEM.entry(root, i).store(v, Ordering::Relaxed);
    }
    Box::leak(Box::new(AddressSpace::new(root)))
}

/// Maps a fresh zeroed 4 KiB page at `va` in `mm`; returns its frame.
pub fn map_new_page(mm: &AddressSpace, va: u64) -> u64 {
    let frame = MEM.alloc_frame().expect("vm: out of memory");
    pgtable::map_4k(
        &MEM,
        mm.root(),
        va,
        frame,
        pgtable::WRITABLE | pgtable::NO_EXECUTE,
    )
    .expect("vm: map");
    frame
}
