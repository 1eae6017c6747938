//! The TLB coherence oracle: what each CPU's own TLB can still reach after an operation.
//!
//! The promise checked: when an unmap, collapse, unshare or teardown returns, no CPU can
//! reach the old translation through its TLB, and a CPU that held the address space
//! lazily has left it (its CR3 no longer holds the root) if tables were freed or
//! unshared.
//!
//! A walk through a freed table is seen as well: freed tables are filled with
//! `pgtable::POISON`, whose reserved bits make the hardware walk fault with RSVD, which
//! the probe reports. What it cannot see: QEMU's TCG has no paging-structure caches, so
//! a stale cached pointer to a freed table (which real CPUs have) does not exist here;
//! and a translation the software TLB evicted looks like a flushed one, which is why
//! each run primes few pages (below).
//!
//! Protocol of one run ([`check`]):
//! 1. **Prime.** CPU 0 runs the address space; in scenario A every other CPU runs a task
//!    of it, in scenario C every other CPU has run one and now idles holding it lazily.
//!    Each of them reads the probed pages of the region (up to 16, spread over it)
//!    through their virtual addresses first, so its TLB holds those translations (QEMU's software TLB keeps one until INVLPG or a CR3
//!    load: a missing flush stays visible, deterministically, under TCG).
//! 2. **Operate** on CPU 0, through the real path (`MmuGather`, collapse, unshare,
//!    teardown). Freed frames are poisoned (`mem::poison::FREED_DATA_POISON`), so a read through a
//!    stale translation is recognised even where the old contents were copied.
//! 3. **Probe.** Each of those CPUs reads those pages again with interrupts off, through
//!    [`arch::probe::read_u64`], which reports a fault instead of panicking. An unmapped
//!    page must fault; a collapsed page must read its own contents (through the new 2 MiB
//!    mapping, not the poisoned old frame). A lazy CPU is probed as it is, from a cross
//!    call, without switching in: after an operation that freed or unshared tables it
//!    must have left the address space (CR3 no longer holds its root, and nothing of the
//!    region is reachable); after one that freed none it may keep translations that its
//!    catch-up flush removes, so it is probed from a task that switches back in.
//!
//! With the paravirt backend, scenario A's tasks on odd CPUs count as preempted by the
//! host during the operation: the pv flush defers them, and they flush when they resume,
//! just before probing (`deferred=` counts those flushes).
//!
//! Each run prints `coherence: op=.. scen=.. backend=.. cpus=.. probes=.. stale=..
//! left_behind=.. deferred=..` and one `coherence: stale ...` line for the first stale read of each
//! CPU. Test-only code: product paths never call it.

extern crate alloc;
use alloc::vec::Vec;
use arch::irq as interrupts;
use arch::probe::ProbeFault;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::VirtAddr;
use mm::addr_space::AddressSpace;
use mm::cpumask::MAX_CPUS;
use mm::pgtable::{HUGE_SIZE, PAGE_SIZE};

use crate::mem::phys::MEM;
use crate::sched;
use crate::user_space::{destroy, unmap};
use crate::workload::map_page;
use crate::{mem, tlb, user_space};

/// Start of the region: index 1 at every level (index 0 of a freed frame holds the
/// allocator's free-list link), the first page of a PTE table.
const BASE: u64 = (1 << 39) | (1 << 30) | (1 << 21);
/// The word of each page that is mapped with a known value and probed.
const WORD: u64 = 8;

/// Whether the unmapped range takes its page tables with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// Nothing else is mapped near the range: its PTE, PMD and PUD tables are freed.
    Free,
    /// A page on each side of the range stays mapped in the same PTE tables.
    Keep,
}

/// The operation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `munmap` of `pages` pages through a gather; `batch: false` makes every table
    /// batch allocation fail (the flush + sync + free fallback).
    Unmap {
        /// Pages unmapped.
        pages: u64,
        /// Whether tables go too.
        tables: Tables,
        /// Table batches can be allocated.
        batch: bool,
    },
    /// A fully populated PTE table becomes one 2 MiB mapping.
    Collapse,
    /// The address space stops sharing another one's level-2 table.
    Unshare,
    /// The `fullmm` teardown of the whole address space.
    Teardown,
}

