//! Exhaustive (loom) check of the switch_mm / flush / lazy-TLB / release protocol.
//!
//! # What is modelled
//!
//! A machine of 2 or 3 CPUs, each a `loom::thread`, and three address spaces: the
//! kernel's (`KERNEL`, never flushed or freed), `MM1` and `MM2`. A root is named by the
//! id of its address space.
//!
//! Per address space (`mm/src/addr_space.rs`, `mm/src/cpumask.rs`): the CPU mask (one
//! word of `AtomicCpuMask`: `set` = `fetch_or`, `clear` = `fetch_and`, `load` and
//! `contains` = load, all SeqCst), `tlb_gen` (starts at 1, bumped by `fetch_add`,
//! read SeqCst), one PTE whose value is a version number, bumped when the mapping
//! changes, and ghost state: "root freed", and the PTE version and generation of the
//! newest flush that has returned.
//!
//! Per CPU (`mm/src/tlb_state.rs`): the lazy flag (a shared SeqCst atomic: flushers and
//! `shoot_lazy_holders` read it), CR3 (stored SeqCst on every CR3 load; only the
//! releaser's oracle reads another CPU's), the IPI mailbox, and, in the CPU's thread,
//! `loaded`, `generation`, its own view of `lazy` and CR3, and a software TLB: the
//! version of the PTE this CPU cached from the root in CR3 (`None`: nothing cached).
//! Loading CR3 empties the TLB (one TLB context per CPU, no PCID; `sim.rs` `load_root`);
//! a page walk from CR3 with an empty TLB caches what it reads. `loaded` and `generation`
//! are SeqCst atomics in `tlb_state.rs`, but only their own CPU ever reads them (as it
//! does its own lazy flag), so keeping them in the thread is equivalent (a SeqCst load of
//! a location only this thread writes returns its last store, and synchronises with
//! nothing) and saves loom scheduling points.
//!
//! The steps mirror the code statement by statement; each carries a `flush.rs:N`,
//! `release.rs:N`, `unmap.rs:N` or `gather.rs:N` comment (line numbers of the working tree this was
//! written against):
//! - `Mmu::flush_tlb_mm_range` (flush.rs:80): bump `tlb_gen`; read the mask; drop lazy
//!   CPUs unless tables were freed; interrupt the targets and wait; flush locally.
//! - `Mmu::flush_tlb_func` (flush.rs:138), the handler, run with interrupts off.
//! - `Mmu::switch_mm` (flush.rs:181): the same-mm path (back from lazy) and the other-mm
//!   path in its current order: clear lazy; set the bit in `next`'s mask; read `next`'s
//!   `tlb_gen`; load CR3; record loaded/generation; then clear the bit in `prev`'s mask.
//! - `Mmu::shoot_lazy_holders` (flush.rs:222) and `Mmu::enter_lazy_tlb` (flush.rs:252).
//! - `release` (release.rs:31): `teardown` (the mapping cleared by a SeqCst swap,
//!   unmap.rs:69, then the fullmm gather's one freed-tables flush, gather.rs:308), then
//!   "shoot lazy holders; if the mask is not empty, wait" until it is, then free the root.
//!
//! An IPI (a flush or a cross call) is modelled as: the sender writes its call slot on
//! the target, sets its bit in the target's `pending` word and waits until the target
//! has cleared it, taking its own interrupts meanwhile (`arch/src/ipi.rs` `call_on_many`
//! serves its own queue between rounds, as Linux's `smp_call_function_many` waits with
//! interrupts on). A target takes interrupts only at its interrupt points: between
//! the steps of its script, and while it waits (for an IPI acknowledgement, or idle
//! after its script until every script is done). It runs the handler with interrupts
//! off, then acknowledges. `switch_mm` and the handlers run with interrupts off, so no
//! handler runs in the middle of them.
//!
//! A waiting CPU parks (`hlt`) instead of spinning: with `yield_now` spins, two waiting
//! CPUs keep each other runnable and loom's search never ends ("exceeded maximum number
//! of branches"). It marks itself parked, checks again what it waits for (SeqCst loads),
//! then parks; whoever changes that (an IPI, an acknowledgement, the last script ending;
//! each a SeqCst RMW) looks at the mark afterwards and unparks it. The mark is a plain
//! `std` flag, not a loom atomic: loom runs one thread at a time, so it is exact, and it
//! adds no scheduling points. (An unpark also hands the waker's view to the parked
//! thread, which the waiter's next SeqCst read of what changed would acquire anyway.)
//! The releaser's `wait()` (release.rs:38) does spin: it yields, as the caller's `wait`
//! does; only one CPU ever spins.
//!
//! # Properties (asserted in every explored interleaving)
//!
//! - (a) No CPU runs behind a completed flush. A flusher changes the PTE, flushes, and
//!   once `flush_tlb_mm_range` has returned publishes the PTE version and the generation
//!   it made complete. Whenever a CPU uses the mapping while running the address space
//!   non-lazily (in its script, after switching in or back from lazy, and once more when
//!   every script is done), the version in its TLB must not be older than the published
//!   one. At the end, a CPU running a user address space non-lazily must also have
//!   recorded a generation no lower than the published one.
//! - (b) No root is freed while loaded. When the releaser frees a root (the mask is
//!   empty), no CPU's CR3 may hold it (an oracle read of every CR3). Every CR3-dependent
//!   action (a walk: each TLB fill, and the last walk from the old root right before each
//!   CR3 load) asserts that the root in CR3 is not freed, and at the end no CPU's CR3 may
//!   hold a freed root.
//!
//! Ghost reads are Relaxed (loom then explores every value the load may return, the
//! newest included, and the checker adds no synchronisation), except the releaser's
//! oracle read of CR3, which is SeqCst (it must see the newest CR3; it only adds
//! synchronisation to the releaser right before it frees).
//!
//! # A loom caveat
//!
//! loom writes an atomic's initial value as a Release store, and its SeqCst loads may
//! still return that value after newer SeqCst stores by other threads, which breaks the
//! store-buffering argument the protocol rests on (rule 1 of flush.rs) although the code
//! is correct. So every shared atomic's initial value is written again with a SeqCst
//! store before the CPU threads start ([`sc_u64`]).
//!
//! # Weakened twins
//!
//! [`Config`] switches one piece of the protocol to a broken variant; each twin is a
//! `#[should_panic]` test of the same model: `prev`'s mask bit cleared before the CR3
//! load (the old order: the releaser frees a root still in CR3); the generation bumped
//! after the mask and lazy reads; Relaxed instead of SeqCst for the switcher's `tlb_gen`
//! read, the flusher's lazy-flag reads or the flusher's mask read (a CPU runs behind a
//! completed flush).
//!
//! # Not modelled
//!
//! Statistics (`TlbStats`), receipts, the `Breakage` test knobs, PCID/ASIDs (gatherOS has
//! none), backends other than native IPIs (INVLPGB), more than one page (partial and full
//! flushes both flush the one modelled page; the partial/full choice and the generation
//! it records are modelled), intermediate page tables and their freeing (`table_free.rs`,
//! grace periods), speculative walks other than the last one before a CR3 load (a lazy
//! CPU keeps its oldest entries, which is the worst case for the catch-up), the page-table lock
//! (writers of the one PTE are serialised by their RMW), GUP-fast walkers, and any
//! ordering of the hardware page walker beyond "a walk is a Relaxed load of the PTE"
//! (the protocol must supply the ordering through `tlb_gen` and the IPIs).
//!
//! # Bounds
//!
//! F1 (back from lazy vs a flush) and R1 (switching away vs the releaser), and their
//! twins, are explored exhaustively: every interleaving (7 400 and 15 700 executions).
//! The others are bounded by preemptions (`Builder::preemption_bound`: every
//! interleaving with at most that many preemptions; switching where a thread blocks,
//! yields or ends is free): `PB2` = 4 for the other 2-CPU models, `PB3` = 2 for the
//! 3-CPU models, `PB5` = 1 for the 3-CPU model with two flushers (F5). One more
//! preemption multiplies a model's cost by 2 to 40. The whole file takes about 30 s of
//! CPU time in a debug build (tests run in parallel).
//!
//! # Running it
//!
//! Only with `--cfg loom` (see `mm/Cargo.toml` for why): `cargo test` runs it through
//! `tests/tests/loom.rs`, which is `RUSTFLAGS="--cfg loom" cargo test -p mm --test
//! tlb_protocol_loom` in `target/loom`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use loom::thread;
use std::sync::atomic::Ordering::{self, Relaxed, SeqCst};

