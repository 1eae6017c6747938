//! Simulated CPUs for host tests: a per-CPU software TLB and a backend that runs remote
//! handlers by switching the simulated "current CPU".

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::entry::{Entry, EntryFlags};
use crate::flush::Mmu;
use crate::hw::{BackendKind, FlushBackend, LocalTlb, PhysMem, RunningCpu, TableSyncHw};
use crate::level::Level;
use crate::stats::TlbStats;
use crate::tlb_state::TlbStates;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static IRQS_OFF: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the simulated interrupts off, as an interrupt handler runs.
pub fn irqs_off<R>(f: impl FnOnce() -> R) -> R {
    let prev = IRQS_OFF.with(|c| c.replace(true));
    let r = f();
    IRQS_OFF.with(|c| c.set(prev));
    r
}

/// Runs `f` as simulated CPU `cpu`.
pub fn on_cpu<R>(cpu: usize, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(cpu));
    let r = f();
    CURRENT.with(|c| c.set(prev));
    r
}

/// A TLB per simulated CPU: cached (root, page) translations.
pub struct SimTlb {
    pub entries: Vec<Mutex<BTreeSet<(PhysAddr, VirtAddr)>>>,
    pub root: Vec<Mutex<PhysAddr>>,
}

impl SimTlb {
    pub fn new(n: usize) -> Self {
        Self {
            entries: (0..n).map(|_| Mutex::new(BTreeSet::new())).collect(),
            root: (0..n).map(|_| Mutex::new(PhysAddr::new(0))).collect(),
        }
    }

    /// The running CPU touches `va` through its loaded root: the translation is cached.
    pub fn touch(&self, va: VirtAddr) {
        let cpu = self.this_cpu();
        let root = *self.root[cpu].lock().unwrap();
        self.entries[cpu]
            .lock()
            .unwrap()
            .insert((root, va.align_down(Level::Pte)));
    }

    pub fn cached(&self, cpu: usize, root: PhysAddr, va: VirtAddr) -> bool {
        self.entries[cpu]
            .lock()
            .unwrap()
            .contains(&(root, va.align_down(Level::Pte)))
    }
}

/// Every simulated device runs on the simulated current CPU.
macro_rules! on_the_simulated_cpu {
    ($($t:ty),*) => {$(
        impl RunningCpu for $t {
            fn this_cpu(&self) -> usize {
                CURRENT.with(|c| c.get())
            }
            fn with_irqs_off(&self, f: &mut dyn FnMut()) {
                irqs_off(f)
            }
            fn irqs_enabled(&self) -> bool {
                !IRQS_OFF.with(|c| c.get())
            }
        }
    )*};
}

on_the_simulated_cpu!(SimTlb, SimSync);

impl LocalTlb for SimTlb {
    fn flush_page(&self, va: VirtAddr) {
        let cpu = self.this_cpu();
        self.entries[cpu]
            .lock()
            .unwrap()
            .retain(|&(_, v)| v != va.align_down(Level::Pte));
    }
    fn flush_all(&self) {
        self.entries[self.this_cpu()].lock().unwrap().clear();
    }
    fn load_root(&self, root: PhysAddr) {
        let cpu = self.this_cpu();
        *self.root[cpu].lock().unwrap() = root;
        self.entries[cpu].lock().unwrap().clear();
    }
}

/// Native-IPI backend: every target runs the handler ("takes the interrupt").
pub struct SimIpi;

impl FlushBackend for SimIpi {
    fn kind(&self) -> BackendKind {
        BackendKind::NativeIpi
    }
    fn flush_others(&self, targets: &CpuMask, handler: &(dyn Fn() + Sync)) -> CpuMask {
        for t in targets.iter() {
            on_cpu(t, || irqs_off(handler));
        }
        *targets
    }
}

impl crate::hw::CrossCall for SimIpi {
    fn call_others(&self, targets: &CpuMask, f: &(dyn Fn() + Sync)) {
        for t in targets.iter() {
            on_cpu(t, || irqs_off(f));
        }
    }
}

