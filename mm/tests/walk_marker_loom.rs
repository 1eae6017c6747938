//! Loom check of mm's walk-marker protocol (`mm/src/walk_marker.rs`): no
//! lock-free walker reads a page table after the freer that unlinked it frees it.
//!
//! Built only with `--cfg loom`, under which mm's protocol atomics and fences are loom's
//! (`mm/src/sync.rs`): the marker functions run here are mm's own, on loom threads.
//!
//! # The model
//!
//! One page table, pointed to by one entry of its parent. Walker CPUs (loom threads) run
//! mm's [`WalkMarkers::walk`] with interrupts off (the proof made by mm's
//! `with_irqs_off` on a small [`RunningCpu`]); the walk reads the entry and, if it still
//! points to the table, reads the table. The freer CPU clears the entry (the unlink),
//! then makes sure no walk that may have read the entry before the clear is still open,
//! in one of the three ways mm has, and frees the table:
//! - (a) `targeted`: [`WalkMarkers::scan`], then a sync IPI to each marked CPU, waiting
//!   for its ack. A CPU takes an interrupt only at its interrupt points, which are
//!   outside its walks (interrupts are off for a walk): between its walks, and after the
//!   last, when it idles. The IPI is a pending flag the sender sets and the target clears
//!   after its (empty) handler; SeqCst both ways, as the hardware's delivery and the
//!   handler's ack order everything before them. An idle CPU would take it at once: its
//!   signal that it idles (after its last walk, interrupts on) stands for its ack.
//! - (b) `wait`: [`WalkMarkers::wait_out`].
//! - (c) a walk period (the batched path): [`WalkMarkers::snapshot`], then
//!   [`WalkMarkers::ended_since`] for every CPU until it holds.
//!
//! The entry is a loom atomic read and written Relaxed: page-table memory gives no
//! ordering (the hardware walker's reads and the unlink's store are plain accesses), the
//! protocol's fences must. No flush: under Rust's model a flush adds nothing the walker
//! sees (it is the TSO checker's and the kernel tests' part), and the protocol's argument
//! does not lean on it. The table's contents are a `loom::cell::UnsafeCell` that the walk
//! reads and the free writes, so loom reports any free that does not happen after a
//! walk's read of the table ("Causality violation"); the walk also asserts it never reads
//! the freed value.
//!
//! # Models and bounds
//!
//! - Two walker CPUs, one walk each, and the freer, in each way: (a) 70 000, (b) 30 600,
//!   (c) 21 900 executions at a preemption bound of 3 (at 2: 6 000, 3 500, 2 700;
//!   exhaustive is several minutes each). A CPU that is done walking signals that it
//!   idles with interrupts on (see `Machine::sync_ipi`).
//! - One walker CPU that walks the freer's address space, takes interrupts, then walks
//!   another address space, and the freer: exhaustive ((a) 21 000, (b) 8 800, (c) 9 100
//!   executions). This model found that the marker's publishing store (W1) must be
//!   Release under Rust's model (it was Relaxed): its twin `twin_w1_relaxed_next_walk`
//!   fails in all three ways, the code as written passes.
//!
//! The whole file takes about 30 s of wall time on a loaded 2-core machine.
//!
//! # Weakened twins
//!
//! Each runs the two-walker model with one ordering site of `walk_marker.rs` weakened
//! ([`mm::weaken`]), in every way that reaches the site, and must fail with a walk
//! reading the freed table: the walker's fence (W2) and the freer's fence (F3) removed
//! (the store-buffering outcome: the walker reads the entry before it is cleared, the
//! freer reads the marker before it is published), the walker's marker clear (W4)
//! Relaxed, the freer's first marker read (F4) Relaxed and its later reads (the wait)
//! Relaxed (W4's Release pairs with those Acquire loads: without either, the freer sees
//! the walk ended but not what the walk read). The one-walk models would pass with W1
//! Relaxed (the fence W2 orders it before the walk's reads); the next-walk models do not.
//!
//! # Running it
//!
//! `tests/tests/loom.rs` (part of `cargo test`) runs `RUSTFLAGS="--cfg loom" cargo test
//! -p mm --test walk_marker_loom --release` in `target/loom`.
#![cfg(loom)]

use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{self, Relaxed, SeqCst};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

type LoomU64 = loom::sync::atomic::AtomicU64;
type LoomBool = loom::sync::atomic::AtomicBool;