/// The kernel's address space (`init_mm`): lazy CPUs fall back to it.
const KERNEL: usize = 0;
/// A user address space (the one flushed or released).
const MM1: usize = 1;
/// Another user address space.
const MM2: usize = 2;
const NR_MM: usize = 3;
/// Most CPUs in a model.
const MAX_CPUS: usize = 3;
/// Nothing loaded (`loaded().is_null()`).
const NONE: usize = usize::MAX;
/// No preemption bound: every interleaving (F1 and R1, and their twins).
const EXHAUSTIVE: Option<usize> = None;
/// Preemption bound of the other 2-CPU models (unbounded, F2 takes 18 000 executions,
/// and F4, with two flushers, did not finish in nine minutes).
const PB2: Option<usize> = Some(4);
/// Preemption bound of the 3-CPU models.
const PB3: Option<usize> = Some(2);
/// Preemption bound of the 3-CPU model with two flushers (F5; at bound 2 it takes
/// about 50 000 executions, 40 s).
const PB5: Option<usize> = Some(1);

/// Which version of the protocol the model runs; [`CORRECT`] is the code's.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// `switch_mm` clears `prev`'s mask bit right after setting `next`'s, before reading
    /// the generation and loading CR3 (the order before the fix).
    clear_prev_before_cr3: bool,
    /// `flush_tlb_mm_range` reads the mask and lazy flags before bumping `tlb_gen`.
    bump_after_mask_read: bool,
    /// Ordering of `switch_mm`'s reads of `next.generation()` (SeqCst in the code).
    switch_gen_load: Ordering,
    /// Ordering of the flusher's `is_lazy()` reads (SeqCst in the code).
    flusher_lazy_load: Ordering,
    /// Ordering of the flusher's `cpumask.load()` (SeqCst in the code).
    flusher_mask_load: Ordering,
}

