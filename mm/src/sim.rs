//! Simulated CPUs for host tests: a per-CPU software TLB with paging-structure caches,
//! and a backend that runs remote handlers by switching the simulated "current CPU".
//!
//! # What the simulated TLB models (Intel SDM vol. 3A, 4.10.2-4.10.4)
//!
//! Each CPU has CR3 (its loaded root), a TLB of leaf translations, and the three
//! paging-structure caches of 4.10.3.1 for four-level paging, without PCIDs (gatherOS uses
//! none, so everything belongs to PCID 000H):
//! - the PML4 cache, keyed by linear-address bits 47:39, holding the physical address of
//!   the page-directory-pointer table that the PML4E points to;
//! - the PDPTE cache, keyed by bits 47:30, holding the address of the page directory;
//! - the PDE cache, keyed by bits 47:21, holding the address of the page table.
//!
//! An entry is made only from an entry that is present and points to a table (P = 1,
//! PS = 0, no reserved bits: never from a 2 MiB or 1 GiB leaf or from [`Entry::POISON`]),
//! and it is kept however the entry in memory changes later (4.10.3.1). A CPU may make
//! such entries at any time while a root is in its CR3, for addresses it never uses
//! (4.10.3.1: "even if there are no translations for any linear address that might use
//! that entry"; 4.10.2.3 says as much of the TLBs, for prefetches and speculative
//! execution). The simulator does it ([`SimTlb::speculate`]) whenever a CPU loads a root
//! and right after every invalidation, by walking the whole tree under CR3, the most a
//! CPU could cache; tests may call it at any other time. [`SimTlb::touch`] is one access: a TLB hit, or a walk that starts, as 4.10.3.2
//! allows, from the longest-matching cached pointer (PDE, then PDPTE, then PML4 cache)
//! and only otherwise from CR3, filling the caches on its way down and the TLB at the
//! leaf.
//!
//! Invalidation (4.10.4.1, CR4.PCIDE = 0):
//! - INVLPG ([`LocalTlb::flush_page`]) drops the TLB entries of the page that holds the
//!   address, whatever its size (a 2 MiB page's translations go whole), and *all*
//!   paging-structure-cache entries, whatever linear addresses they are for;
//! - a CR3 load ([`LocalTlb::load_root`], and the reload [`LocalTlb::flush_all`]) drops
//!   every TLB entry (gatherOS maps no global user pages) and every paging-structure-cache
//!   entry.
//!
//! Freed frames leave the simulated memory ([`SimMem`]), and their addresses are never
//! handed out again, so a cached pointer to one stays recognisable (the kernel poisons
//! freed tables instead, [`Entry::POISON`]; here any read of a freed frame panics). A walk that would
//! enter a freed table panics, naming the CPU, where the pointer came from (CR3, a cache
//! entry, or an entry it had just read), the table's address and its level; and
//! [`World`] checks at the end of every test (when it is dropped) that no CPU's CR3 or
//! paging-structure cache points into a freed frame ([`World::assert_no_cached_pointer_into_freed_tables`]).
//! QEMU's TCG has no paging-structure caches, which is why this check lives here.
//!
//! Flush before free, on the machine: the TLB remembers the frame each cached translation
//! maps to, and freeing a data frame (`free_frame`, `free_huge`) that a CPU running an
//! address space (not a lazy one: rule 2 of `flush.rs` lets those keep stale user
//! translations) still caches a translation to panics, naming the CPU, the address and the
//! frame. An mmu_gather that freed its pages before its flush fails here.
//!
//! Not modelled: accessed/dirty bits, access rights, caching of not-present entries (the
//! SDM allows none), and the invalidation done by [`SimBroadcast`] (INVLPGB). A machine
//! without simulated memory ([`Machine`] alone, with made-up roots) caches leaves only, as
//! given to `touch`, and so does a root outside the simulated memory (the kernel's).
//!
//! The hardware walks here are the simulated MMU's own, not mm's [`crate::pt_walk`]: a
//! CPU starts mid-tree from a cached pointer, and a model must not share code with what
//! it checks.
//!
//! Faults, for the tests that show a mechanism's failure when it is switched off, are
//! injected as mm never sees them: a test builds the context with one part replaced by a
//! double of it (the seam the kernel's `tlb/faults.rs` describes): [`SkipLazy`] for
//! `Mmu::backend` (the `lazy` fault), [`NoFrames`] for the table freer's memory
//! ([`World::no_batch_pages`], `table_batch=fail`), and [`SimSync::sync_does_nothing`]
//! for its sync hardware (`force-skip`).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::entry::{Entry, EntryFlags};
use crate::flush::Mmu;
use crate::hw::{BackendKind, FlushBackend, LocalTlb, PhysMem, RunningCpu, TableSyncHw};
use crate::irq::{Handler, IrqsOff, IrqsOn};
use crate::level::{ENTRIES, Level};
use crate::stats::TlbStats;
use crate::tlb_state::TlbStates;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static IRQS_OFF: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the simulated interrupts off, as an interrupt handler runs: the
/// simulated interrupt entry, which turns the flag off itself and hands `f` the proof.
pub fn irqs_off<R>(f: impl FnOnce(IrqsOff<'_>) -> R) -> R {
    let prev = IRQS_OFF.with(|c| c.replace(true));
    let _seen = SeenOff::enter(CURRENT.with(|c| c.get()));
    let r = f(IrqsOff::new());
    IRQS_OFF.with(|c| c.set(prev));
    r
}

/// One interrupts-off region of a CPU in [`IRQS_OFF_SEEN`], left when dropped (also when
/// a walker showing a failure panics inside it).
struct SeenOff(usize);

impl SeenOff {
    fn enter(cpu: usize) -> Self {
        IRQS_OFF_SEEN[cpu].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(cpu)
    }
}

impl Drop for SeenOff {
    fn drop(&mut self) {
        IRQS_OFF_SEEN[self.0].fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Per simulated CPU, the interrupts-off regions it is in, as other CPUs see it: a sync
/// IPI ([`SimSync`]) is taken only when it is 0. Shared by the tests that run at once
/// (their CPUs have the same numbers): a sync may wait for another test's region, which
/// is short or waits only for its own test's freer.
static IRQS_OFF_SEEN: [std::sync::atomic::AtomicUsize; 8] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 8];

/// The running task's capability to wait (the simulated interrupts are on: checked).
#[track_caller]
pub fn irqs_on() -> IrqsOn {
    IrqsOn::check(&SimCpu, "waits (a test)")
}

/// The simulated running CPU: the one [`RunningCpu`] of the simulated machine, which
/// every simulated device hands out. Which CPU runs and its interrupt flag are
/// thread-local ([`on_cpu`], [`irqs_off`]).
pub struct SimCpu;

impl RunningCpu for SimCpu {
    fn this_cpu(&self) -> usize {
        CURRENT.with(|c| c.get())
    }
    fn run_irqs_disabled(&self, f: &mut dyn FnMut()) {
        irqs_off(|_| f())
    }
    fn irqs_enabled(&self) -> bool {
        !IRQS_OFF.with(|c| c.get())
    }
}

/// Runs `f` as simulated CPU `cpu`.
pub fn on_cpu<R>(cpu: usize, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(cpu));
    let r = f();
    CURRENT.with(|c| c.set(prev));
    r
}

/// The cache's key for `va` at `level`: linear-address bits 47 down to the level's shift
/// (sign-extended, so that upper-half keys read as their addresses).
fn cache_key(va: VirtAddr, level: Level) -> VirtAddr {
    let bits = va.as_u64() & ((1 << 48) - 1) & !(level.span() - 1);
    VirtAddr::new(if bits & (1 << 47) != 0 {
        bits | !((1 << 48) - 1)
    } else {
        bits
    })
}

/// The SDM's name for the paging-structure cache that holds entries of `level`.
fn cache_name(level: Level) -> &'static str {
    match level {
        Level::Pgd => "PML4 cache",
        Level::Pud => "PDPTE cache",
        Level::Pmd => "PDE cache",
        Level::Pte => unreachable!("PTEs map pages: they go to the TLB"),
    }
}