impl Op {
    fn name(self) -> alloc::string::String {
        match self {
            Op::Unmap { pages, tables, batch } => alloc::format!(
                "unmap{}-{pages}-{}",
                if batch { "" } else { "-nobatch" },
                if tables == Tables::Free { "free" } else { "keep" }
            ),
            Op::Collapse => "collapse".into(),
            Op::Unshare => "unshare".into(),
            Op::Teardown => "teardown".into(),
        }
    }

    /// Pages of the region probed.
    fn pages(self) -> u64 {
        match self {
            Op::Unmap { pages, .. } => pages,
            Op::Collapse => 512,
            Op::Unshare | Op::Teardown => 40,
        }
    }

    /// First page of the region.
    fn start(self) -> u64 {
        match self {
            // Mid-table, so that a keeper page fits on each side of 512 pages.
            Op::Unmap {
                tables: Tables::Keep, ..
            } => BASE + 256 * PAGE_SIZE,
            _ => BASE,
        }
    }

    /// The probed address of page `i`: its value there is the address itself.
    fn probe_va(self, i: u64) -> u64 {
        // Unshare and teardown spread their pages over 2 MiB blocks of the gigabyte.
        let page = match self {
            Op::Unshare | Op::Teardown => self.start() + (i / 8) * HUGE_SIZE + (i % 8) * PAGE_SIZE,
            _ => self.start() + i * PAGE_SIZE,
        };
        page + WORD
    }

    fn frees_tables(self) -> bool {
        !matches!(
            self,
            Op::Unmap {
                tables: Tables::Keep,
                ..
            }
        )
    }
}

/// Who holds the address space besides CPU 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Every other CPU runs a task of it.
    A,
    /// Every other CPU holds it lazily (idle after running a task of it).
    C,
}

/// What a probe must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A fault: nothing mapped.
    Fault,
    /// The page's own value (its address).
    Value,
}

/// One CPU's probe results.
struct CpuResult {
    probes: AtomicU64,
    stale: AtomicU64,
    first_va: AtomicU64,
    first_value: AtomicU64,
    /// After a tables operation, still had the root in CR3 (did not leave).
    left_behind: AtomicU64,
}