const CORRECT: Config = Config {
    clear_prev_before_cr3: false,
    bump_after_mask_read: false,
    switch_gen_load: SeqCst,
    flusher_lazy_load: SeqCst,
    flusher_mask_load: SeqCst,
};

/// One address space (`AddressSpace`), plus its ghost state.
struct Mm {
    /// `AddressSpace::cpumask` (one word of `AtomicCpuMask`).
    cpumask: AtomicU64,
    /// `AddressSpace::tlb_gen`, starts at 1.
    tlb_gen: AtomicU64,
    /// The one modelled PTE; its value is the version of the mapping.
    pte: AtomicU64,
    /// Ghost: the root has been freed.
    root_freed: AtomicBool,
    /// Ghost: newest PTE version whose flush has returned.
    completed_version: AtomicU64,
    /// Ghost: newest generation whose flush has returned.
    completed_gen: AtomicU64,
}

/// The shared part of one CPU's state.
struct PerCpu {
    /// `CpuTlbState::lazy`.
    lazy: AtomicBool,
    /// CR3 (the oracle reads it; the CPU itself uses its own copy).
    cr3: AtomicUsize,
    /// IPI bits, one per sender.
    pending: AtomicU64,
    /// Call slots, one per sender (an encoded [`Call`]).
    call: [AtomicU64; MAX_CPUS],
}

/// How a CPU starts: its loaded address space (also in CR3 and in that mask, TLB warm
/// with PTE version 1, at generation 1) and whether it holds it lazily.
#[derive(Clone, Copy)]
struct Start {
    mm: usize,
    lazy: bool,
}

struct Machine {
    cfg: Config,
    ncpu: usize,
    mms: [Mm; NR_MM],
    cpus: Vec<PerCpu>,
    /// CPU threads that have finished their script (the rest stay idle until all have).
    finished: AtomicUsize,
    /// The loom thread of each CPU, registered when it starts (for `unpark`).
    threads: std::sync::Mutex<Vec<Option<thread::Thread>>>,
    /// Which CPUs wait in [`Cpu::wait_until`] (not model state: see the module docs).
    parked: std::sync::Mutex<Vec<bool>>,
}

impl Machine {
    fn new(cfg: Config, start: &[Start]) -> Self {
        assert!(start.len() <= MAX_CPUS);
        let mask_of = |mm: usize| {
            (0..start.len())
                .filter(|&c| start[c].mm == mm)
                .fold(0, |m, c| m | bit(c))
        };
        Machine {
            cfg,
            ncpu: start.len(),
            mms: core::array::from_fn(|mm| Mm {
                cpumask: sc_u64(mask_of(mm)),
                tlb_gen: sc_u64(1),
                pte: sc_u64(1),
                root_freed: sc_bool(false),
                completed_version: sc_u64(1),
                completed_gen: sc_u64(1),
            }),
            cpus: start
                .iter()
                .map(|s| PerCpu {
                    lazy: sc_bool(s.lazy),
                    cr3: sc_usize(s.mm),
                    pending: sc_u64(0),
                    call: core::array::from_fn(|_| sc_u64(0)),
                })
                .collect(),
            finished: sc_usize(0),
            threads: std::sync::Mutex::new(vec![None; start.len()]),
            parked: std::sync::Mutex::new(vec![false; start.len()]),
        }
    }
}

/// A loom atomic whose initial value is written again with a SeqCst store (see "A loom
/// caveat" above).
fn sc_u64(v: u64) -> AtomicU64 {
    let a = AtomicU64::new(v);
    a.store(v, SeqCst);
    a
}

fn sc_usize(v: usize) -> AtomicUsize {
    let a = AtomicUsize::new(v);
    a.store(v, SeqCst);
    a
}

fn sc_bool(v: bool) -> AtomicBool {
    let a = AtomicBool::new(v);
    a.store(v, SeqCst);
    a
}

fn bit(cpu: usize) -> u64 {
    1 << cpu
}

fn cpus_in(mask: u64, ncpu: usize) -> impl Iterator<Item = usize> + Clone {
    (0..ncpu).filter(move |&c| mask & bit(c) != 0)
}

/// One flush request (`FlushInfo`); the range is either the modelled page or everything.
#[derive(Clone, Copy, Debug)]
struct FlushInfo {
    mm: usize,
    /// `end == FLUSH_ALL`.
    full: bool,
    freed_tables: bool,
    new_gen: u64,
    initiator: usize,
}

/// What an IPI asks its target to run.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// `flush_tlb_func(info)`.
    Flush(FlushInfo),
    /// The cross call of `shoot_lazy_holders` for this address space.
    LeaveLazy(usize),
}

impl Call {
    fn encode(self) -> u64 {
        match self {
            Call::Flush(i) => {
                1 | (i.mm as u64) << 2
                    | (i.full as u64) << 4
                    | (i.freed_tables as u64) << 5
                    | (i.initiator as u64) << 6
                    | i.new_gen << 8
            }
            Call::LeaveLazy(mm) => 2 | (mm as u64) << 2,
        }
    }

    fn decode(w: u64) -> Call {
        let mm = (w >> 2 & 3) as usize;
        match w & 3 {
            1 => Call::Flush(FlushInfo {
                mm,
                full: w >> 4 & 1 != 0,
                freed_tables: w >> 5 & 1 != 0,
                initiator: (w >> 6 & 3) as usize,
                new_gen: w >> 8,
            }),
            2 => Call::LeaveLazy(mm),
            _ => unreachable!("empty call slot {w:#x}"),
        }
    }
}