/// One paging-structure-cache entry's contents (4.10.3.1): the next table's address, and
/// the root it was read under (for reports only: without PCIDs the hardware tags nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    /// Physical address of the table the cached entry points to.
    pub table: PhysAddr,
    /// The CR3 under which the entry was cached.
    pub root: PhysAddr,
}

/// Where a walk, or a cached pointer, came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointer {
    /// The CPU's CR3.
    Cr3,
    /// A paging-structure-cache entry for the `level` entries covering `base`.
    Cache {
        /// The level of the cached entry (PML4E, PDPTE, PDE).
        level: Level,
        /// The first linear address the entry is used for.
        base: VirtAddr,
        /// Its contents.
        cached: Cached,
    },
}

impl Pointer {
    /// The level of the table this pointer leads to.
    fn table_level(&self) -> Level {
        match self {
            Pointer::Cr3 => Level::ROOT,
            Pointer::Cache { level, .. } => level.below().expect("caches hold upper entries"),
        }
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pointer::Cr3 => write!(f, "CR3"),
            Pointer::Cache { level, base, cached } => write!(
                f,
                "{} entry for [{base:#x}, +{:#x}) (cached under root {:#x})",
                cache_name(*level),
                level.span(),
                cached.root
            ),
        }
    }
}

/// A CPU's cached pointer into a freed frame ([`SimTlb::pointers_into_freed_tables`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreedTableRef {
    /// The CPU.
    pub cpu: usize,
    /// CR3 or the cache entry that holds the pointer.
    pub via: Pointer,
    /// The freed table it points to.
    pub table: PhysAddr,
}

