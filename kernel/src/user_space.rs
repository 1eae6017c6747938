//! User address spaces: a new root that shares the kernel's upper half, pages mapped into
//! its lower half under its page-table lock, munmap through an mmu_gather, and teardown.
//! Each new root copies the kernel's top-level entries 256..512 (every kernel mapping
//! exists before the first address space is made; see [`crate::mem::layout`]).

extern crate alloc;
use alloc::boxed::Box;
use core::sync::atomic::Ordering;
use mm::addr::{PhysAddr, VirtAddr};
use mm::addr_space::AddressSpace;
use mm::entry::EntryFlags;
use mm::gather::MmuGather;
use mm::hw::PhysMem;
use mm::level::{ENTRIES, Level};
use mm::pgtable;
use mm::unmap::unmap_range;

use crate::mem::phys::MEM;
use crate::tlb::{self, kernel_mm};

/// A new, empty user address space sharing the kernel's upper half. Lives forever.
pub fn new_address_space() -> &'static AddressSpace {
    let root = MEM
        .alloc_frame()
        .expect("vm: out of memory for a page-table root");
    let kroot = kernel_mm().root();
    for i in 256..ENTRIES {
        let v = MEM.word(kroot, i).load(Ordering::Relaxed);
        MEM.word(root, i).store(v, Ordering::Relaxed);
    }
    Box::leak(Box::new(AddressSpace::new(root)))
}

/// Maps a fresh zeroed 4 KiB page at `va` in `mm`; returns its frame.
pub fn map_new_page(mm: &AddressSpace, va: u64) -> u64 {
    let frame = MEM.alloc_frame().expect("vm: out of memory");
    map_frame(mm, va, frame.as_u64());
    frame.as_u64()
}

/// Maps frame `frame` (owned by the caller until now) at the page holding `va` in `mm`,
/// writable and not executable, under `mm`'s page-table lock.
pub fn map_frame(mm: &AddressSpace, va: u64, frame: u64) {
    pgtable::map_4k(
        &mm.lock(),
        &MEM,
        VirtAddr::new(va).align_down(Level::Pte),
        PhysAddr::new(frame),
        EntryFlags::WRITABLE | EntryFlags::NO_EXECUTE,
    )
    .expect("vm: map");
}

/// Unmaps `[start, end)` of `mm` through an mmu_gather (the munmap analogue).
pub fn unmap(mm: &AddressSpace, start: u64, end: u64) {
    let ctx = tlb::gather_ctx();
    let locked = mm.lock();
    let mut g = MmuGather::new(&ctx, &locked);
    unmap_range(&mut g, VirtAddr::new(start), VirtAddr::new(end));
    g.finish();
}

/// Tears `mm` down completely and frees its root ([`mm::release::release_with_steps`]),
/// yielding until no CPU has it loaded; after the watchdog's bound, reports and panics
/// naming the CPUs that still do. Each step is recorded for this CPU's fault handlers
/// ([`arch::teardown_record`]): a fault in one says which CPU, address space and step.
pub fn destroy(mm: &'static AddressSpace) {
    let mut wait = arch::watchdog::Wait::start("teardown-holders");
    let steps = &arch::teardown_record::TEARDOWN_RECORD;
    let released = mm::release::release_with_steps(&tlb::gather_ctx(), mm, steps, || {
        crate::sched::yield_now();
        !wait.expired()
    });
    if let Err(cpus) = released {
        // The watchdog's report (fatal outside tests), then the release's own verdict.
        wait.report(&cpus, &|_| {});
        panic!("workload: cpus {cpus:?} still use a torn-down address space");
    }
}