/// What a CPU thread hands back at its end, for the final checks.
struct Final {
    loaded: usize,
    lazy: bool,
    generation: u64,
    cr3: usize,
}

/// The running CPU: its thread-local state, and the machine.
struct Cpu<'m> {
    m: &'m Machine,
    id: usize,
    /// `CpuTlbState::loaded` (only this CPU reads it).
    loaded: usize,
    /// `CpuTlbState::generation` (only this CPU reads it).
    generation: u64,
    /// This CPU's view of its own lazy flag (the last value it stored in `PerCpu::lazy`).
    lazy: bool,
    /// This CPU's CR3 (the last value it stored in `PerCpu::cr3`).
    cr3: usize,
    /// The software TLB: the PTE version cached from the root in CR3.
    tlb: Option<u64>,
    irqs_off: bool,
}

impl<'m> Cpu<'m> {
    fn new(m: &'m Machine, id: usize, start: Start) -> Self {
        m.threads.lock().unwrap()[id] = Some(thread::current());
        Cpu {
            m,
            id,
            loaded: start.mm,
            generation: 1,
            lazy: start.lazy,
            cr3: start.mm,
            tlb: Some(1),
            irqs_off: false,
        }
    }

    fn shared(&self) -> &'m PerCpu {
        &self.m.cpus[self.id]
    }

    fn mm(&self, mm: usize) -> &'m Mm {
        &self.m.mms[mm]
    }

    /// `LocalTlb::with_irqs_off`.
    fn with_irqs_off(&mut self, f: impl FnOnce(&mut Self)) {
        assert!(!self.irqs_off, "interrupts already off");
        self.irqs_off = true;
        f(self);
        self.irqs_off = false;
    }

    /// `CpuTlbState::set_lazy` (tlb_state.rs:54, SeqCst store).
    fn set_lazy(&mut self, lazy: bool) {
        self.shared().lazy.store(lazy, SeqCst);
        self.lazy = lazy;
    }

    // ---- hardware ----------------------------------------------------------------

    /// `LocalTlb::load_root`: write CR3 (serialising), which empties the TLB (no PCID).
    fn load_root(&mut self, root: usize) {
        self.shared().cr3.store(root, SeqCst);
        self.cr3 = root;
        self.tlb = None;
    }

    /// A page walk from CR3 (a TLB fill, or the last speculative walk before a CR3
    /// load): it reads the root, so the root must not be freed (property b). Caches
    /// what it reads.
    fn walk(&mut self) {
        if self.cr3 == NONE {
            return;
        }
        assert!(
            !self.mm(self.cr3).root_freed.load(Relaxed),
            "property (b): cpu {} walks from root {}, which was freed",
            self.id,
            self.cr3
        );
        if self.tlb.is_none() {
            self.tlb = Some(self.mm(self.cr3).pte.load(Relaxed));
        }
    }

    /// The running task uses the mapping of `mm`, which it runs non-lazily (property a).
    fn use_mapping(&mut self, mm: usize) {
        assert!(
            self.loaded == mm && !self.lazy,
            "script bug: cpu {} does not run mm {mm}",
            self.id
        );
        self.walk();
        let cached = self.tlb.expect("a walk fills the TLB");
        let done = self.mm(mm).completed_version.load(Relaxed);
        assert!(
            cached >= done,
            "property (a): cpu {} uses PTE version {cached} of mm {mm} after a flush for version \
             {done} returned",
            self.id
        );
    }

    /// The mapping of `mm` changes: an unmap's SeqCst swap, `slot.clear` (unmap.rs:69);
    /// returns the new version.
    fn change_pte(&mut self, mm: usize) -> u64 {
        self.mm(mm).pte.fetch_add(1, SeqCst) + 1
    }

    /// Ghost: a flush for `version` / `generation` of `mm` has returned.
    fn publish(&self, mm: usize, version: u64, generation: u64) {
        self.mm(mm).completed_version.fetch_max(version, Relaxed);
        self.mm(mm).completed_gen.fetch_max(generation, Relaxed);
    }

    // ---- interrupts --------------------------------------------------------------

    /// An interrupt point: run every pending call (interrupts off), then acknowledge it.
    fn irq_point(&mut self) {
        assert!(!self.irqs_off, "interrupt point with interrupts off");
        let bits = self.shared().pending.load(SeqCst);
        for sender in cpus_in(bits, self.m.ncpu) {
            let call = Call::decode(self.shared().call[sender].load(SeqCst));
            self.with_irqs_off(|cpu| match call {
                Call::Flush(info) => cpu.flush_tlb_func(&info),
                Call::LeaveLazy(mm) => cpu.leave_lazy(mm),
            });
            self.shared().pending.fetch_and(!bit(sender), SeqCst);
            self.wake(sender);
        }
    }

    /// Waits (interrupts on, taking them) until `done` holds: marks itself parked, checks
    /// again (SeqCst loads), parks. A waker changes the condition (a SeqCst RMW), then
    /// looks at the mark: either the check sees the change, or the change came after the
    /// check, hence after the mark, and the waker unparks.
    fn wait_until(&mut self, done: impl Fn(&Self) -> bool) {
        loop {
            self.irq_point();
            if done(self) {
                return;
            }
            self.m.parked.lock().unwrap()[self.id] = true;
            if self.shared().pending.load(SeqCst) == 0 && !done(self) {
                thread::park();
            }
            self.m.parked.lock().unwrap()[self.id] = false;
        }
    }

    /// Unparks `cpu` if it waits (an interrupt, or what it waits for, wakes it).
    fn wake(&self, cpu: usize) {
        if self.m.parked.lock().unwrap()[cpu] {
            let t = self.m.threads.lock().unwrap()[cpu].clone();
            t.expect("a waiting CPU has registered").unpark();
        }
    }

    /// `FlushBackend::flush_others` / `CrossCall::call_others` for native IPIs
    /// (`arch/src/ipi.rs` `call_on_many`): post the call to every target, then wait
    /// for each, serving our own interrupts meanwhile.
    fn call_others(&mut self, targets: u64, call: Call) {
        let me = bit(self.id);
        let targets = cpus_in(targets, self.m.ncpu);
        for t in targets.clone() {
            self.m.cpus[t].call[self.id].store(call.encode(), SeqCst);
            self.m.cpus[t].pending.fetch_or(me, SeqCst);
            self.wake(t);
        }
        for t in targets {
            self.wait_until(|cpu| cpu.m.cpus[t].pending.load(SeqCst) & me == 0);
        }
    }

    /// The script is done: stay idle, taking interrupts, until every script is done.
    fn finish(mut self) -> Final {
        if self.m.finished.fetch_add(1, SeqCst) + 1 == self.m.ncpu {
            (0..self.m.ncpu)
                .filter(|&c| c != self.id)
                .for_each(|c| self.wake(c));
        }
        self.wait_until(|cpu| cpu.m.finished.load(SeqCst) == cpu.m.ncpu);
        // Every flush has returned: a task still running a user address space uses it.
        if self.loaded != KERNEL && !self.lazy {
            self.use_mapping(self.loaded);
        }
        Final {
            loaded: self.loaded,
            lazy: self.lazy,
            generation: self.generation,
            cr3: self.cr3,
        }
    }

    // ---- the protocol (flush.rs) -------------------------------------------------

    /// `Mmu::flush_tlb_mm_range` (flush.rs:80); returns the generation it established.
    fn flush_tlb_mm_range(&mut self, mm: usize, full: bool, freed_tables: bool) -> u64 {
        let cfg = self.m.cfg;
        let a = self.mm(mm);
        let ncpu = self.m.ncpu;
        // flush.rs:89-93: the range is the one page, or FLUSH_ALL (`full`).
        let mut new_gen = 0;
        if !cfg.bump_after_mask_read {
            // flush.rs:94: `mm.tlb_gen.fetch_add(1, SeqCst) + 1`.
            new_gen = a.tlb_gen.fetch_add(1, SeqCst) + 1;
        }
        // flush.rs:104-105: `others = mm.cpumask.load(); others.clear(cpu)`.
        let others = a.cpumask.load(cfg.flusher_mask_load) & !bit(self.id);
        let mut targets = 0;
        // flush.rs:107: `if !others.is_empty()`.
        if others != 0 {
            // flush.rs:108-115: freed tables reach every CPU in the mask; otherwise lazy
            // CPUs are skipped (`!self.states.cpu(c).is_lazy()`, in CPU order).
            targets = if freed_tables {
                others
            } else {
                cpus_in(others, ncpu)
                    .filter(|&c| !self.m.cpus[c].lazy.load(cfg.flusher_lazy_load))
                    .fold(0, |m, c| m | bit(c))
            };
        }
        if cfg.bump_after_mask_read {
            // Weakened twin: the bump comes after the mask and lazy flags were read.
            new_gen = a.tlb_gen.fetch_add(1, SeqCst) + 1;
        }
        let info = FlushInfo {
            mm,
            full,
            freed_tables,
            new_gen,
            initiator: self.id,
        };
        // flush.rs:116-122: `if !targets.is_empty() { backend.flush_others(..) }`, waits.
        if targets != 0 {
            self.call_others(targets, Call::Flush(info));
        }
        // flush.rs:124-125: `if has_loaded(mm) { with_irqs_off(flush_tlb_func) }`.
        if self.loaded == mm {
            self.with_irqs_off(|cpu| cpu.flush_tlb_func(&info));
        }
        new_gen
    }

    /// `Mmu::flush_tlb_func` (flush.rs:138), interrupts off.
    fn flush_tlb_func(&mut self, info: &FlushInfo) {
        // flush.rs:140-143: `assert!(!irqs_enabled())`.
        assert!(self.irqs_off, "flush_tlb_func with interrupts on");
        // flush.rs:146-148: `if !st.has_loaded(info.mm) { return }`.
        if self.loaded != info.mm {
            return;
        }
        // flush.rs:149-153: `if st.is_lazy() { switch_mm(self.kernel); return }`.
        if self.lazy {
            self.switch_mm(KERNEL);
            return;
        }
        // flush.rs:155: `st.generation()`.
        let local_gen = self.generation;
        // flush.rs:156: `info.mm.generation()` (SeqCst).
        let mm_gen = self.mm(info.mm).tlb_gen.load(SeqCst);
        // flush.rs:157-159: an earlier (full) flush covered this one.
        if local_gen >= mm_gen || info.new_gen <= local_gen {
            return;
        }
        // flush.rs:160: partial only if exactly one behind and the newest request.
        let partial = !info.full && info.new_gen == local_gen + 1 && info.new_gen == mm_gen;
        // flush.rs:161-169: `flush_page` over the range (it holds the modelled page) or
        // `flush_all`: either way the modelled entry goes.
        self.tlb = None;
        // flush.rs:170: `st.flushed_to(if partial { new_gen } else { mm_gen })`, a
        // `fetch_max` (tlb_state.rs:59).
        self.generation = self.generation.max(if partial { info.new_gen } else { mm_gen });
    }

    /// `Mmu::switch_mm` (flush.rs:181), interrupts off.
    fn switch_mm(&mut self, next: usize) {
        assert!(self.irqs_off, "switch_mm with interrupts on");
        let cfg = self.m.cfg;
        let n = self.mm(next);
        let me = bit(self.id);
        // flush.rs:184: `let prev = st.loaded()`.
        let prev = self.loaded;
        // flush.rs:185: the same address space (back from lazy?).
        if prev == next {
            // flush.rs:186: `if st.is_lazy()`.
            if self.lazy {
                // flush.rs:187: `st.set_lazy(false)`.
                self.set_lazy(false);
                // flush.rs:188-190: `if !next.cpumask.contains(cpu) { next.cpumask.set(cpu) }`.
                if n.cpumask.load(SeqCst) & me == 0 {
                    n.cpumask.fetch_or(me, SeqCst);
                }
                // flush.rs:192: `let g = next.generation()`.
                let g = n.tlb_gen.load(cfg.switch_gen_load);
                // flush.rs:193-197: catch up: `flush_all(); st.flushed_to(g)`.
                if self.generation < g {
                    self.tlb = None;
                    self.generation = self.generation.max(g);
                }
            }
            return;
        }
        // flush.rs:201: `st.set_lazy(false)`.
        self.set_lazy(false);
        // flush.rs:204: `next.cpumask.set(cpu)`.
        n.cpumask.fetch_or(me, SeqCst);
        if cfg.clear_prev_before_cr3 && prev != NONE {
            // Weakened twin (the old order): leave `prev` before CR3 stops holding it.
            self.mm(prev).cpumask.fetch_and(!me, SeqCst);
        }
        // flush.rs:205: `let g = next.generation()`.
        let g = n.tlb_gen.load(cfg.switch_gen_load);
        // Until the CR3 write the CPU may still walk from the old root.
        self.walk();
        // flush.rs:206: `self.tlb.load_root(next.root())`.
        self.load_root(next);
        // flush.rs:207: `st.set_loaded(next, g)` (tlb_state.rs:48).
        self.generation = g;
        self.loaded = next;
        // flush.rs:212-216: `(*prev).cpumask.clear(cpu)`, only now.
        if !cfg.clear_prev_before_cr3 && prev != NONE {
            self.mm(prev).cpumask.fetch_and(!me, SeqCst);
        }
    }

    /// `Mmu::enter_lazy_tlb` (flush.rs:252).
    fn enter_lazy_tlb(&mut self) {
        // flush.rs:254-255: not the kernel's, not null: `st.set_lazy(true)`.
        if self.loaded != KERNEL && self.loaded != NONE {
            self.set_lazy(true);
        }
    }

    /// The cross call of `shoot_lazy_holders` (flush.rs:233-239), interrupts off.
    fn leave_lazy(&mut self, mm: usize) {
        // flush.rs:234-236: `if st.has_loaded(mm) && st.is_lazy() { switch_mm(kernel) }`.
        if self.loaded == mm && self.lazy {
            self.switch_mm(KERNEL);
        }
    }

    /// `Mmu::shoot_lazy_holders` (flush.rs:222); returns the mask it reads last.
    fn shoot_lazy_holders(&mut self, mm: usize) -> u64 {
        let a = self.mm(mm);
        let ncpu = self.m.ncpu;
        // flush.rs:224-229: the other CPUs in the mask whose lazy flag is set.
        let mask = a.cpumask.load(SeqCst);
        let lazy = cpus_in(mask, ncpu)
            .filter(|&c| c != self.id && self.m.cpus[c].lazy.load(SeqCst))
            .fold(0, |m, c| m | bit(c));
        // flush.rs:230-240: `calls.call_others(&lazy, ..)`, waits.
        if lazy != 0 {
            self.call_others(lazy, Call::LeaveLazy(mm));
        }
        // flush.rs:241-246: this CPU, if lazy on `mm`, leaves too.
        if self.loaded == mm && self.lazy {
            self.with_irqs_off(|cpu| cpu.switch_mm(KERNEL));
        }
        // flush.rs:247: `mm.cpumask.load()`.
        a.cpumask.load(SeqCst)
    }

    // ---- release (release.rs) ----------------------------------------------------

    /// `release` (release.rs:31).
    fn release(&mut self, mm: usize) {
        // release.rs:32: `teardown` (unmap.rs:89): the mapping is cleared
        // (unmap.rs:69), then the fullmm gather flushes everything with freed tables
        // (gather.rs:308).
        let version = self.change_pte(mm);
        let generation = self.flush_tlb_mm_range(mm, true, true);
        self.publish(mm, version, generation);
        // release.rs:33-41: shoot lazy holders until the mask is empty.
        while self.shoot_lazy_holders(mm) != 0 {
            // release.rs:38: `wait()`: the caller yields (interrupts on).
            self.irq_point();
            thread::yield_now();
        }
        // Oracle: the mask is empty, so no CPU may have the root in CR3 now.
        for c in 0..self.m.ncpu {
            let cr3 = self.m.cpus[c].cr3.load(SeqCst);
            assert!(
                cr3 != mm,
                "property (b): releaser on cpu {} frees root {mm} while cpu {c} has it in CR3",
                self.id
            );
        }
        // release.rs:42: `ctx.mem.free_frame(mm.root())`.
        self.mm(mm).root_freed.store(true, Relaxed);
    }

    // ---- script steps ------------------------------------------------------------

    /// The running task of `mm` changes its mapping, flushes, and uses it again.
    fn change_and_flush(&mut self, mm: usize, freed_tables: bool) {
        let version = self.change_pte(mm);
        self.irq_point();
        let generation = self.flush_tlb_mm_range(mm, false, freed_tables);
        self.publish(mm, version, generation);
        self.irq_point();
        self.use_mapping(mm);
    }

    /// The scheduler switches to a task of `next` (`switch_mm_irqs_off`).
    fn switch_to(&mut self, next: usize) {
        self.with_irqs_off(|cpu| cpu.switch_mm(next));
    }
}

