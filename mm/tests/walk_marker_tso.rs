//! x86-TSO check of mm's walk markers (`mm/src/walk_marker.rs`): no lock-free walker
//! reads a freed table, in any execution an x86 machine allows.
//!
//! Built only with `--cfg tso`, under which mm's protocol atomics and fences are the
//! `tso` checker's (`mm/src/sync.rs`): `WalkMarkers::walk`, `scan`, `wait_out`,
//! `snapshot` and `ended_since` run here are mm's own, and every load, store and fence
//! in them is what x86 makes of it (a plain store waits in the CPU's store buffer;
//! `mfence` and locked instructions drain it). `tests/tests/tso.rs` (part of `cargo
//! test`) runs this file.
//!
//! # What is modelled
//!
//! - CPUs are `tso` threads: cpu0 is the freer, the others walkers.
//! - The table: one entry that points to it (`entry`, [`TABLE`] while linked) and one
//!   word of the table itself (`table`, [`LIVE`] until freed, [`POISON`] after), both
//!   the checker's atomics, written and read with plain `mov`s (Relaxed): a page walk
//!   gives no ordering, and neither does a plain page-table store.
//! - A walker runs mm's `WalkMarkers::walk` inside `RunningCpu::with_irqs_off` (of a
//!   test CPU, [`Cpu`]: its interrupt flag is a per-thread bool, and what other CPUs see
//!   of it a checker atomic written at each change, see below); its walk reads the
//!   entry and, if it still points to the table, the table's word, and asserts the
//!   word is not [`POISON`].
//! - The freer clears the entry (F1: a plain store, so that F3 alone orders it before
//!   the marker reads; mm's `EntrySlot::clear` is a locked `xchg`, which would drain
//!   the buffer by itself), then one of the three ways to wait, then frees the table
//!   (writes [`POISON`] into its word):
//!   - targeted: `scan`, then for each CPU it returns, the sync IPI: the freer waits
//!     until that CPU's interrupts are on (it cannot take the IPI before). A CPU's
//!     interrupt flag as others see it is a checker atomic stored (plain `mov`) when
//!     the flag changes, standing for the acknowledgement its IPI handler would store
//!     once interrupts are on, after the walk's loads;
//!   - wait: `wait_out`;
//!   - walk period: `snapshot`, then `ended_since` for every CPU until all are true;
//!   - and the kernel's freer itself, `TableFreer::table_sync_one` without a receipt,
//!     in the `targeted` form (its `sync_ipi` is the IPI above) and the `wait` form.
//! - Not modelled: the flush (F2; no TLB: walkers read memory), the rest of the page
//!   table (one entry, one word), the receipt rule (which may skip the sync before
//!   any of this), more than one address space.
//!
//! # What each test shows
//!
//! - (The checker's own store-buffer litmus, `tso/tests/litmus.rs`: "both loads read 0"
//!   is found without fences, with its trace, not with `mfence` on both sides, nor with
//!   a locked `swap` (Relaxed) as one side's store and fence; a SeqCst *load* does not
//!   fence.)
//! - `protocol_*`: mm's code as written (the markers' functions, and
//!   `TableFreer::table_sync_one` on them), on 2 CPUs (one walker walking twice) and 3
//!   CPUs (two walkers walking once; twice each in an `#[ignore]`d test, 110 000
//!   executions), with each way to wait: no walker reads POISON in any execution.
//! - `pruning_loses_nothing_on_the_protocol`: the checker's pruning of equivalent
//!   executions finds exactly the outcomes the search of every order finds, here.
//! - `release_and_acquire_are_plain_movs_on_x86`: the walk's Release end and the
//!   freer's Acquire loads made Relaxed are the same x86 instructions: still no use
//!   after free (what x86 adds to Rust's model; loom holds mm to the orderings).
//! - `twin_*`: mm's code with one fence removed (`mm::weaken(Some((site, Relaxed)))`):
//!   the walker's W2 (`Site::WalkFence`) or the freer's F3 (`Site::ScanFence`), with
//!   each way to wait; the
//!   check must find the use-after-free and print its trace (the test passes when the
//!   checker fails the weakened code).
//!
//! Reading a trace: `xN (made at FILE:LINE)` is an atomic by where it was made: in this
//! file, `entry` (`Machine::new`'s first), `table` (its second) and `irqs_on` (its
//! third); in `mm/src/walk_marker.rs`, the CPUs' marker words (in the order first used).
#![cfg(tso)]