impl std::fmt::Display for FreedTableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu {}: {} points into freed table {:#x} (level {})",
            self.cpu,
            self.via,
            self.table,
            self.via.table_level().number()
        )
    }
}

/// A TLB per simulated CPU: CR3, cached (root, page) translations, and the
/// paging-structure caches (see the top of this file).
/// One CPU's TLB: (root, 4 KiB page) -> (the 4 KiB frame, the level of the leaf).
pub type CachedLeaves = BTreeMap<(PhysAddr, VirtAddr), (PhysAddr, Level)>;

/// The frame of a translation cached without simulated memory under CR3 (as given).
pub const UNKNOWN_FRAME: PhysAddr = PhysAddr::new(u64::MAX);

pub struct SimTlb {
    /// Per CPU: cached leaf translations, (root, 4 KiB page) -> the 4 KiB frame it maps to
    /// ([`UNKNOWN_FRAME`] where it was cached without simulated memory) and the level of
    /// the leaf it came from (a 2 MiB page's translation goes with one INVLPG anywhere in
    /// it, SDM 4.10.4.1). Shared with the memory's free check ([`World::with_machine`]).
    pub entries: Arc<Vec<Mutex<CachedLeaves>>>,
    /// Per CPU: CR3.
    pub root: Vec<Mutex<PhysAddr>>,
    /// Per CPU: paging-structure-cache entries by (level of the cached entry, key).
    pub psc: Vec<Mutex<BTreeMap<(Level, VirtAddr), Cached>>>,
    /// The simulated memory the hardware walks read (none: leaves only, as given).
    bus: OnceLock<Arc<MemBus>>,
}

impl SimTlb {
    /// `n` CPUs with nothing loaded or cached, attached to no memory.
    pub fn new(n: usize) -> Self {
        Self {
            entries: Arc::new((0..n).map(|_| Mutex::new(BTreeMap::new())).collect()),
            root: (0..n).map(|_| Mutex::new(PhysAddr::new(0))).collect(),
            psc: (0..n).map(|_| Mutex::new(BTreeMap::new())).collect(),
            bus: OnceLock::new(),
        }
    }

    /// Connects the CPUs' page walks to `mem` (once).
    pub fn attach(&self, mem: &SimMem) {
        assert!(
            self.bus.set(mem.bus.clone()).is_ok(),
            "the simulated TLB is attached to one memory"
        );
    }

    /// The memory under CPU `cpu`'s CR3, if the simulated memory holds (or held) it.
    fn walkable_root(&self, cpu: usize) -> Option<(&MemBus, PhysAddr)> {
        let bus = self.bus.get()?;
        let root = *self.root[cpu].lock().unwrap();
        (bus.holds(root) || bus.was_freed(root)).then_some((&**bus, root))
    }