type Script = fn(&mut Cpu);

/// Runs one model: CPU `i` starts as `start[i]`, runs `scripts[i]`, then idles.
fn run(cfg: Config, preemption_bound: Option<usize>, start: &'static [Start], scripts: &'static [Script]) {
    assert_eq!(start.len(), scripts.len());
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemption_bound;
    builder.check(move || {
        let m = Arc::new(Machine::new(cfg, start));
        let handles: Vec<_> = (0..start.len())
            .map(|id| {
                let m = m.clone();
                thread::spawn(move || {
                    let mut cpu = Cpu::new(&m, id, start[id]);
                    scripts[id](&mut cpu);
                    cpu.finish()
                })
            })
            .collect();
        let finals: Vec<Final> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // The end: no CR3 holds a freed root (b); nobody runs behind (a).
        for (c, f) in finals.iter().enumerate() {
            assert_eq!(m.cpus[c].cr3.load(SeqCst), f.cr3);
            assert!(
                !m.mms[f.cr3].root_freed.load(SeqCst),
                "property (b): cpu {c} ends with freed root {} in CR3",
                f.cr3
            );
            assert_eq!(f.loaded, f.cr3, "cpu {c}: the loaded address space is not in CR3");
            if f.loaded != KERNEL && !f.lazy {
                let done = m.mms[f.loaded].completed_gen.load(SeqCst);
                assert!(
                    f.generation >= done,
                    "property (a): cpu {c} ends in mm {} at generation {} after a flush to {done} \
                     returned",
                    f.loaded,
                    f.generation
                );
            }
        }
    });
}