use mm::Site;
use mm::addr::PhysAddr;
use mm::addr_space::AddressSpace;
use mm::cpumask::{CpuMask, MAX_CPUS};
use mm::hw::RunningCpu;
use mm::irq::IrqsOn;
use mm::walk_marker::{WalkMarkers, WalkTag};

/// The walker CPUs' indices are 0 and 1; the freer is CPU 2.
const WALKERS: usize = 2;
const FREER: usize = WALKERS;
const NCPU: usize = WALKERS + 1;
/// The entry's value while it points to the table (0: cleared).
const TABLE: u64 = 0x2000;
/// What the table holds while it is live, and after the free.
const LIVE: u64 = 0x1111;
const FREED: u64 = 0xdead;

loom::thread_local! {
    /// The CPU this loom thread is (the kernel's per-CPU register).
    static THIS_CPU: Cell<usize> = Cell::new(usize::MAX);
}

/// The table's contents for loom's access tracking: walks read it, the free writes.
struct TableCell(UnsafeCell<u64>);

// SAFETY: every access goes through loom's `with` / `with_mut`, which check that no read
// and write race (a race fails the model, it is never undefined behaviour here).
unsafe impl Sync for TableCell {}

/// How the freer makes sure no walk that may have read the entry is still open.
#[derive(Clone, Copy, Debug)]
enum FreerWay {
    /// (a) `scan`, then a sync IPI to the marked CPUs.
    ScanAndSync,
    /// (b) `wait_out`.
    WaitOut,
    /// (c) `snapshot`, then `ended_since` for every CPU.
    WalkPeriod,
}

struct Machine {
    /// Walker CPUs (0..walkers); the freer is CPU [`FREER`].
    walkers: usize,
    markers: WalkMarkers,
    /// The address space whose table is freed.
    mm: AddressSpace,
    /// Another address space (walked by CPU 0's second walk in the two-walk models).
    other: AddressSpace,
    /// The parent's entry pointing to the table (page-table memory: Relaxed only).
    entry: LoomU64,
    table: TableCell,
    /// Per CPU: a sync IPI is pending (set by the freer, cleared by the target's ack).
    ipi: [LoomU64; NCPU],
    /// Per CPU: its walks are done, it idles with interrupts on from now on (so it would
    /// take a sync IPI at once: it counts as an ack).
    idle: [LoomBool; NCPU],
    /// Per CPU: the interrupt flag (ghost state only its own CPU reads: a core atomic).
    irqs_off: [AtomicBool; NCPU],
}

impl RunningCpu for Machine {
    fn this_cpu(&self) -> usize {
        THIS_CPU.with(|c| c.get())
    }

    fn run_irqs_disabled(&self, f: &mut dyn FnMut()) {
        let me = self.this_cpu();
        let prev = self.irqs_off[me].swap(true, SeqCst);
        f();
        self.irqs_off[me].store(prev, SeqCst);
    }

    fn irqs_enabled(&self) -> bool {
        !self.irqs_off[self.this_cpu()].load(SeqCst)
    }
}