    /// The running CPU accesses `va` through its loaded root (4.10.3.2): a TLB hit, or a
    /// walk from the longest-matching paging-structure-cache entry (else from CR3) that
    /// caches the upper entries it reads and the leaf's translation. Panics if the walk
    /// enters a freed table or reads a poisoned entry. Without simulated memory under
    /// CR3 the translation is cached as given.
    pub fn touch(&self, va: VirtAddr) {
        let cpu = SimCpu.this_cpu();
        let page = va.align_down(Level::Pte);
        let Some((bus, root)) = self.walkable_root(cpu) else {
            let root = *self.root[cpu].lock().unwrap();
            self.entries[cpu]
                .lock()
                .unwrap()
                .insert((root, page), (UNKNOWN_FRAME, Level::Pte));
            return;
        };
        if self.entries[cpu].lock().unwrap().contains_key(&(root, page)) {
            return;
        }
        let start = {
            let psc = self.psc[cpu].lock().unwrap();
            [Level::Pmd, Level::Pud, Level::Pgd]
                .into_iter()
                .find_map(|level| {
                    let base = cache_key(va, level);
                    psc.get(&(level, base))
                        .map(|&cached| Pointer::Cache { level, base, cached })
                })
        };
        let (mut level, mut table, via) = match start {
            Some(p @ Pointer::Cache { cached, .. }) => (p.table_level(), cached.table, p),
            _ => (Level::ROOT, root, Pointer::Cr3),
        };
        let mut from = format!("its {via}");
        loop {
            assert!(
                !bus.was_freed(table),
                "cpu {cpu}: walk of {va:#x} from {from} enters freed table {table:#x} (level {})",
                level.number()
            );
            let entry = Entry::from_raw(bus.word(table, level.index(va)).load(Ordering::Relaxed));
            assert!(
                !entry.is_poison(),
                "cpu {cpu}: walk of {va:#x} from {from} read a poisoned entry in table {table:#x} (level {})",
                level.number()
            );
            if entry.is_table_at(level) {
                self.psc[cpu].lock().unwrap().insert(
                    (level, cache_key(va, level)),
                    Cached {
                        table: entry.addr(),
                        root,
                    },
                );
                from = format!("the level-{} entry it read in table {table:#x}", level.number());
                table = entry.addr();
                level = level.below().expect("a table entry is above the PTEs");
                continue;
            }
            if entry.is_leaf_at(level) {
                let frame = entry.addr() + page.offset_in(level);
                self.entries[cpu]
                    .lock()
                    .unwrap()
                    .insert((root, page), (frame, level));
            }
            return;
        }
    }

    /// The running CPU's hardware fills its paging-structure caches speculatively: every
    /// present table entry reachable from its CR3, at every level (4.10.3.1). Panics if
    /// CR3 holds a freed root or a live entry points to a freed table. A root outside the
    /// simulated memory caches nothing.
    pub fn speculate(&self) {
        let cpu = SimCpu.this_cpu();
        let Some((bus, root)) = self.walkable_root(cpu) else {
            return;
        };
        let mut psc = self.psc[cpu].lock().unwrap();
        let mut todo = vec![(Level::ROOT, root, VirtAddr::new(0), "CR3".to_string())];
        while let Some((level, table, base, from)) = todo.pop() {
            assert!(
                !bus.was_freed(table),
                "cpu {cpu}: speculative walk from {from} enters freed table {table:#x} (level {})",
                level.number()
            );
            for i in 0..ENTRIES {
                let entry = Entry::from_raw(bus.word(table, i).load(Ordering::Relaxed));
                if !entry.is_table_at(level) || entry.is_poison() {
                    continue;
                }
                let at = cache_key(base + ((i as u64) << level.shift()), level);
                psc.insert(
                    (level, at),
                    Cached {
                        table: entry.addr(),
                        root,
                    },
                );
                if let Some(below) = level.below().filter(|&l| l != Level::Pte) {
                    let from = format!("the level-{} entry {i} of table {table:#x}", level.number());
                    todo.push((below, entry.addr(), at, from));
                }
            }
        }
    }