/// A complete simulated machine.
pub struct Machine {
    pub tlb: SimTlb,
    pub states: TlbStates,
    pub stats: TlbStats,
    /// The kernel's address space, boxed: every CPU has it loaded from the start and its
    /// state holds its address, which must not change when the machine is moved (into a
    /// [`World`], or out of [`Machine::new`]).
    pub kernel: Box<AddressSpace>,
    pub backend: Box<dyn FlushBackend>,
}

impl Machine {
    pub fn new(n: usize) -> Self {
        Self::with_backend(n, Box::new(SimIpi))
    }

    pub fn with_backend(n: usize, backend: Box<dyn FlushBackend>) -> Self {
        let m = Self {
            tlb: SimTlb::new(n),
            states: TlbStates::new(),
            stats: TlbStats::new(),
            kernel: Box::new(AddressSpace::new(PhysAddr::new(0x1000))),
            backend,
        };
        for c in 0..n {
            on_cpu(c, || m.mmu().switch_mm(&m.kernel));
        }
        m
    }

    pub fn mmu(&self) -> Mmu<'_> {
        Mmu {
            tlb: &self.tlb,
            backend: &*self.backend,
            states: &self.states,
            stats: &self.stats,
            kernel: &self.kernel,
            calls: &SimIpi,
            breakage: crate::breakage::Breakage::None,
        }
    }
}

/// Simulated physical memory: frames as boxed arrays of atomics, with an event log.
pub struct SimMem {
    frames: Mutex<std::collections::HashMap<PhysAddr, &'static [std::sync::atomic::AtomicU64; 512]>>,
    next: std::sync::atomic::AtomicU64,
    pub freed: Mutex<Vec<PhysAddr>>,
    pub freed_tables: Mutex<Vec<PhysAddr>>,
}

impl SimMem {
    pub fn new() -> Self {
        Self {
            frames: Mutex::new(Default::default()),
            next: std::sync::atomic::AtomicU64::new(0x10_0000),
            freed: Mutex::new(Vec::new()),
            freed_tables: Mutex::new(Vec::new()),
        }
    }

    /// Frames currently allocated.
    pub fn live(&self) -> usize {
        self.frames.lock().unwrap().len()
    }
}

impl PhysMem for SimMem {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        let pa = PhysAddr::new(self.next.fetch_add(4096, std::sync::atomic::Ordering::SeqCst));
        let f: &'static [std::sync::atomic::AtomicU64; 512] =
            Box::leak(Box::new(std::array::from_fn(|_| {
                std::sync::atomic::AtomicU64::new(0)
            })));
        self.frames.lock().unwrap().insert(pa, f);
        Some(pa)
    }
    fn free_frame(&self, pa: PhysAddr) {
        assert!(
            self.frames.lock().unwrap().remove(&pa).is_some(),
            "double free of {pa:#x}"
        );
        self.freed.lock().unwrap().push(pa);
    }
    fn free_table(&self, pa: PhysAddr) {
        self.freed_tables.lock().unwrap().push(pa);
        self.free_frame(pa);
    }
    fn alloc_huge(&self) -> Option<PhysAddr> {
        // 512 frames at consecutive, 2 MiB-aligned addresses.
        let huge = Level::Pmd.span();
        let pa = self.next.fetch_add(2 * huge, std::sync::atomic::Ordering::SeqCst);
        let base = PhysAddr::new(pa + huge - 1).align_down(Level::Pmd);
        let mut frames = self.frames.lock().unwrap();
        for i in 0..512 {
            let f: &'static [std::sync::atomic::AtomicU64; 512] =
                Box::leak(Box::new(std::array::from_fn(|_| {
                    std::sync::atomic::AtomicU64::new(0)
                })));
            frames.insert(base + i * 4096, f);
        }
        Some(base)
    }
    fn free_huge(&self, pa: PhysAddr) {
        for i in 0..512 {
            self.free_frame(pa + i * 4096);
        }
    }
    fn word(&self, table: PhysAddr, index: usize) -> &std::sync::atomic::AtomicU64 {
        let f = *self
            .frames
            .lock()
            .unwrap()
            .get(&table)
            .unwrap_or_else(|| panic!("access to unallocated frame {table:#x}"));
        &f[index]
    }
}