static RESULTS: [CpuResult; MAX_CPUS] = [const {
    CpuResult {
        probes: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        first_va: AtomicU64::new(0),
        first_value: AtomicU64::new(0),
        left_behind: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// `first_value` codes of reads that faulted (no mapped word holds them).
const NOT_MAPPED: u64 = u64::MAX;
const RESERVED: u64 = u64::MAX - 1;
const OTHER_FAULT: u64 = u64::MAX - 2;

/// 0: priming; 1: probe now; 2: done.
static STAGE: AtomicU64 = AtomicU64::new(0);
static PRIMED: AtomicU64 = AtomicU64::new(0);

/// The pages of `op`'s region that are primed and probed: all of them up to
/// [`PROBED`], else [`PROBED`] spread evenly from the first to the last. QEMU's
/// software TLB is direct-mapped and sized to each vCPU's recent use (an idle vCPU kept
/// about 115 of 512 freshly read translations here), so priming 512 pages would leave
/// most of them evicted, and a missing flush would go unseen.
fn probed_pages(op: Op) -> impl Iterator<Item = u64> {
    let n = op.pages();
    let k = n.min(PROBED);
    (0..k).map(move |j| if k == 1 { 0 } else { j * (n - 1) / (k - 1) })
}

/// Pages probed per CPU at most.
const PROBED: u64 = 16;

/// Reads the probed pages of `op`'s region on the running CPU, interrupts off, and
/// records what it saw against `expect`. Touches no lock (it may run in an IPI handler).
fn probe(op: Op, expect: Expect) {
    interrupts::without_interrupts(|| {
        let r = &RESULTS[arch::percpu::cpu_index()];
        for i in probed_pages(op) {
            let va = op.probe_va(i);
            let got = arch::probe::read_u64(va);
            // A fault through a poisoned (freed) table is never right.
            let ok = match expect {
                Expect::Fault => got == Err(ProbeFault::NotMapped),
                Expect::Value => got == Ok(va),
            };
            r.probes.fetch_add(1, Ordering::Relaxed);
            if !ok && r.stale.fetch_add(1, Ordering::Relaxed) == 0 {
                r.first_va.store(va, Ordering::Relaxed);
                r.first_value.store(
                    match got {
                        Ok(v) => v,
                        Err(ProbeFault::NotMapped) => NOT_MAPPED,
                        Err(ProbeFault::Reserved) => RESERVED,
                        Err(ProbeFault::Other) => OTHER_FAULT,
                    },
                    Ordering::Relaxed,
                );
            }
        }
    });
}

/// Primes the running CPU's TLB with every page of the region (each must read right).
fn prime(op: Op) {
    for i in probed_pages(op) {
        let va = op.probe_va(i);
        assert_eq!(arch::probe::read_u64(va), Ok(va), "coherence: priming {va:#x}");
    }
}

fn wait_stage(stage: u64) {
    while STAGE.load(Ordering::SeqCst) < stage {
        // Halt with interrupts on: flush IPIs are taken here; a tick wakes us.
        arch::cpu::wait_for_interrupt();
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = arch::cpu::rdtsc() + 10 * arch::timer::tsc_hz();
    while !cond() {
        assert!(
            arch::cpu::rdtsc() < end,
            "coherence: timed out waiting for {what}"
        );
        sched::yield_now();
    }
}

/// Builds the region in a new address space; for unshare, returns (sharer, owner).
fn build(op: Op) -> (&'static AddressSpace, Option<&'static AddressSpace>) {
    let mm = user_space::new_address_space();
    let target = match op {
        Op::Unshare => {
            let owner = user_space::new_address_space();
            (0..op.pages()).for_each(|i| {
                map_page(owner, op.probe_va(i));
            });
            mm::share::share_pmd_table(&MEM, &owner.lock(), &mm.lock(), VirtAddr::new(BASE))
                .expect("coherence: share");
            return (mm, Some(owner));
        }
        _ => mm,
    };
    (0..op.pages()).for_each(|i| {
        map_page(target, op.probe_va(i));
    });
    if let Op::Unmap {
        tables: Tables::Keep, ..
    } = op
    {
        map_page(target, op.start() - PAGE_SIZE + WORD);
        map_page(target, op.probe_va(op.pages()));
    }
    (target, None)
}

fn operate(op: Op, mm: &'static AddressSpace) {
    let ctx = tlb::gather_ctx();
    match op {
        Op::Unmap { pages, batch, .. } => {
            tlb::FREER.set_batch_allocation_fails(!batch);
            let start = op.start();
            unmap(mm, start, start + pages * PAGE_SIZE);
            tlb::FREER.set_batch_allocation_fails(false);
        }
        Op::Collapse => {
            mm::collapse::collapse(&ctx, &mm.lock(), VirtAddr::new(BASE)).expect("coherence: collapse");
        }
        Op::Unshare => {
            mm::share::unshare_pmd_table(&ctx, &mm.lock(), VirtAddr::new(BASE)).expect("coherence: unshare");
        }
        Op::Teardown => {
            mm::unmap::teardown(&ctx, &mm.lock());
        }
    }
}

/// The totals of one run.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Page reads made after the operation.
    pub probes: u64,
    /// Reads that reached what they must not (or missed what they must).
    pub stale: u64,
    /// Lazy CPUs that still had the root in CR3 after a tables operation.
    pub left_behind: u64,
}

/// Runs the oracle for `op` in `scen` and prints its line.
pub fn run(op: Op, scen: Scenario) -> Outcome {
    tlb::settle();
    let used = crate::mem::frames::stats().used;
    let cpus = arch::cpus::count();
    RESULTS.iter().for_each(|r| {
        [&r.probes, &r.stale, &r.first_va, &r.first_value, &r.left_behind]
            .iter()
            .for_each(|a| a.store(0, Ordering::SeqCst))
    });
    STAGE.store(0, Ordering::SeqCst);
    PRIMED.store(0, Ordering::SeqCst);
    let (mm, owner) = build(op);
    let collapsed = if op == Op::Collapse {
        Expect::Value
    } else {
        Expect::Fault
    };

    // With the paravirt backend, the tasks on odd CPUs count as preempted by the host
    // during the operation: its flush defers them (no IPI) and they flush when they
    // resume, before probing; so the deferred path is checked as well.
    let pv = tlb::mmu().backend.kind() == mm::hw::BackendKind::Paravirt;
    let tasks: Vec<_> = match scen {
        Scenario::A => (1..cpus)
            .map(|c| {
                let preempted = pv && c % 2 == 1;
                sched::spawn("coherence", c, Some(mm), move || {
                    prime(op);
                    if preempted {
                        arch::pv_host::enter_preempted();
                    }
                    PRIMED.fetch_add(1, Ordering::SeqCst);
                    wait_stage(1);
                    if preempted {
                        arch::pv_host::leave_preempted();
                    }
                    probe(op, collapsed);
                })
            })
            .collect(),
        Scenario::C => {
            for c in 1..cpus {
                sched::spawn("coherence-visit", c, Some(mm), move || prime(op)).join(10_000);
                let st = tlb::mmu().states.cpu(c);
                wait_until("a lazy cpu", || st.is_lazy() && st.has_loaded(mm));
                PRIMED.fetch_add(1, Ordering::SeqCst);
            }
            Vec::new()
        }
    };
    sched::use_mm(Some(mm));
    prime(op);
    wait_until("primed cpus", || PRIMED.load(Ordering::SeqCst) == cpus as u64 - 1);

    let deferred = arch::backend::pv::DEFERRED_FLUSHES.load(Ordering::SeqCst);
    operate(op, mm);
    let deferred = arch::backend::pv::DEFERRED_FLUSHES.load(Ordering::SeqCst) - deferred;

    probe(op, collapsed);
    STAGE.store(1, Ordering::SeqCst);
    tasks.into_iter().for_each(|t| t.join(10_000));
    if scen == Scenario::C {
        for c in 1..cpus {
            if op.frees_tables() {
                // As it is: the cross call runs on whatever root the CPU holds now.
                arch::ipi::call_on_cpu(c, arch::stats::IpiReason::Call, &|| {
                    if arch::tlb::loaded_root() == mm.root() {
                        RESULTS[arch::percpu::cpu_index()]
                            .left_behind
                            .fetch_add(1, Ordering::SeqCst);
                    }
                    probe(op, Expect::Fault);
                });
            } else {
                // Switching back in catches up with the flushes it was spared.
                sched::spawn("coherence-back", c, Some(mm), move || probe(op, Expect::Fault)).join(10_000);
            }
        }
    }
    STAGE.store(2, Ordering::SeqCst);
    sched::use_mm(None);

    let mut out = Outcome {
        probes: 0,
        stale: 0,
        left_behind: 0,
    };
    let name = op.name();
    for (c, r) in RESULTS.iter().enumerate().take(cpus) {
        out.probes += r.probes.load(Ordering::SeqCst);
        let stale = r.stale.load(Ordering::SeqCst);
        out.stale += stale;
        out.left_behind += r.left_behind.load(Ordering::SeqCst);
        if stale > 0 {
            let v = r.first_value.load(Ordering::SeqCst);
            log::info!(
                "coherence: stale cpu={c} op={name} scen={scen:?} va={:#x} read={} ({} of {})",
                r.first_va.load(Ordering::SeqCst),
                match v {
                    NOT_MAPPED => "fault".into(),
                    RESERVED => "reserved-bit fault (a walk through a freed table)".into(),
                    OTHER_FAULT => "protection fault".into(),
                    mem::poison::FREED_DATA_POISON => alloc::format!("{v:#x} (a freed frame)"),
                    _ => alloc::format!("{v:#x}"),
                },
                stale,
                r.probes.load(Ordering::SeqCst)
            );
        }
    }
    log::info!(
        "coherence: op={name} scen={scen:?} backend={} cpus={cpus} probes={} stale={} left_behind={} deferred={deferred}",
        tlb::mmu().backend.kind().name(),
        out.probes,
        out.stale,
        out.left_behind
    );

    destroy(mm);
    if let Some(owner) = owner {
        destroy(owner);
    }
    tlb::settle();
    assert_eq!(crate::mem::frames::stats().used, used, "coherence: frames leaked");
    out
}

/// Runs the oracle and fails the test on any stale read or lazy CPU left behind.
pub fn check(op: Op, scen: Scenario) {
    let out = run(op, scen);
    assert!(
        out.stale == 0 && out.left_behind == 0,
        "coherence: {} stale reads, {} lazy cpus left behind ({:?}, {scen:?})",
        out.stale,
        out.left_behind,
        op
    );
}