    /// Every pointer into a freed frame that a CPU holds in CR3 or its paging-structure
    /// caches (empty without simulated memory).
    pub fn pointers_into_freed_tables(&self) -> Vec<FreedTableRef> {
        let Some(bus) = self.bus.get() else {
            return Vec::new();
        };
        let freed: HashSet<PhysAddr> = bus.freed.lock().unwrap().iter().copied().collect();
        let mut found = Vec::new();
        for cpu in 0..self.root.len() {
            let root = *self.root[cpu].lock().unwrap();
            if freed.contains(&root) {
                found.push(FreedTableRef {
                    cpu,
                    via: Pointer::Cr3,
                    table: root,
                });
            }
            for (&(level, base), &cached) in self.psc[cpu].lock().unwrap().iter() {
                if freed.contains(&cached.table) {
                    found.push(FreedTableRef {
                        cpu,
                        via: Pointer::Cache { level, base, cached },
                        table: cached.table,
                    });
                }
            }
        }
        found
    }

    /// Whether CPU `cpu`'s TLB holds the translation of `va`'s page under `root`.
    pub fn cached(&self, cpu: usize, root: PhysAddr, va: VirtAddr) -> bool {
        self.entries[cpu]
            .lock()
            .unwrap()
            .contains_key(&(root, va.align_down(Level::Pte)))
    }
}

impl LocalTlb for SimTlb {
    fn cpu(&self) -> &dyn RunningCpu {
        &SimCpu
    }
    /// INVLPG: the page's TLB entries and every paging-structure-cache entry (4.10.4.1);
    /// then the hardware may walk again at once.
    fn flush_page(&self, va: VirtAddr) {
        let cpu = SimCpu.this_cpu();
        self.entries[cpu]
            .lock()
            .unwrap()
            .retain(|&(_, v), &mut (_, leaf)| v.align_down(leaf) != va.align_down(leaf));
        self.psc[cpu].lock().unwrap().clear();
        self.speculate();
    }
    /// CR3 reload: every TLB and paging-structure-cache entry (no global user pages, no
    /// PCID); then the hardware may walk again at once.
    fn flush_all(&self) {
        let cpu = SimCpu.this_cpu();
        self.entries[cpu].lock().unwrap().clear();
        self.psc[cpu].lock().unwrap().clear();
        self.speculate();
    }
    /// CR3 load: as the reload, under the new root.
    fn load_root(&self, root: PhysAddr) {
        let cpu = SimCpu.this_cpu();
        *self.root[cpu].lock().unwrap() = root;
        self.entries[cpu].lock().unwrap().clear();
        self.psc[cpu].lock().unwrap().clear();
        self.speculate();
    }
}

/// Native-IPI backend: every target runs the handler ("takes the interrupt").
pub struct SimIpi;

impl FlushBackend for SimIpi {
    fn kind(&self) -> BackendKind {
        BackendKind::NativeIpi
    }
    fn flush_others(&self, _on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
        for t in targets.iter() {
            on_cpu(t, || irqs_off(handler));
        }
        *targets
    }

    /// The targets run the handler as the requests are "sent" (each at once, in turn),
    /// then `local` runs, before a wait that has nothing left to wait for: the concurrent
    /// round's order, with no overlap to measure. Never early (a simulated responder has
    /// no `Mmu` of its own to run an [`crate::round::EarlyResponder`] with).
    fn flush_round(
        &self,
        on: &IrqsOn,
        targets: &CpuMask,
        round: &crate::round::Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        let hit = self.flush_others(on, targets, round.handler);
        local();
        hit
    }
}

impl crate::hw::CrossCall for SimIpi {
    fn call_others(&self, _on: &IrqsOn, targets: &CpuMask, f: &Handler) {
        for t in targets.iter() {
            on_cpu(t, || irqs_off(f));
        }
    }
}

/// A complete simulated machine.
pub struct Machine {
    pub tlb: SimTlb,
    pub states: Arc<TlbStates>,
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
            states: Arc::new(TlbStates::new()),
            stats: TlbStats::new(),
            kernel: Box::new(AddressSpace::new(PhysAddr::new(0x1000))),
            backend,
        };
        for c in 0..n {
            on_cpu(c, || irqs_off(|off| m.mmu().switch_mm(off, &m.kernel)));
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
            // [`SimIpi`]'s round runs the local flush after its targets' handlers and
            // before it returns; the other simulated backends have no round of their own.
            round: crate::round::RoundMode::CONCURRENT,
            responder: None,
        }
    }
}

