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
/// Test-only breakage (`tlb.break=`), as a `Breakage` discriminant.
static BREAKAGE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
/// Freed frames are poisoned (and freed tables quarantined) so that stale reads are
/// recognised: on except in `bench=tlb`, which times the operations without it.
static DEBUG_POISON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// What freed data frames are filled with (all but word 0, the free-list link) while
/// [`set_debug_poison`] is on: a read through a stale translation returns it.
pub const FREED_DATA_POISON: u64 = 0xdead_da7a_f4ee_0000;

/// Breaks one TLB mechanism for the coherence oracle's negative tests.
pub fn set_breakage(b: mm::breakage::Breakage) {
    use mm::breakage::Breakage;
    let v = match b {
        Breakage::None => 0,
        Breakage::Stride => 1,
        Breakage::Lazy => 2,
        Breakage::NoFlush => 3,
    };
    BREAKAGE.store(v, core::sync::atomic::Ordering::SeqCst);
}

fn breakage() -> mm::breakage::Breakage {
    use mm::breakage::Breakage;
    match BREAKAGE.load(core::sync::atomic::Ordering::Relaxed) {
        1 => Breakage::Stride,
        2 => Breakage::Lazy,
        3 => Breakage::NoFlush,
        _ => Breakage::None,
    }
}

/// Turns poisoning of freed frames and the table quarantine on or off.
pub fn set_debug_poison(on: bool) {
    DEBUG_POISON.store(on, core::sync::atomic::Ordering::SeqCst);
}

fn debug_poison() -> bool {
    DEBUG_POISON.load(core::sync::atomic::Ordering::Relaxed)
}