use std::collections::BTreeSet;
use std::panic::catch_unwind;
use std::sync::atomic::AtomicBool as CpuFlag;
use std::sync::atomic::Ordering as CpuFlagOrdering;
use std::sync::{Arc, Mutex};

use mm::Site;
use mm::addr::PhysAddr;
use mm::addr_space::AddressSpace;
use mm::cpumask::{CpuMask, MAX_CPUS};
use mm::hw::{PhysMem, RunningCpu, TableSyncHw};
use mm::irq::IrqsOn;
use mm::receipt::UnlinkMark;
use mm::stats::TlbStats;
use mm::table_free::{SyncForm, TableFreer, TableFreerState};
use mm::walk_marker::{WalkMarkers, WalkTag};
use tso::sync::atomic::Ordering::Relaxed;
use tso::sync::atomic::{AtomicBool, AtomicU64};
use tso::thread;

/// The entry while it points to the table.
const TABLE: u64 = 0x5000 | 1;
/// The table's word while the table is in use.
const LIVE: u64 = 0x1111;
/// The table's word once it is freed (and reused).
const POISON: u64 = 0xdead;
/// Most CPUs in a model.
const NCPU: usize = 3;

/// What the CPUs share.
struct Machine {
    markers: WalkMarkers,
    entry: AtomicU64,
    table: AtomicU64,
    /// Each CPU's interrupt flag as other CPUs can observe it (the IPI's ack; see the
    /// top of this file).
    irqs_on: [AtomicBool; NCPU],
    tag: WalkTag,
}

impl Machine {
    fn new(tag: WalkTag) -> Self {
        Self {
            markers: WalkMarkers::new(),
            entry: AtomicU64::new(TABLE),
            table: AtomicU64::new(LIVE),
            irqs_on: core::array::from_fn(|_| AtomicBool::new(true)),
            tag,
        }
    }
}

/// The running CPU, for `RunningCpu::with_irqs_off` (the only maker of the `IrqsOff`
/// proof `WalkMarkers::walk` takes).
struct Cpu<'a> {
    id: usize,
    m: &'a Machine,
    /// The interrupt flag as the CPU itself reads it (only its own thread does).
    irqs: CpuFlag,
}

impl<'a> Cpu<'a> {
    fn new(m: &'a Machine, id: usize) -> Self {
        Self {
            id,
            m,
            irqs: CpuFlag::new(true),
        }
    }
}

impl RunningCpu for Cpu<'_> {
    fn this_cpu(&self) -> usize {
        self.id
    }

    fn run_irqs_disabled(&self, f: &mut dyn FnMut()) {
        // cli / sti; what others see of the flag is a plain store (see the top).
        self.irqs.store(false, CpuFlagOrdering::Relaxed);
        self.m.irqs_on[self.id].store(false, Relaxed);
        f();
        self.m.irqs_on[self.id].store(true, Relaxed);
        self.irqs.store(true, CpuFlagOrdering::Relaxed);
    }

    fn irqs_enabled(&self) -> bool {
        self.irqs.load(CpuFlagOrdering::Relaxed)
    }
}

/// CPU `id` walks `walks` times with mm's `WalkMarkers::walk`; what each walk read
/// (the entry, and the table's word or 0).
fn walker(m: &Machine, id: usize, walks: usize) -> Vec<(u64, u64)> {
    let cpu = Cpu::new(m, id);
    let mut on = IrqsOn::check(&cpu, "walks");
    let mut read = Vec::new();
    for _ in 0..walks {
        cpu.with_irqs_off(&mut on, &mut |off| {
            let got = m.markers.walk(off, id, m.tag, || {
                let entry = m.entry.load(Relaxed);
                if entry != TABLE {
                    return (entry, 0);
                }
                let word = m.table.load(Relaxed);
                assert_ne!(
                    word, POISON,
                    "use after free: cpu{id} read the freed table (its entry still pointed \
                     to it)"
                );
                (entry, word)
            });
            read.push(got);
        });
    }
    read
}