const fn running(mm: usize) -> Start {
    Start { mm, lazy: false }
}

const fn lazy(mm: usize) -> Start {
    Start { mm, lazy: true }
}

// ---- scripts -----------------------------------------------------------------------

/// A lazy CPU (a kernel thread on MM1) goes back to a task of MM1 and uses it.
fn back_from_lazy(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.switch_to(MM1);
    cpu.irq_point();
    cpu.use_mapping(MM1);
}

/// A task of MM1 changes a mapping and flushes it (no tables freed).
fn flusher(cpu: &mut Cpu) {
    cpu.change_and_flush(MM1, false);
}

/// The same, with page tables freed (lazy CPUs are interrupted and leave).
fn flusher_freed(cpu: &mut Cpu) {
    cpu.change_and_flush(MM1, true);
}

/// A task of MM2 is followed by a task of MM1, which uses it.
fn switch_in(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.switch_to(MM1);
    cpu.irq_point();
    cpu.use_mapping(MM1);
}

/// A task of MM1 keeps using it.
fn user(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.use_mapping(MM1);
    cpu.irq_point();
    cpu.use_mapping(MM1);
}

/// The last task of MM1 on this CPU ends; the next task is of MM2.
fn leave_for_mm2(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.use_mapping(MM1);
    cpu.switch_to(MM2);
    cpu.irq_point();
    cpu.use_mapping(MM2);
}