impl Machine {
    fn new(walkers: usize) -> Self {
        Machine {
            walkers,
            markers: WalkMarkers::new(),
            mm: AddressSpace::new(PhysAddr::new(0x1000)),
            other: AddressSpace::new(PhysAddr::new(0x3000)),
            entry: LoomU64::new(TABLE),
            table: TableCell(UnsafeCell::new(LIVE)),
            ipi: core::array::from_fn(|_| LoomU64::new(0)),
            idle: core::array::from_fn(|_| LoomBool::new(false)),
            irqs_off: core::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    /// One lock-free walk of `mm` by the running CPU, with its marker published (mm's
    /// code): reads the entry, and the table if the entry still points to it (a walk of
    /// another address space reads neither).
    fn walk(&self, mm: &AddressSpace) {
        let me = self.this_cpu();
        let tag = WalkTag::of(mm);
        let ours = core::ptr::eq(mm, &self.mm);
        let mut on = IrqsOn::check(self, "walks");
        self.with_irqs_off(&mut on, &mut |off| {
            self.markers.walk(off, me, tag, || {
                if ours && self.entry.load(Relaxed) == TABLE {
                    // SAFETY: loom checks this read against the free's write.
                    let v = self.table.0.with(|p| unsafe { *p });
                    assert_eq!(v, LIVE, "cpu {me} reads the table after it was freed");
                }
            })
        });
    }

    /// An interrupt point (interrupts on): takes a pending sync IPI (its handler is
    /// empty) and acks it.
    fn irq_point(&self) {
        let me = self.this_cpu();
        assert!(
            self.irqs_enabled(),
            "cpu {me}: interrupt point with interrupts off"
        );
        if self.ipi[me].load(SeqCst) != 0 {
            self.ipi[me].store(0, SeqCst);
        }
    }

    /// The running CPU's walks are done: it idles from now on, taking interrupts (an
    /// idle loop of interrupt points, which the model does not run: see `sync_ipi`).
    fn idle(&self) {
        self.irq_point();
        self.idle[self.this_cpu()].store(true, SeqCst);
    }

    /// The sync IPI to `targets`, waiting for every ack (`TableSyncHw::sync_ipi`). An
    /// idle target would take it at its next interrupt point, outside any walk: its
    /// `idle` signal (after its last walk) stands for the ack. (Spinning idle loops
    /// would keep loom's search from ending.)
    fn sync_ipi(&self, targets: &CpuMask) {
        for t in targets.iter() {
            self.ipi[t].store(1, SeqCst);
        }
        for t in targets.iter() {
            while self.ipi[t].load(SeqCst) != 0 && !self.idle[t].load(SeqCst) {
                thread::yield_now();
            }
        }
    }

    /// The freer: unlink, make sure of the walkers in `way`, free.
    fn free(&self, way: FreerWay) {
        let tag = WalkTag::of(&self.mm);
        let walkers = CpuMask::first(self.walkers);
        // F1, the unlink.
        self.entry.store(0, Relaxed);
        match way {
            FreerWay::ScanAndSync => {
                let marked = self.markers.scan(tag, &walkers);
                self.sync_ipi(&marked);
            }
            FreerWay::WaitOut => {
                self.markers.wait_out(tag, &walkers, &mut |_| thread::yield_now());
            }
            FreerWay::WalkPeriod => {
                let mut seen = [0; MAX_CPUS];
                self.markers.snapshot(&walkers, &mut seen);
                for c in walkers.iter() {
                    while !self.markers.ended_since(c, seen[c]) {
                        thread::yield_now();
                    }
                }
            }
        }
        // SAFETY: loom checks this write against every walk's read.
        self.table.0.with_mut(|p| unsafe { *p = FREED });
    }
}

/// Preemption bound of the models with two walker CPUs (see the top).
const PB_TWO_WALKERS: Option<usize> = Some(3);

/// Which walks the walker CPUs make.
#[derive(Clone, Copy, Debug)]
enum Walkers {
    /// CPUs 0 and 1 walk the freer's address space once each.
    TwoOnce,
    /// CPU 0 walks the freer's address space, takes interrupts, then walks another one.
    OneThenOther,
}

/// Runs the model with `walkers` and the freer in `way`; returns the executions explored.
fn run(walkers: Walkers, way: FreerWay) -> usize {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = match walkers {
        Walkers::TwoOnce => PB_TWO_WALKERS,
        Walkers::OneThenOther => None,
    };
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = executions.clone();
    builder.check(move || {
        counter.fetch_add(1, SeqCst);
        let n = match walkers {
            Walkers::TwoOnce => 2,
            Walkers::OneThenOther => 1,
        };
        let m = Arc::new(Machine::new(n));
        let cpus = (0..n).chain([FREER]);
        let handles: Vec<_> = cpus
            .map(|c| {
                let m = m.clone();
                thread::spawn(move || {
                    THIS_CPU.with(|t| t.set(c));
                    if c == FREER {
                        return m.free(way);
                    }
                    // Interrupts matter only to (a): the others send none.
                    let sync = matches!(way, FreerWay::ScanAndSync);
                    m.walk(&m.mm);
                    if let Walkers::OneThenOther = walkers {
                        if sync {
                            m.irq_point();
                        }
                        m.walk(&m.other);
                    }
                    if sync {
                        m.idle();
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    executions.load(SeqCst)
}

const WAYS: [FreerWay; 3] = [FreerWay::ScanAndSync, FreerWay::WaitOut, FreerWay::WalkPeriod];

// ---- mm's code as written ----------------------------------------------------------

#[test]
fn a_scan_and_sync_ipi() {
    let n = run(Walkers::TwoOnce, FreerWay::ScanAndSync);
    println!("a_scan_and_sync_ipi: {n} executions");
}

#[test]
fn b_wait_out() {
    let n = run(Walkers::TwoOnce, FreerWay::WaitOut);
    println!("b_wait_out: {n} executions");
}

#[test]
fn c_walk_period() {
    let n = run(Walkers::TwoOnce, FreerWay::WalkPeriod);
    println!("c_walk_period: {n} executions");
}

// ---- weakened twins of mm's code (must fail) ---------------------------------------

/// The message of a model's failure, or the executions it passed.
fn outcome(walkers: Walkers, way: FreerWay, site: Option<(Site, Ordering)>) -> Result<usize, String> {
    mm::weaken(site);
    let got = std::panic::catch_unwind(|| run(walkers, way));
    mm::weaken(None);
    got.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Whether `msg` is a walk reading the freed table (loom's causality check on the table,
/// or the walk's own assert).
fn reads_freed_table(msg: &str) -> bool {
    msg.contains("Causality violation") || msg.contains("after it was freed")
}

/// Runs the model of `way` with `site` weakened to `weaker`; it must fail with a walk
/// reading the freed table. Says what it got otherwise.
fn twin(site: Site, weaker: Ordering, way: FreerWay) {
    match outcome(Walkers::TwoOnce, way, Some((site, weaker))) {
        Ok(n) => panic!("{site:?} weakened to {weaker:?}, {way:?}: the check still passes ({n} executions)"),
        Err(msg) => assert!(
            reads_freed_table(&msg),
            "{site:?} weakened to {weaker:?}, {way:?}: failed, but with {msg:?}"
        ),
    }
}

/// W2, the walker's fence after publishing its marker, removed.
#[test]
fn twin_walk_fence_removed() {
    WAYS.into_iter()
        .for_each(|way| twin(Site::WalkFence, Relaxed, way));
}

/// F3, the freer's fence between the unlink and the marker reads, removed.
#[test]
fn twin_scan_fence_removed() {
    WAYS.into_iter()
        .for_each(|way| twin(Site::ScanFence, Relaxed, way));
}

/// W4, the walker's marker clear, Release -> Relaxed.
#[test]
fn twin_walk_end_relaxed() {
    WAYS.into_iter().for_each(|way| twin(Site::WalkEnd, Relaxed, way));
}

/// F4, the freer's first read of a marker (scan, wait_out, snapshot), Acquire -> Relaxed.
#[test]
fn twin_scan_load_relaxed() {
    WAYS.into_iter()
        .for_each(|way| twin(Site::ScanLoad, Relaxed, way));
}

/// The freer's later reads of a marker (waiting for the walk to end: wait_out,
/// ended_since), Acquire -> Relaxed.
#[test]
fn twin_wait_load_relaxed() {
    [FreerWay::WaitOut, FreerWay::WalkPeriod]
        .into_iter()
        .for_each(|way| twin(Site::WaitLoad, Relaxed, way));
}

// ---- a walk followed by a walk of another address space ----------------------------

/// The twin of W1 (the marker's publishing store) Relaxed: a freer that reads the word
/// of the CPU's *next* walk (of another address space: not its tag; or, waiting, the
/// count moved) learns that the walk it cares about ended, but a Relaxed store carries
/// no happens-before from the ended walk's reads (a release sequence is the Release
/// store and the read-modify-writes after it, not later plain stores), so under Rust's
/// model the free races with that walk's read of the table. This model found it (W1 was
/// Relaxed); x86-TSO (stores in order, loads acquire) does not have it.
#[test]
fn twin_w1_relaxed_next_walk() {
    for way in WAYS {
        match outcome(Walkers::OneThenOther, way, Some((Site::WalkPublish, Relaxed))) {
            Ok(n) => panic!("{way:?}: W1 Relaxed passes ({n} executions)"),
            Err(msg) => assert!(reads_freed_table(&msg), "{way:?}: failed with {msg:?}"),
        }
    }
}

/// The same models with mm's code as written (W1 Release): they pass.
fn next_walk(way: FreerWay) -> usize {
    match outcome(Walkers::OneThenOther, way, None) {
        Ok(n) => n,
        Err(msg) => panic!("{way:?} fails: {msg}"),
    }
}

#[test]
fn a_next_walk_scan_and_sync_ipi() {
    let n = next_walk(FreerWay::ScanAndSync);
    println!("a_next_walk_scan_and_sync_ipi: {n} executions");
}

#[test]
fn b_next_walk_wait_out() {
    let n = next_walk(FreerWay::WaitOut);
    println!("b_next_walk_wait_out: {n} executions");
}

#[test]
fn c_next_walk_walk_period() {
    let n = next_walk(FreerWay::WalkPeriod);
    println!("c_next_walk_walk_period: {n} executions");
}