/// How the freer waits before it frees the table.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// `scan`, then the sync IPI to each CPU it returns.
    Targeted,
    /// `wait_out`.
    Wait,
    /// `snapshot`, then `ended_since` for each CPU.
    Period,
    /// `TableFreer::table_sync_one` in the `targeted` form, without a receipt (the
    /// kernel's freer: `scan`, then [`TableSyncHw::sync_ipi`] to the CPUs walking).
    SyncOneTargeted,
    /// `TableFreer::table_sync_one` in the `wait` form (`wait_out`, relaxing through
    /// [`TableSyncHw::relax`]).
    SyncOneWait,
}

/// The freer's machine for `TableFreer` (cpu0): online CPUs, the sync IPI.
struct FreerHw<'a> {
    cpu: Cpu<'a>,
    ncpu: usize,
}

impl TableSyncHw for FreerHw<'_> {
    fn cpu(&self) -> &dyn RunningCpu {
        &self.cpu
    }

    fn flush_implies_ipi_broadcast(&self) -> bool {
        false
    }

    fn sync_ipi(&self, _on: &IrqsOn, targets: &CpuMask) {
        for c in targets.iter() {
            ipi(self.cpu.m, c);
        }
    }

    fn online(&self) -> CpuMask {
        CpuMask::first(self.ncpu)
    }

    fn quiescent_count(&self, _cpu: usize) -> u64 {
        0
    }

    fn relax(&self) {
        tso::hint::spin_loop();
    }
}

/// `TableFreer` needs memory for its batches; `table_sync_one` uses none.
struct NoMem;

impl PhysMem for NoMem {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        unreachable!("table_sync_one allocates nothing")
    }

    fn free_frame(&self, _frame: PhysAddr) {
        unreachable!("table_sync_one frees nothing")
    }

    fn word(&self, _frame: PhysAddr, _index: usize) -> &core::sync::atomic::AtomicU64 {
        unreachable!("table_sync_one reads no page table")
    }
}

/// The sync IPI to CPU `c`: taken once its interrupts are on.
fn ipi(m: &Machine, c: usize) {
    while !m.irqs_on[c].load(Relaxed) {
        tso::hint::spin_loop();
    }
}

/// The freer's side of the kernel's `TableFreer` (made outside the model: its settings
/// are outside values, the initial state of every execution).
struct Freeing {
    state: TableFreerState,
    stats: TlbStats,
    mm: AddressSpace,
}

/// CPU `me` unlinks the table, waits as `form` says, and frees it; the CPUs it found
/// walking (the scan's, `wait_out`'s, or the snapshot's marked ones; none through
/// `table_sync_one`, which does not say).
fn freer(m: &Machine, f: &Freeing, me: usize, ncpu: usize, form: Form) -> CpuMask {
    // F1: the unlink (a plain store: see the top of this file).
    m.entry.store(0, Relaxed);
    let mut others = CpuMask::first(ncpu);
    others.clear(me);
    let found = match form {
        Form::Targeted => {
            let marked = m.markers.scan(m.tag, &others);
            for c in marked.iter() {
                ipi(m, c);
            }
            marked
        }
        Form::Wait => m
            .markers
            .wait_out(m.tag, &others, &mut |_| tso::hint::spin_loop()),
        Form::Period => {
            let mut seen = [0; MAX_CPUS];
            m.markers.snapshot(&others, &mut seen);
            let mut open = CpuMask::new();
            for c in others.iter() {
                if !m.markers.ended_since(c, seen[c]) {
                    open.set(c);
                }
                while !m.markers.ended_since(c, seen[c]) {
                    tso::hint::spin_loop();
                }
            }
            open
        }
        Form::SyncOneTargeted | Form::SyncOneWait => {
            let hw = FreerHw {
                cpu: Cpu::new(m, me),
                ncpu,
            };
            let freer = TableFreer {
                state: &f.state,
                hw: &hw,
                mem: &NoMem,
                stats: &f.stats,
                walks: &m.markers,
            };
            let on = IrqsOn::check(&hw.cpu, "table_sync_one");
            freer.table_sync_one(&on, None, &f.mm, UnlinkMark::now(&f.mm));
            CpuMask::new()
        }
    };
    // The free: the frame is reused.
    m.table.store(POISON, Relaxed);
    found
}