/// The frames of the simulated memory and what was freed: shared by [`SimMem`] and the
/// simulated CPUs' page walks ([`SimTlb::attach`]).
pub struct MemBus {
    frames: Mutex<HashMap<PhysAddr, &'static [AtomicU64; 512]>>,
    /// Every frame freed, in order (addresses are never reused).
    pub freed: Mutex<Vec<PhysAddr>>,
    /// The page-table frames among them.
    pub freed_tables: Mutex<Vec<PhysAddr>>,
    /// Run on every data frame before it is freed ([`World::with_machine`] installs the
    /// check that no running CPU still caches a translation to it).
    free_check: OnceLock<Box<dyn Fn(PhysAddr) + Send + Sync>>,
}

impl MemBus {
    /// Whether `pa` is an allocated frame.
    fn holds(&self, pa: PhysAddr) -> bool {
        self.frames.lock().unwrap().contains_key(&pa)
    }

    /// Whether `pa` is a frame that was allocated and freed.
    fn was_freed(&self, pa: PhysAddr) -> bool {
        self.freed.lock().unwrap().contains(&pa)
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

    fn word(&self, table: PhysAddr, index: usize) -> &'static AtomicU64 {
        // The lock is let go before a panic: a walker that reads a freed table (a test
        // showing that failure) must not poison the memory for the freer still at work.
        let f = self.frames.lock().unwrap().get(&table).copied();
        let f = f.unwrap_or_else(|| panic!("access to unallocated frame {table:#x}"));
        &f[index]
    }
}

/// Simulated physical memory: frames as boxed arrays of atomics, with an event log.
pub struct SimMem {
    bus: Arc<MemBus>,
    next: AtomicU64,
}

impl Deref for SimMem {
    type Target = MemBus;
    fn deref(&self) -> &MemBus {
        &self.bus
    }
}

impl SimMem {
    pub fn new() -> Self {
        Self {
            bus: Arc::new(MemBus {
                frames: Mutex::new(Default::default()),
                freed: Mutex::new(Vec::new()),
                freed_tables: Mutex::new(Vec::new()),
                free_check: OnceLock::new(),
            }),
            next: AtomicU64::new(0x10_0000),
        }
    }

    /// Frames currently allocated.
    pub fn live(&self) -> usize {
        self.frames.lock().unwrap().len()
    }
}