/// The task of MM1 ends; a kernel thread follows (MM1 stays loaded, lazily), then idle.
fn leave_lazily(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.use_mapping(MM1);
    cpu.enter_lazy_tlb();
}

/// A lazy holder of MM1 (a kernel thread) is followed by a task of MM2.
fn lazy_to_mm2(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.switch_to(MM2);
    cpu.irq_point();
    cpu.use_mapping(MM2);
}

/// The exiting task's CPU, lazy on MM1 (`exit_mm` → `enter_lazy_tlb`), releases MM1.
fn releaser(cpu: &mut Cpu) {
    cpu.irq_point();
    cpu.release(MM1);
}

/// Idle, or a kernel thread: only takes interrupts.
fn idle(_cpu: &mut Cpu) {}

// F1: a CPU coming back from lazy while another CPU flushes.
const F1_START: &[Start] = &[lazy(MM1), running(MM1)];
const F1: &[Script] = &[back_from_lazy, flusher];
const F1_FREED: &[Script] = &[back_from_lazy, flusher_freed];
// F2: a flusher vs a CPU switching in from another address space.
const F2_START: &[Start] = &[running(MM2), running(MM1)];
const F2: &[Script] = &[switch_in, flusher];
// F3: a flusher, a user of the same address space and a CPU coming back from lazy.
const F3_START: &[Start] = &[running(MM1), lazy(MM1), running(MM1)];
const F3: &[Script] = &[user, back_from_lazy, flusher];
// F4: two flushers of the same address space (each the other's target).
const F4_START: &[Start] = &[running(MM1), running(MM1)];
const F4: &[Script] = &[flusher, flusher];
// F5: two flushers of the same address space and a CPU switching in.
const F5_START: &[Start] = &[running(MM2), running(MM1), running(MM1)];
const F5: &[Script] = &[switch_in, flusher, flusher];
// R1: A leaves MM1 for MM2 while the releaser on B waits for MM1's mask to empty.
const R1_START: &[Start] = &[running(MM1), lazy(MM1)];
const R1: &[Script] = &[leave_for_mm2, releaser];
// R2: A (lazy on MM1) goes to MM2, C's task of MM1 ends into a kernel thread, B releases.
const R2_START: &[Start] = &[lazy(MM1), lazy(MM1), running(MM1)];
const R2: &[Script] = &[lazy_to_mm2, releaser, leave_lazily];
// R3: the releaser does not hold MM1; one lazy holder idles, one task leaves for MM2.
const R3_START: &[Start] = &[lazy(MM1), running(KERNEL), running(MM1)];
const R3: &[Script] = &[idle, releaser, leave_for_mm2];