/// What one execution saw: the CPUs the freer found walking, and what each walk read.
type Seen = (Vec<usize>, Vec<Vec<(u64, u64)>>);

/// Every execution of the freer (cpu0, waiting as `form` says) against `ncpu - 1`
/// walkers walking `walks` times each.
fn check(ncpu: usize, walks: usize, form: Form) -> tso::Explored {
    explore(ncpu, walks, form, false).0
}

/// [`check`], and what each execution saw; `every_order`: without the checker's
/// pruning of equivalent executions.
fn explore(ncpu: usize, walks: usize, form: Form, every_order: bool) -> (tso::Explored, BTreeSet<Seen>) {
    // Made outside the model: an address space (its atomics, the checker's under
    // `--cfg tso`, start each execution with the values they have here), and the
    // freer's state with the form set.
    let freeing = Arc::new(Freeing {
        state: TableFreerState::new(),
        stats: TlbStats::new(),
        mm: AddressSpace::new(PhysAddr::new(0x1000)),
    });
    freeing.state.set_form(match form {
        Form::SyncOneWait => SyncForm::Wait,
        _ => SyncForm::Targeted,
    });
    let tag = WalkTag::of(&freeing.mm);
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let record = seen.clone();
    let run = move || {
        let m = Arc::new(Machine::new(tag));
        let walkers: Vec<_> = (1..ncpu)
            .map(|c| {
                let m = m.clone();
                thread::spawn(move || walker(&m, c, walks))
            })
            .collect();
        let found = freer(&m, &freeing, 0, ncpu, form);
        let reads = walkers.into_iter().map(|w| w.join().unwrap()).collect();
        // Test bookkeeping outside the model (a std mutex): nothing in it is read by
        // a model thread.
        let mut r = record.lock().unwrap_or_else(|e| e.into_inner());
        r.insert((found.iter().collect(), reads));
    };
    let explored = if every_order {
        tso::model_every_order(run)
    } else {
        tso::model(run)
    };
    let got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (explored, got)
}

// ---- (b) mm's walker / freer protocol, as written -----------------------------------

#[test]
fn protocol_2cpus_targeted() {
    println!("protocol_2cpus_targeted: {}", check(2, 2, Form::Targeted));
}

#[test]
fn protocol_2cpus_wait() {
    println!("protocol_2cpus_wait: {}", check(2, 2, Form::Wait));
}

#[test]
fn protocol_2cpus_period() {
    println!("protocol_2cpus_period: {}", check(2, 2, Form::Period));
}

#[test]
fn protocol_2cpus_table_sync_one() {
    for form in [Form::SyncOneTargeted, Form::SyncOneWait] {
        println!("protocol_2cpus_table_sync_one {form:?}: {}", check(2, 2, form));
    }
}

#[test]
fn protocol_3cpus_table_sync_one() {
    for form in [Form::SyncOneTargeted, Form::SyncOneWait] {
        println!("protocol_3cpus_table_sync_one {form:?}: {}", check(3, 1, form));
    }
}

#[test]
fn protocol_3cpus_targeted() {
    println!("protocol_3cpus_targeted: {}", check(3, 1, Form::Targeted));
}

#[test]
fn protocol_3cpus_wait() {
    println!("protocol_3cpus_wait: {}", check(3, 1, Form::Wait));
}

#[test]
fn protocol_3cpus_period() {
    println!("protocol_3cpus_period: {}", check(3, 1, Form::Period));
}

/// Two walkers walking twice each, every way to wait: about 110 000 executions, some
/// 20 s of CPU, so not part of the regular run; run it with `RUSTFLAGS="--cfg tso"
/// cargo test -p mm --test walk_marker_tso -- --ignored` (in `target/tso`).
#[test]
#[ignore]
fn protocol_3cpus_two_walks_each() {
    for form in [Form::Targeted, Form::Wait, Form::Period] {
        println!("protocol_3cpus_two_walks_each {form:?}: {}", check(3, 2, form));
    }
}

/// The checker's pruning loses nothing here: on 2 CPUs, for each way to wait, the
/// pruned search sees exactly what the search of every order sees (which CPUs the
/// freer found walking, what each walk read). One walk (about 1 000 executions in
/// all); [`pruning_loses_nothing_on_the_protocol_two_walks`] does two.
#[test]
fn pruning_loses_nothing_on_the_protocol() {
    pruning_loses_nothing(1);
}

