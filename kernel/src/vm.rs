//! Wiring of mm's TLB machinery to this machine: the per-CPU TLB states and counters,
//! the kernel's own address space, the flush backend, and physical memory for page
//! tables. User address spaces share the kernel's upper half: each new root copies the
//! kernel's top-level entries 256..512 (all kernel mappings exist before the first
//! address space is made), and maps its own lower half.

extern crate alloc;
use alloc::boxed::Box;
use core::sync::atomic::AtomicU64;
use mm::addr_space::AddressSpace;
use mm::flush::Mmu;
use mm::hw::FlushBackend;
use mm::pgtable::{self, ENTRIES, PhysMem};
use mm::stats::TlbStats;
use mm::tlb_state::TlbStates;
use spin::Once;

use crate::{frames, paging};

static STATES: TlbStates = TlbStates::new();
/// TLB counters of every CPU.
pub static STATS: TlbStats = TlbStats::new();
static KERNEL_MM: Once<AddressSpace> = Once::new();
static BACKEND: Once<&'static dyn FlushBackend> = Once::new();
static TLB: arch::tlb::X86Tlb = arch::tlb::X86Tlb;

/// Physical memory through the bootloader's mapping and the frame allocator.
pub struct KernelMem;

impl PhysMem for KernelMem {
    fn alloc_frame(&self) -> Option<u64> {
        frames::alloc_zeroed().map(|f| f.as_u64())
    }

    fn free_frame(&self, pa: u64) {
        frames::free(x86_64::PhysAddr::new(pa));
    }

    fn entry(&self, table: u64, index: usize) -> &AtomicU64 {
        assert!(index < ENTRIES);
        // SAFETY: page tables are frames mapped at phys_offset; an aligned u64 slot of
        // one is a valid AtomicU64 for as long as the table lives.
        unsafe { &*((table + paging::phys_offset()) as *const AtomicU64).add(index) }
    }
}

/// Physical memory for page tables.
pub static MEM: KernelMem = KernelMem;

/// Records the boot page tables as the kernel's address space and picks the backend.
/// Boot CPU, before the APs start.
pub fn init(backend: &'static dyn FlushBackend) {
    let (root, _) = x86_64::registers::control::Cr3::read();
    KERNEL_MM.call_once(|| AddressSpace::new(root.start_address().as_u64()));
    BACKEND.call_once(|| backend);
}

/// The kernel's address space (`init_mm`).
pub fn kernel_mm() -> &'static AddressSpace {
    KERNEL_MM.get().expect("vm not initialised")
}

/// The TLB machinery bound to this machine.
pub fn mmu() -> Mmu<'static> {
    Mmu {
        tlb: &TLB,
        backend: *BACKEND.get().expect("vm not initialised"),
        states: &STATES,
        stats: &STATS,
        kernel: kernel_mm(),
    }
}

/// Makes this CPU use the kernel's address space for the first time (CPU bring-up).
pub fn init_cpu() {
    let mmu = mmu();
    TLB.with_irqs_off_fn(|| mmu.switch_mm(kernel_mm()));
}

/// A new, empty user address space sharing the kernel's upper half. Lives forever.
pub fn new_address_space() -> &'static AddressSpace {
    let root = MEM
        .alloc_frame()
        .expect("vm: out of memory for a page-table root");
    let kroot = kernel_mm().root();
    for i in 256..ENTRIES {
        let v = MEM.entry(kroot, i).load(core::sync::atomic::Ordering::Relaxed);
        MEM.entry(root, i).store(v, core::sync::atomic::Ordering::Relaxed);
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

/// Writes `value` into physical memory at `pa` (through the physical mapping).
pub fn write_phys(pa: u64, value: u64) {
    // SAFETY: `pa` is a frame the caller owns, mapped at phys_offset.
    unsafe { core::ptr::write_volatile((pa + paging::phys_offset()) as *mut u64, value) }
}