/// Simulated sync hardware: counts sync IPIs; quiescent counters set by the test.
pub struct SimSync {
    pub broadcast_key: bool,
    pub cpus: usize,
    pub syncs: std::sync::atomic::AtomicU64,
    pub quiescent: Vec<std::sync::atomic::AtomicU64>,
    /// A CPU that takes no tick (interrupts off) until the watchdog reports it (none: MAX).
    pub stuck: std::sync::atomic::AtomicUsize,
    /// Wait rounds before the simulated watchdog expires.
    pub watchdog_rounds: u64,
    rounds: std::sync::atomic::AtomicU64,
    /// The watchdog's reports: what was waited for and the laggards.
    pub reports: std::sync::Mutex<Vec<(&'static str, CpuMask)>>,
}

impl SimSync {
    pub fn new(cpus: usize, broadcast_key: bool) -> Self {
        Self {
            broadcast_key,
            cpus,
            syncs: Default::default(),
            quiescent: (0..cpus).map(|_| Default::default()).collect(),
            stuck: std::sync::atomic::AtomicUsize::new(usize::MAX),
            watchdog_rounds: 100,
            rounds: Default::default(),
            reports: Default::default(),
        }
    }

    /// Every CPU takes a tick (but a stuck one).
    pub fn tick_all(&self) {
        let stuck = self.stuck.load(std::sync::atomic::Ordering::SeqCst);
        self.quiescent
            .iter()
            .enumerate()
            .filter(|&(c, _)| c != stuck)
            .for_each(|(_, q)| {
                q.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
    }
}

impl TableSyncHw for SimSync {
    fn flush_implies_ipi_broadcast(&self) -> bool {
        self.broadcast_key
    }
    fn sync_ipi_all_others(&self) {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn online(&self) -> CpuMask {
        CpuMask::first(self.cpus)
    }
    fn quiescent_count(&self, cpu: usize) -> u64 {
        self.quiescent[cpu].load(std::sync::atomic::Ordering::SeqCst)
    }
    fn relax(&self) {
        self.tick_all();
    }
    fn wait_clock(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn wait_expired(
        &self,
        since: u64,
        what: &'static str,
        _at: &'static core::panic::Location<'static>,
        laggards: &dyn Fn() -> CpuMask,
    ) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        // The clock is this counter of wait rounds.
        if self.rounds.fetch_add(1, SeqCst) + 1 - since < self.watchdog_rounds {
            return false;
        }
        self.reports.lock().unwrap().push((what, laggards()));
        self.stuck.store(usize::MAX, SeqCst); // the report heals it (the kernel's kick)
        true
    }
}

/// A backend of a given kind that runs handlers like the IPI one (for receipt tests).
pub struct SimKind(pub BackendKind);

impl FlushBackend for SimKind {
    fn kind(&self) -> BackendKind {
        self.0
    }
    fn flush_others(&self, targets: &CpuMask, handler: &(dyn Fn() + Sync)) -> CpuMask {
        for t in targets.iter() {
            on_cpu(t, || irqs_off(handler));
        }
        if self.0 == BackendKind::NativeIpi {
            *targets
        } else {
            CpuMask::new()
        }
    }
}

/// Broadcast invalidation as INVLPGB hardware does it: no handler runs on the targets and
/// nobody is interrupted, so lazy CPUs stay lazy. (The invalidation itself is not
/// modelled: the tests that use it are about who leaves an address space.)
pub struct SimBroadcast;

impl FlushBackend for SimBroadcast {
    fn kind(&self) -> BackendKind {
        BackendKind::Invlpgb
    }
    fn flush_others(&self, _targets: &CpuMask, _handler: &(dyn Fn() + Sync)) -> CpuMask {
        CpuMask::new()
    }
}

/// A simulated machine with memory, sync hardware and a table freer: what a gather needs.
pub struct World {
    pub m: Machine,
    pub mem: SimMem,
    pub sync: SimSync,
    pub freer: crate::table_free::TableFreer,
}

impl World {
    /// Four CPUs with a backend of `kind`; `key` is the boot-time decision.
    pub fn new(kind: BackendKind, key: bool) -> Self {
        Self::with_machine(Machine::with_backend(4, Box::new(SimKind(kind))), key)
    }

    /// Around a machine of four CPUs built by the caller.
    pub fn with_machine(m: Machine, key: bool) -> Self {
        Self {
            m,
            mem: SimMem::new(),
            sync: SimSync::new(4, key),
            freer: crate::table_free::TableFreer::new(),
        }
    }

    pub fn ctx(&self) -> crate::gather::GatherCtx<'_> {
        crate::gather::GatherCtx {
            mmu: self.m.mmu(),
            mem: &self.mem,
            freer: &self.freer,
            sync: &self.sync,
        }
    }

    /// A new address space mapping a fresh 4 KiB page at each of `pages`.
    pub fn mm_with(&self, pages: impl IntoIterator<Item = VirtAddr>) -> AddressSpace {
        let mm = AddressSpace::new(self.mem.alloc_frame().unwrap());
        {
            let locked = mm.lock();
            for va in pages {
                self.map_page(&locked, va);
            }
        }
        mm
    }

    /// Maps a fresh 4 KiB page at `va` in the locked address space.
    pub fn map_page(&self, locked: &crate::addr_space::PageTableGuard, va: VirtAddr) {
        let f = self.mem.alloc_frame().unwrap();
        crate::pgtable::map_4k(locked, &self.mem, va, f, EntryFlags::WRITABLE).unwrap();
    }

    /// Puts a present, writable entry with the page-size bit, for the block at physical 0,
    /// at `level` on `va`'s path in `mm` (creating the tables above); returns it. It is a
    /// 1 GiB page at level 3, reserved at the root. No frame is ever at 0 here, so a walk
    /// that took the entry for a table would panic on the access.
    pub fn put_page_size_entry(&self, mm: &AddressSpace, va: VirtAddr, level: Level) -> Entry {
        let flags = EntryFlags::PRESENT | EntryFlags::WRITABLE | EntryFlags::HUGE;
        let entry = Entry::from_raw(flags.bits());
        let locked = mm.lock();
        let slot = crate::pgtable::slot_or_alloc(&locked, &self.mem, va, level).unwrap();
        slot.install(&locked, entry);
        entry
    }

    /// A new address space mapping `pages` consecutive pages from `base`.
    pub fn mm_with_pages(&self, base: u64, pages: u64) -> AddressSpace {
        self.mm_with((0..pages).map(|p| VirtAddr::new(base + p * 4096)))
    }
}

/// Shorthand for a virtual address in tests.
pub fn va(va: u64) -> VirtAddr {
    VirtAddr::new(va)
}

/// Shorthand for a physical address in tests.
pub fn pa(pa: u64) -> PhysAddr {
    PhysAddr::new(pa)
}

/// The lock-free walker's view of a simulated CPU: its loaded root is the one in `tlb`,
/// and `at_preemption` runs where a host could deschedule the walker.
pub struct SimWalker<'a> {
    pub tlb: &'a SimTlb,
    pub at_preemption: &'a (dyn Fn() + Sync),
}

impl RunningCpu for SimWalker<'_> {
    fn this_cpu(&self) -> usize {
        self.tlb.this_cpu()
    }
    fn with_irqs_off(&self, f: &mut dyn FnMut()) {
        self.tlb.with_irqs_off(f)
    }
    fn irqs_enabled(&self) -> bool {
        self.tlb.irqs_enabled()
    }
}

impl crate::hw::WalkerHw for SimWalker<'_> {
    fn preemption_point(&self) {
        (self.at_preemption)()
    }
    fn loaded_root(&self) -> PhysAddr {
        *self.tlb.root[self.this_cpu()].lock().unwrap()
    }
}