/// As above with two walks: about 110 000 executions, a minute; run it with
/// `RUSTFLAGS="--cfg tso" cargo test -p mm --test walk_marker_tso -- --ignored`
/// (in `target/tso`).
#[test]
#[ignore]
fn pruning_loses_nothing_on_the_protocol_two_walks() {
    pruning_loses_nothing(2);
}

fn pruning_loses_nothing(walks: usize) {
    // (Not the `table_sync_one` forms: their extra loads of settings nobody writes
    // multiply the orders of every step, 30 000 executions for one walk.)
    for form in [Form::Targeted, Form::Wait, Form::Period] {
        let (pruned, a) = explore(2, walks, form, false);
        let (every, b) = explore(2, walks, form, true);
        println!(
            "{form:?}: pruned {pruned}, every order {every}; {} outcomes",
            a.len()
        );
        assert_eq!(a, b, "{form:?}: pruned {pruned}, every order {every}");
        assert!(a.len() > 1, "{form:?}: {a:?}");
    }
}

/// On x86 a Release store and an Acquire load are plain `mov`s, as Relaxed ones are:
/// with the walk's end (W4), the scan's loads (F4) or the wait's loads made Relaxed the
/// code is the same instructions, and the check still passes. (Rust's model tells them
/// apart; the loom check holds mm to them.)
#[test]
fn release_and_acquire_are_plain_movs_on_x86() {
    for site in [Site::WalkEnd, Site::ScanLoad, Site::WaitLoad] {
        mm::weaken(Some((site, Relaxed)));
        let got = catch_unwind(|| [Form::Targeted, Form::Wait, Form::Period].map(|form| check(2, 2, form)));
        mm::weaken(None);
        match got {
            Ok(e) => println!("{site:?} Relaxed: {e:?}"),
            Err(p) => panic!(
                "{site:?} made Relaxed failed the TSO check: {:?}",
                p.downcast_ref::<String>()
            ),
        }
    }
}

// ---- (c) the fence-removed twins: the check must fail --------------------------------

/// Runs `check(ncpu, walks, form)` with `site`'s fence removed; it must fail with a
/// use after free, whose trace it prints.
fn twin(site: Site, ncpu: usize, walks: usize, form: Form) {
    mm::weaken(Some((site, Relaxed)));
    let msg = tso::must_fail(move || check(ncpu, walks, form));
    mm::weaken(None);
    println!("{site:?} removed, {ncpu} cpus, {form:?}:\n{msg}");
    assert!(
        msg.contains("use after free"),
        "{site:?} removed: failed, but not with the use after free: {msg}"
    );
}

#[test]
fn twin_no_walk_fence_targeted() {
    twin(Site::WalkFence, 2, 1, Form::Targeted);
}

#[test]
fn twin_no_walk_fence_wait() {
    twin(Site::WalkFence, 2, 1, Form::Wait);
}

#[test]
fn twin_no_walk_fence_period() {
    twin(Site::WalkFence, 2, 1, Form::Period);
}

#[test]
fn twin_no_scan_fence_targeted() {
    twin(Site::ScanFence, 2, 1, Form::Targeted);
}

#[test]
fn twin_no_scan_fence_wait() {
    twin(Site::ScanFence, 2, 1, Form::Wait);
}

#[test]
fn twin_no_scan_fence_period() {
    twin(Site::ScanFence, 2, 1, Form::Period);
}

#[test]
fn twin_no_walk_fence_table_sync_one() {
    twin(Site::WalkFence, 2, 1, Form::SyncOneTargeted);
    twin(Site::WalkFence, 2, 1, Form::SyncOneWait);
}

#[test]
fn twin_no_scan_fence_table_sync_one() {
    twin(Site::ScanFence, 2, 1, Form::SyncOneTargeted);
    twin(Site::ScanFence, 2, 1, Form::SyncOneWait);
}

#[test]
fn twin_no_walk_fence_3cpus() {
    twin(Site::WalkFence, 3, 1, Form::Targeted);
}

#[test]
fn twin_no_scan_fence_3cpus() {
    twin(Site::ScanFence, 3, 1, Form::Wait);
}