// ---- the protocol as written ---------------------------------------------------------

#[test]
fn f1_back_from_lazy_vs_flush() {
    run(CORRECT, EXHAUSTIVE, F1_START, F1);
}

#[test]
fn f1_back_from_lazy_vs_freed_tables_flush() {
    run(CORRECT, PB2, F1_START, F1_FREED);
}

#[test]
fn f2_switch_in_vs_flush() {
    run(CORRECT, PB2, F2_START, F2);
}

#[test]
fn f3_user_lazy_and_flusher() {
    run(CORRECT, PB3, F3_START, F3);
}

#[test]
fn f4_two_flushers() {
    run(CORRECT, PB2, F4_START, F4);
}

#[test]
fn f5_two_flushers_and_switch_in() {
    run(CORRECT, PB5, F5_START, F5);
}

#[test]
fn r1_release_while_cpu_switches_away() {
    run(CORRECT, EXHAUSTIVE, R1_START, R1);
}

#[test]
fn r2_release_with_lazy_holders() {
    run(CORRECT, PB3, R2_START, R2);
}

#[test]
fn r3_release_from_other_cpu() {
    run(CORRECT, PB3, R3_START, R3);
}

// ---- weakened twins (must fail) ----------------------------------------------------

/// (i) `prev`'s mask bit cleared before the CR3 load: the releaser frees a loaded root.
#[test]
#[should_panic(expected = "property (b)")]
fn twin_clear_prev_before_cr3_frees_loaded_root() {
    let cfg = Config {
        clear_prev_before_cr3: true,
        ..CORRECT
    };
    run(cfg, EXHAUSTIVE, R1_START, R1);
}

/// (i) The same, with 3 CPUs.
#[test]
#[should_panic(expected = "property (b)")]
fn twin_clear_prev_before_cr3_frees_loaded_root_3cpu() {
    let cfg = Config {
        clear_prev_before_cr3: true,
        ..CORRECT
    };
    run(cfg, PB3, R3_START, R3);
}

/// (ii) Generation bumped after the mask and lazy reads: a CPU back from lazy misses it.
#[test]
#[should_panic(expected = "property (a)")]
fn twin_bump_after_mask_read_runs_behind() {
    let cfg = Config {
        bump_after_mask_read: true,
        ..CORRECT
    };
    run(cfg, EXHAUSTIVE, F1_START, F1);
}

/// (ii) `switch_mm` reads `tlb_gen` Relaxed: coming back from lazy it misses the bump.
#[test]
#[should_panic(expected = "property (a)")]
fn twin_relaxed_switch_gen_read_runs_behind() {
    let cfg = Config {
        switch_gen_load: Relaxed,
        ..CORRECT
    };
    run(cfg, EXHAUSTIVE, F1_START, F1);
}

/// (ii) The flusher reads lazy flags Relaxed: it skips a CPU that is back from lazy.
#[test]
#[should_panic(expected = "property (a)")]
fn twin_relaxed_lazy_read_runs_behind() {
    let cfg = Config {
        flusher_lazy_load: Relaxed,
        ..CORRECT
    };
    run(cfg, EXHAUSTIVE, F1_START, F1);
}

/// (ii) The flusher reads the mask Relaxed: it misses a CPU switching in.
#[test]
#[should_panic(expected = "property (a)")]
fn twin_relaxed_mask_read_runs_behind() {
    let cfg = Config {
        flusher_mask_load: Relaxed,
        ..CORRECT
    };
    run(cfg, PB2, F2_START, F2);
}