impl PhysMem for SimMem {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        let pa = PhysAddr::new(self.next.fetch_add(4096, Ordering::SeqCst));
        let f: &'static [AtomicU64; 512] = Box::leak(Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        self.frames.lock().unwrap().insert(pa, f);
        Some(pa)
    }
    fn free_frame(&self, pa: PhysAddr) {
        if let Some(check) = self.bus.free_check.get() {
            check(pa);
        }
        self.bus.free_frame(pa)
    }
    fn free_table(&self, pa: PhysAddr) {
        self.bus.free_table(pa)
    }
    fn alloc_huge(&self) -> Option<PhysAddr> {
        // 512 frames at consecutive, 2 MiB-aligned addresses.
        let huge = Level::Pmd.span();
        let pa = self.next.fetch_add(2 * huge, Ordering::SeqCst);
        let base = PhysAddr::new(pa + huge - 1).align_down(Level::Pmd);
        let mut frames = self.frames.lock().unwrap();
        for i in 0..512 {
            let f: &'static [AtomicU64; 512] =
                Box::leak(Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
            frames.insert(base + i * 4096, f);
        }
        Some(base)
    }
    fn free_huge(&self, pa: PhysAddr) {
        for i in 0..512 {
            self.free_frame(pa + i * 4096);
        }
    }
    fn word(&self, table: PhysAddr, index: usize) -> &AtomicU64 {
        self.bus.word(table, index)
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
    /// The `force-skip` fault: a sync IPI does nothing (no CPU is interrupted, `syncs`
    /// does not move), as if the sync had been skipped.
    pub sync_does_nothing: std::sync::atomic::AtomicBool,
    /// The targets of every sync IPI sent, in order.
    pub sync_targets: std::sync::Mutex<Vec<CpuMask>>,
    /// Calls of `relax` (a waiting CPU between two polls).
    pub relaxes: std::sync::atomic::AtomicU64,
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
            sync_does_nothing: Default::default(),
            sync_targets: Default::default(),
            relaxes: Default::default(),
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
    fn cpu(&self) -> &dyn RunningCpu {
        &SimCpu
    }
    fn flush_implies_ipi_broadcast(&self) -> bool {
        self.broadcast_key
    }
    /// As the hardware does: each target takes the IPI only once it is outside every
    /// interrupts-off region (a walker's walk among them), and the sender waits for all
    /// (counting `relaxes` while it waits, so a test can see it waiting). A target still
    /// in one after a minute is a test that deadlocked: it panics, naming it.
    fn sync_ipi(&self, _on: &IrqsOn, targets: &CpuMask) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.sync_does_nothing.load(SeqCst) {
            return;
        }
        self.syncs.fetch_add(1, SeqCst);
        self.sync_targets.lock().unwrap().push(*targets);
        let since = std::time::Instant::now();
        for t in targets.iter() {
            while IRQS_OFF_SEEN[t].load(SeqCst) > 0 {
                self.relaxes.fetch_add(1, SeqCst);
                assert!(
                    since.elapsed() < std::time::Duration::from_secs(60),
                    "sync IPI to cpu {t}: not taken in a minute (interrupts off there)"
                );
                std::thread::yield_now();
            }
        }
    }
    fn online(&self) -> CpuMask {
        CpuMask::first(self.cpus)
    }
    fn quiescent_count(&self, cpu: usize) -> u64 {
        self.quiescent[cpu].load(std::sync::atomic::Ordering::SeqCst)
    }
    fn relax(&self) {
        self.relaxes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
    fn flush_others(&self, _on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
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
    fn flush_others(&self, _on: &IrqsOn, _targets: &CpuMask, _handler: &Handler) -> CpuMask {
        CpuMask::new()
    }
}

/// The `lazy` fault: a flush backend that passes on only the targets that are not lazy,
/// as a flush that ignored its freed tables would (its receipt then shows the lazy CPUs
/// as could-walk but not interrupted).
pub struct SkipLazy<'a> {
    /// The real backend.
    pub inner: &'a dyn FlushBackend,
    /// Whose lazy flags to read.
    pub states: &'a TlbStates,
}

impl FlushBackend for SkipLazy<'_> {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
        let busy: CpuMask = targets
            .iter()
            .filter(|&c| !self.states.cpu(c).is_lazy())
            .collect();
        if busy.is_empty() {
            return CpuMask::new();
        }
        self.inner.flush_others(on, &busy, handler)
    }
}

/// The `table_batch=fail` fault: the simulated memory seen by the table freer, with no
/// frame to give (every batch allocation fails); frees and word accesses reach the real
/// frames (batches queued before still get freed).
pub struct NoFrames(Arc<MemBus>);

impl PhysMem for NoFrames {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        None
    }
    fn free_frame(&self, pa: PhysAddr) {
        self.0.free_frame(pa)
    }
    fn free_table(&self, pa: PhysAddr) {
        self.0.free_table(pa)
    }
    fn word(&self, table: PhysAddr, index: usize) -> &AtomicU64 {
        self.0.word(table, index)
    }
}

/// A simulated machine with memory, sync hardware and a table freer: what a gather needs.
pub struct World {
    pub m: Machine,
    pub mem: SimMem,
    pub sync: SimSync,
    pub freer: crate::table_free::TableFreerState,
    /// The walk markers (the lock-free walker publishes into them).
    pub walks: crate::walk_marker::WalkMarkers,
    /// The `table_batch=fail` fault: the freer's batch pages come from [`NoFrames`].
    pub no_batch_pages: bool,
    no_frames: NoFrames,
}

impl World {
    /// Four CPUs with a backend of `kind`; `key` is the boot-time decision.
    pub fn new(kind: BackendKind, key: bool) -> Self {
        Self::with_machine(Machine::with_backend(4, Box::new(SimKind(kind))), key)
    }