fn poison_data(pa: u64) {
    for i in 1..ENTRIES {
        MEM.entry(pa, i)
            .store(FREED_DATA_POISON, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Physical memory through the bootloader's mapping and the frame allocator.
pub struct KernelMem;

impl PhysMem for KernelMem {
    fn alloc_frame(&self) -> Option<u64> {
        frames::alloc_zeroed().map(|f| f.as_u64())
    }

    fn free_frame(&self, pa: u64) {
        if debug_poison() {
            poison_data(pa);
        }
        frames::free(x86_64::PhysAddr::new(pa));
    }

    fn free_table(&self, pa: u64) {
        if !debug_poison() {
            frames::free(x86_64::PhysAddr::new(pa));
            return;
        }
        for i in 0..ENTRIES {
            self.entry(pa, i)
                .store(pgtable::POISON, core::sync::atomic::Ordering::SeqCst);
        }
        quarantine(pa);
    }

    fn alloc_huge(&self) -> Option<u64> {
        // Not zeroed: the caller fills the whole block (as Linux's collapse does).
        x86_64::instructions::interrupts::without_interrupts(|| HUGE_POOL.lock().pop())
    }

    fn copy_frame(&self, dst: u64, src: u64) {
        let off = paging::phys_offset();
        // SAFETY: both are whole frames owned by the caller (a page being collapsed and
        // the huge block replacing it), mapped at phys_offset, and distinct.
        unsafe { core::ptr::copy_nonoverlapping((src + off) as *const u8, (dst + off) as *mut u8, 4096) };
    }

    fn free_huge(&self, pa: u64) {
        if debug_poison() {
            (0..ENTRIES as u64).for_each(|i| poison_data(pa + i * pgtable::PAGE_SIZE));
        }
        x86_64::instructions::interrupts::without_interrupts(|| HUGE_POOL.lock().push(pa));
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
        calls: &arch::ipi::IpiCalls,
        breakage: breakage(),
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

/// The table freer (grace periods, sync mode, injected batch failures).
pub static FREER: mm::table_free::TableFreer = mm::table_free::TableFreer::new();

/// Sync IPIs, grace-period counters and the static key, for mm's table freeing.
pub struct SyncHw;

impl mm::table_free::TableSyncHw for SyncHw {
    fn flush_implies_ipi_broadcast(&self) -> bool {
        arch::static_key::tlb_table_flush_implies_ipi_broadcast()
    }

    fn sync_ipi_all_others(&self) {
        arch::ipi::call_on_many(&arch::cpus::online(), arch::stats::IpiReason::Sync, &|| {});
    }

    fn irqs_enabled(&self) -> bool {
        x86_64::instructions::interrupts::are_enabled()
    }

    fn this_cpu(&self) -> usize {
        arch::percpu::cpu_index()
    }

    fn online(&self) -> mm::cpumask::CpuMask {
        arch::cpus::online()
    }

    fn quiescent_count(&self, cpu: usize) -> u64 {
        // A tick is only taken with interrupts enabled: a quiescent state.
        arch::cpus::get(cpu)
            .ticks
            .load(core::sync::atomic::Ordering::SeqCst)
    }

    fn wait_clock(&self) -> u64 {
        arch::cpu::rdtsc()
    }

    fn wait_expired(
        &self,
        since: u64,
        what: &'static str,
        at: &'static core::panic::Location<'static>,
        laggards: &dyn Fn() -> mm::cpumask::CpuMask,
    ) -> bool {
        arch::watchdog::check_since(since, what, at, laggards)
    }

    fn relax(&self) {
        crate::sched::yield_now();
        core::hint::spin_loop();
    }
}

static SYNC_HW: SyncHw = SyncHw;

/// The walker's view of this CPU.
pub struct WalkerHw;

impl mm::walker::WalkerHw for WalkerHw {
    fn with_irqs_off(&self, f: &mut dyn FnMut()) {
        x86_64::instructions::interrupts::without_interrupts(f)
    }

    fn preemption_point(&self) {
        arch::backend::pv::preemption_point();
    }

    fn this_cpu(&self) -> usize {
        arch::percpu::cpu_index()
    }

    fn loaded_root(&self) -> u64 {
        arch::tlb::loaded_root()
    }
}

static WALKER_HW: WalkerHw = WalkerHw;

/// Everything an mmu_gather needs on this machine.
pub fn gather_ctx() -> mm::gather::GatherCtx<'static> {
    mm::gather::GatherCtx {
        mmu: mmu(),
        mem: &MEM,
        freer: &FREER,
        sync: &SYNC_HW,
    }
}

/// Lock-free walk of `va` in the running task's address space `mm` (refused,
/// `Walk::NotLoaded`, if `mm` is not the one in this CPU's CR3).
pub fn walk(mm: &AddressSpace, va: u64) -> mm::walker::Walk {
    mm::walker::walk(&WALKER_HW, &MEM, &STATS, mm.root(), va)
}

/// Freed page tables wait here, poisoned, before the frame allocator reuses them, so a
/// walker that is (wrongly) still inside one reads poison rather than a reused frame.
const QUARANTINE: usize = 256;
static QUARANTINED: spin::Mutex<([u64; QUARANTINE], usize, usize)> =
    spin::Mutex::new(([0; QUARANTINE], 0, 0));

fn quarantine(pa: u64) {
    let evicted = x86_64::instructions::interrupts::without_interrupts(|| {
        let mut q = QUARANTINED.lock();
        let (ref mut ring, ref mut head, ref mut len) = *q;
        let evicted = if *len == QUARANTINE {
            let old = ring[*head];
            *head = (*head + 1) % QUARANTINE;
            *len -= 1;
            Some(old)
        } else {
            None
        };
        ring[(*head + *len) % QUARANTINE] = pa;
        *len += 1;
        evicted
    });
    if let Some(old) = evicted {
        frames::free(x86_64::PhysAddr::new(old));
    }
}

/// Returns every quarantined table frame to the allocator (end of a workload).
pub fn drain_quarantine() {
    loop {
        let next = x86_64::instructions::interrupts::without_interrupts(|| {
            let mut q = QUARANTINED.lock();
            let (ref ring, ref mut head, ref mut len) = *q;
            if *len == 0 {
                return None;
            }
            let pa = ring[*head];
            *head = (*head + 1) % QUARANTINE;
            *len -= 1;
            Some(pa)
        });
        match next {
            Some(pa) => frames::free(x86_64::PhysAddr::new(pa)),
            None => return,
        }
    }
}

/// Waits for every deferred table and empties the quarantine: afterwards the frame
/// accounting reflects only live memory.
pub fn settle() {
    FREER.drain(&SYNC_HW, &MEM, &STATS);
    drain_quarantine();
}

/// 2 MiB blocks reserved at boot for huge mappings (collapse).
static HUGE_POOL: spin::Mutex<alloc::vec::Vec<u64>> = spin::Mutex::new(alloc::vec::Vec::new());

/// Reserves `n` 2 MiB blocks for huge mappings.
pub fn reserve_huge_blocks(n: usize) {
    let mut pool = HUGE_POOL.lock();
    for _ in 0..n {
        match frames::alloc_huge_block() {
            Some(b) => pool.push(b.as_u64()),
            None => log::warn!("vm: no contiguous 2 MiB block for the huge pool"),
        }
    }
}