    /// Around a machine of four CPUs built by the caller.
    pub fn with_machine(m: Machine, key: bool) -> Self {
        let mem = SimMem::new();
        m.tlb.attach(&mem);
        // Flush before free, observed on the machine: a data frame is freed only once no
        // CPU running an address space caches a translation to it (mmu_gather's rule,
        // `gather.rs`). Lazy CPUs are left out: they may keep stale user translations by
        // design (`flush.rs`, rule 2) and touch no user address until they catch up.
        let (entries, states) = (m.tlb.entries.clone(), m.states.clone());
        let check = move |frame: PhysAddr| {
            for (cpu, cached) in entries.iter().enumerate() {
                if states.cpu(cpu).is_lazy() {
                    continue;
                }
                if let Some((&(root, va), _)) = cached.lock().unwrap().iter().find(|&(_, &(f, _))| f == frame)
                {
                    panic!(
                        "frame {frame:#x} freed while cpu {cpu} still caches {va:#x} -> it \
                         (root {root:#x}): freed before the flush that drops the translation"
                    );
                }
            }
        };
        assert!(mem.bus.free_check.set(Box::new(check)).is_ok());
        Self {
            m,
            no_frames: NoFrames(mem.bus.clone()),
            mem,
            sync: SimSync::new(4, key),
            freer: crate::table_free::TableFreerState::new(),
            walks: crate::walk_marker::WalkMarkers::new(),
            no_batch_pages: false,
        }
    }

    /// Panics, listing them, if any CPU's CR3 or paging-structure cache points into a
    /// freed frame: a table that CPU's hardware may still walk into at any moment.
    #[track_caller]
    pub fn assert_no_cached_pointer_into_freed_tables(&self) {
        let found = self.m.tlb.pointers_into_freed_tables();
        assert!(
            found.is_empty(),
            "{} cached pointer(s) into freed tables:\n{}",
            found.len(),
            found
                .iter()
                .map(|f| format!("  {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// The table freer at work on this world (its batch pages from [`NoFrames`] under
    /// the `table_batch=fail` fault).
    pub fn freer(&self) -> crate::table_free::TableFreer<'_> {
        crate::table_free::TableFreer {
            state: &self.freer,
            hw: &self.sync,
            mem: if self.no_batch_pages {
                &self.no_frames
            } else {
                &self.mem
            },
            stats: &self.m.stats,
            walks: &self.walks,
        }
    }

    pub fn ctx(&self) -> crate::gather::GatherCtx<'_> {
        crate::gather::GatherCtx {
            mmu: self.m.mmu(),
            mem: &self.mem,
            freer: self.freer(),
            flushes: &crate::gather::AsAsked,
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

    /// CPU `cpu` runs `mm` (its hardware fills its caches from the root) and then holds it
    /// lazily: a CPU that a flush freeing tables must reach.
    pub fn hold_lazily(&self, cpu: usize, mm: &AddressSpace) {
        on_cpu(cpu, || {
            irqs_off(|off| self.m.mmu().switch_mm(off, mm));
            self.m.mmu().enter_lazy_tlb();
        });
    }

    /// A new address space mapping `pages` consecutive pages from `base`.
    pub fn mm_with_pages(&self, base: u64, pages: u64) -> AddressSpace {
        self.mm_with((0..pages).map(|p| VirtAddr::new(base + p * 4096)))
    }
}

impl Drop for World {
    /// The end of every test of an operation: the freer's queued tables get their grace
    /// period and are freed, as they would be, and then no CPU may still point into a
    /// freed table ([`World::assert_no_cached_pointer_into_freed_tables`]). Skipped when
    /// the test is already panicking.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.sync.tick_all();
        on_cpu(0, || self.freer().drain(&irqs_on()));
        self.assert_no_cached_pointer_into_freed_tables();
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

impl crate::hw::WalkerHw for SimWalker<'_> {
    fn cpu(&self) -> &dyn RunningCpu {
        &SimCpu
    }
    fn preemption_point(&self) {
        (self.at_preemption)()
    }
    fn loaded_root(&self) -> PhysAddr {
        *self.tlb.root[SimCpu.this_cpu()].lock().unwrap()
    }
}

/// The munmap of the simulated machine, as the kernel's `user_space::unmap`: the running
/// CPU unmaps `[start, end)` of `mm` through one gather built from its page-table guard,
/// and finishes it.
pub fn munmap(ctx: &crate::gather::GatherCtx, mm: &AddressSpace, start: VirtAddr, end: VirtAddr) {
    let locked = mm.lock();
    let mut g = crate::gather::MmuGather::new(ctx, &locked);
    crate::unmap::unmap_range(&mut g, start, end);
    g.finish();
}
