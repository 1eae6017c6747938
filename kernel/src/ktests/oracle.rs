//! The TLB coherence oracle: what each CPU's own TLB can still reach after an operation.
//!
//! The promise checked: when an unmap, collapse, unshare, teardown or release returns, no
//! CPU can reach the old translation through its TLB, and a CPU that held the address
//! space lazily has left it (its CR3 no longer holds the root) if tables were freed or
//! unshared. The unmaps cover every kind of unlink: 4 KiB pages that take their PTE
//! tables (and the PMD and PUD tables above) with them or not, and huge leaves, which
//! free only upper tables: a 2 MiB leaf with its PMD and PUD tables, with its PMD table
//! only, or with none, and a 1 GiB leaf with its PUD table or without.
//!
//! A release ([`Op::Release`], `mm::release`) is checked while the other CPUs still run
//! the address space (scenario A: it must wait until they switch away, and the root must
//! not be freed while in their CR3: each of them checks, before it leaves, that the
//! root it runs on is intact) or hold it lazily (scenario C: they must be made to leave,
//! by the teardown's flush or by the release's own cross call, which is the only thing
//! that moves them under INVLPGB). Afterwards every CPU is asked, in a cross call, for
//! its CR3 (`left_behind=` counts those that still hold the root) and probes the region.
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
//! An operation that frees or unshares tables runs once in each table-free sync form
//! (`broadcast`, `targeted`, `wait`: [`check`]); the others once.
//!
//! Each run prints `coherence: op=.. scen=.. backend=.. sync=.. cpus=.. probes=.. stale=..
//! left_behind=.. deferred=..` and one `coherence: stale ...` line for the first stale read of each
//! CPU. Test-only code: product paths never call it.

extern crate alloc;
use alloc::vec::Vec;
use arch::irq as interrupts;
use arch::probe::ProbeFault;
use bench_spec::Idle;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::VirtAddr;
use mm::addr_space::AddressSpace;
use mm::cpumask::MAX_CPUS;
use mm::entry::EntryFlags;
use mm::hw::PhysMem;
use mm::pgtable::{GIANT_SIZE, HUGE_SIZE, PAGE_SIZE};
use mm::table_free::SyncForm;

use crate::mem::phys::MEM;
use crate::sched;
use crate::user_space::{destroy, unmap};
use crate::workload::{ROUND_MODES, map_page, with_round_mode, with_sync_form};
use crate::{mem, tlb, user_space};

/// Start of the region: index 1 at every level (index 0 of a freed frame holds the
/// allocator's free-list link), the first page of a PTE table.
const BASE: u64 = (1 << 39) | (1 << 30) | (1 << 21);
/// The word of each page that is mapped with a known value and probed.
const WORD: u64 = 8;

/// Whether the unmapped range takes its page tables with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// Nothing else is mapped near the range: every table above it up to the PUD table
    /// is freed (PTE, PMD and PUD tables for 4 KiB pages; PMD and PUD tables for a
    /// 2 MiB leaf; the PUD table for a 1 GiB leaf).
    Free,
    /// Only the table holding the huge leaf is freed: a page in the next gigabyte keeps
    /// the PUD table (a 2 MiB leaf: its PMD table goes, and no PTE table).
    FreeOne,
    /// Something stays mapped in the tables holding the range (a page on each side of
    /// 4 KiB pages, a neighbour in a huge leaf's own table): no table is freed.
    Keep,
}

impl Tables {
    fn name(self) -> &'static str {
        match self {
            Tables::Free => "free",
            Tables::FreeOne => "free1",
            Tables::Keep => "keep",
        }
    }
}

/// The size of a huge leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Huge {
    /// A 2 MiB leaf (level 2), on a block of the kernel's huge pool.
    M2,
    /// A 1 GiB leaf (level 3), read-only over physical 0..1 GiB (see [`GIANT_FRAMES`]).
    G1,
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
    /// `munmap` of one huge leaf: no PTE table is freed, only the tables above it as
    /// `tables` says.
    UnmapHuge {
        /// The leaf's size.
        size: Huge,
        /// Which tables go too.
        tables: Tables,
    },
    /// A fully populated PTE table becomes one 2 MiB mapping.
    Collapse,
    /// The address space stops sharing another one's level-2 table.
    Unshare,
    /// The `fullmm` teardown of the whole address space.
    Teardown,
    /// `mm::release`: teardown, lazy holders made to leave, the root freed once no CPU
    /// has it loaded (waiting for the CPUs that run it).
    Release,
}

impl Op {
    fn name(self) -> alloc::string::String {
        match self {
            Op::Unmap { pages, tables, batch } => alloc::format!(
                "unmap{}-{pages}-{}",
                if batch { "" } else { "-nobatch" },
                tables.name()
            ),
            Op::UnmapHuge { size, tables } => alloc::format!(
                "unmap-{}-{}",
                if size == Huge::M2 { "2m" } else { "1g" },
                tables.name()
            ),
            Op::Collapse => "collapse".into(),
            Op::Unshare => "unshare".into(),
            Op::Teardown => "teardown".into(),
            Op::Release => "release".into(),
        }
    }

    /// Pages of the region probed.
    fn pages(self) -> u64 {
        match self {
            Op::Unmap { pages, .. } => pages,
            Op::UnmapHuge { size: Huge::M2, .. } | Op::Collapse => 512,
            Op::UnmapHuge { size: Huge::G1, .. } => PROBED,
            Op::Unshare | Op::Teardown | Op::Release => 40,
        }
    }

    /// First page of the region.
    fn start(self) -> u64 {
        match self {
            // Mid-table, so that a keeper page fits on each side of 512 pages.
            Op::Unmap {
                tables: Tables::Keep, ..
            } => BASE + 256 * PAGE_SIZE,
            Op::UnmapHuge { size: Huge::G1, .. } => GIANT_BASE,
            _ => BASE,
        }
    }

    /// The probed address of page `i`: its value there is the address itself.
    fn probe_va(self, i: u64) -> u64 {
        // Unshare, teardown and release spread their pages over 2 MiB blocks of the
        // gigabyte; a 1 GiB leaf is probed where the frames the test owns are.
        let page = match self {
            Op::Unshare | Op::Teardown | Op::Release => {
                self.start() + (i / 8) * HUGE_SIZE + (i % 8) * PAGE_SIZE
            }
            Op::UnmapHuge { size: Huge::G1, .. } => {
                self.start() + GIANT_FRAMES[i as usize].load(Ordering::SeqCst)
            }
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
            } | Op::UnmapHuge {
                tables: Tables::Keep,
                ..
            }
        )
    }
}

/// Where a 1 GiB leaf is mapped: index 1 at the root and in the PUD table.
const GIANT_BASE: u64 = (1 << 39) | (1 << 30);

/// The frames a 1 GiB leaf's probes read, one per probed page.
///
/// The leaf maps physical 0..1 GiB (QEMU's guests have 512 MiB: the low part is RAM,
/// the rest unbacked), read-only and not executable. That is sound because the kernel
/// already maps all of that range, the same way (write-back), in its physical-memory
/// mapping, so the leaf adds an alias of the same type and no new way to write; the
/// probes read only frames this test took from the frame allocator and filled (each
/// with its address through the leaf), so no read depends on memory another part of
/// the kernel owns, or on what unbacked addresses return; and the frames go back only
/// after the address space is destroyed, when no TLB can reach them through the leaf.
/// An unmap of the leaf frees nothing of the range ([`mm::pgtable::map_1g`]).
static GIANT_FRAMES: [AtomicU64; PROBED as usize] = [const { AtomicU64::new(0) }; PROBED as usize];

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

/// [`crate::ktests::wait_until`], yielding: CPU 0's own tasks must get to run.
fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    crate::ktests::wait_until(&alloc::format!("coherence: {what}"), cond, sched::yield_now)
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
    match op {
        Op::UnmapHuge { size, tables } => {
            map_huge(target, size);
            let start = op.start();
            match (size, tables) {
                (_, Tables::Free) => {}
                // Neighbours in the leaf's own table.
                (Huge::M2, Tables::Keep) => {
                    map_page(target, start - PAGE_SIZE + WORD);
                    map_page(target, start + HUGE_SIZE + WORD);
                }
                // A page in the next gigabyte: the PUD table stays (for a 1 GiB leaf,
                // that is its own table: nothing is freed).
                (Huge::M2, Tables::FreeOne) | (Huge::G1, Tables::Keep) => {
                    map_page(target, (start & !(GIANT_SIZE - 1)) + GIANT_SIZE + WORD);
                }
                (Huge::G1, Tables::FreeOne) => panic!("coherence: a 1 GiB leaf has one table above it"),
            }
        }
        _ => (0..op.pages()).for_each(|i| {
            map_page(target, op.probe_va(i));
        }),
    }
    if let Op::Unmap {
        tables: Tables::Keep, ..
    } = op
    {
        map_page(target, op.start() - PAGE_SIZE + WORD);
        map_page(target, op.probe_va(op.pages()));
    }
    (target, None)
}

/// Maps the huge leaf of an [`Op::UnmapHuge`] at the region's start, each probed page
/// holding its own address at [`WORD`].
fn map_huge(mm: &AddressSpace, size: Huge) {
    let op = Op::UnmapHuge {
        size,
        tables: Tables::Free,
    };
    let va = VirtAddr::new(op.start());
    match size {
        Huge::M2 => {
            let block = MEM
                .alloc_huge()
                .expect("coherence: a 2 MiB block from the huge pool");
            for i in probed_pages(op) {
                mem::phys::write_phys(block.as_u64() + i * PAGE_SIZE + WORD, op.probe_va(i));
            }
            let flags = EntryFlags::WRITABLE | EntryFlags::NO_EXECUTE;
            mm::pgtable::map_2m(&mm.lock(), &MEM, va, block, flags).expect("coherence: map_2m");
        }
        Huge::G1 => {
            // CPUID.8000_0001:EDX[26]: without 1 GiB pages the page-size bit at level 3
            // is reserved, and every probe would fault.
            let page1gb = core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 26) != 0;
            assert!(page1gb, "coherence: this CPU has no 1 GiB pages (CPUID pdpe1gb)");
            for (i, f) in GIANT_FRAMES.iter().enumerate() {
                let frame = MEM.alloc_frame().expect("coherence: a frame to probe").as_u64();
                assert!(
                    frame + PAGE_SIZE <= GIANT_SIZE,
                    "coherence: frame {frame:#x} above 1 GiB"
                );
                f.store(frame, Ordering::SeqCst);
                mem::phys::write_phys(frame + WORD, op.probe_va(i as u64));
            }
            let range = mm::addr::PhysAddr::new(0);
            mm::pgtable::map_1g(&mm.lock(), &MEM, va, range, EntryFlags::NO_EXECUTE)
                .expect("coherence: map_1g");
        }
    }
}

/// Returns the frames a 1 GiB leaf's probes read (once nothing maps them).
fn free_giant_frames() {
    for f in &GIANT_FRAMES {
        let frame = f.swap(0, Ordering::SeqCst);
        if frame != 0 {
            MEM.free_frame(mm::addr::PhysAddr::new(frame));
        }
    }
}

fn operate(op: Op, mm: &'static AddressSpace) {
    let ctx = tlb::gather_ctx();
    match op {
        Op::Unmap { pages, batch, .. } => {
            tlb::faults::Fault::NoBatchPages.set(!batch);
            let start = op.start();
            unmap(mm, start, start + pages * PAGE_SIZE);
            tlb::faults::Fault::NoBatchPages.set(false);
        }
        Op::UnmapHuge { size, .. } => {
            let start = op.start();
            let span = if size == Huge::M2 { HUGE_SIZE } else { GIANT_SIZE };
            unmap(mm, start, start + span);
        }
        Op::Release => release(mm),
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

/// Releases `mm` (`mm::release`, each step recorded for the fault handlers, as
/// `user_space::destroy` does), letting the CPUs that still run it go on to probe and
/// leave only once the release waits for them (scenario A), so that it must wait.
fn release(mm: &'static AddressSpace) {
    // Bounded by the watchdog, as `user_space::destroy` is, not by a clock of its own:
    // in scenario A the release ends only once the other vCPUs have run, which on a busy
    // host may take a while.
    let wait = arch::watchdog::Wait::start("oracle-release-holders");
    let steps = &arch::teardown_record::TEARDOWN_RECORD;
    let released = mm::release::release_with_steps(&tlb::gather_ctx(), mm, steps, || {
        RELEASE_WAITS.fetch_add(1, Ordering::SeqCst);
        STAGE.store(1, Ordering::SeqCst);
        sched::yield_now();
        !wait.expired()
    });
    assert_eq!(
        released,
        Ok(()),
        "coherence: cpus still hold a released address space after {} ms",
        arch::watchdog::fatal_bound_ms()
    );
}

/// How many times the release waited for CPUs that still had the address space.
static RELEASE_WAITS: AtomicU64 = AtomicU64::new(0);
/// Tasks that found the root they still run on freed (poisoned) by the release.
static ROOT_FREED_EARLY: AtomicU64 = AtomicU64::new(0);

/// Whether the root frame `root` still holds the kernel's upper half. A root freed while
/// in some CPU's CR3 (what the release must never do) is poisoned
/// (`mem::poison::FREED_DATA_POISON`) or reused at once.
fn root_intact(root: mm::addr::PhysAddr) -> bool {
    let kroot = tlb::kernel_mm().root();
    (256..mm::level::ENTRIES)
        .all(|i| MEM.word(root, i).load(Ordering::SeqCst) == MEM.word(kroot, i).load(Ordering::SeqCst))
}

/// The totals of one run.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Page reads made after the operation.
    pub probes: u64,
    /// Reads that reached what they must not (or missed what they must).
    pub stale: u64,
    /// Lazy CPUs that still had the root in CR3 after a tables operation (after a
    /// release: any CPU).
    pub left_behind: u64,
    /// Release only: CPUs that found the root they still ran on freed.
    pub root_freed_early: u64,
    /// Release only: how many times it waited for CPUs that still had the address space.
    pub release_waits: u64,
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
    RELEASE_WAITS.store(0, Ordering::SeqCst);
    ROOT_FREED_EARLY.store(0, Ordering::SeqCst);
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
                        ktest::pv_host::enter_preempted();
                    }
                    PRIMED.fetch_add(1, Ordering::SeqCst);
                    wait_stage(1);
                    if preempted {
                        ktest::pv_host::leave_preempted();
                    }
                    probe(op, collapsed);
                    // A release lets this task go on only while it waits for it: the
                    // root this CPU runs on must still be whole.
                    if op == Op::Release && !(arch::tlb::loaded_root() == mm.root() && root_intact(mm.root()))
                    {
                        ROOT_FREED_EARLY.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect(),
        Scenario::C => {
            for c in 1..cpus {
                sched::spawn("coherence-visit", c, Some(mm), move || prime(op))
                    .join(crate::sched::JOIN_BOUND_MS);
                let st = tlb::mmu().states.cpu(c);
                // Under `idle.leave_mm=always|deep` the CPU may already have let go of
                // the address space on going idle (left its mask): what the probes
                // check then is that it came back, or stayed away, with nothing stale.
                let left_on_idle = || sched::idle_policy() != Idle::Never && !mm.cpumask.contains(c);
                wait_until("a lazy cpu", || {
                    (st.is_lazy() && st.has_loaded(mm)) || left_on_idle()
                });
                PRIMED.fetch_add(1, Ordering::SeqCst);
            }
            Vec::new()
        }
    };
    sched::use_mm(Some(mm));
    prime(op);
    wait_until("primed cpus", || PRIMED.load(Ordering::SeqCst) == cpus as u64 - 1);
    if op == Op::Release {
        // The releaser holds the address space only lazily, as after an exit.
        sched::use_mm(None);
    }

    let deferred = arch::backend::pv::DEFERRED_FLUSHES.load(Ordering::SeqCst);
    operate(op, mm);
    let deferred = arch::backend::pv::DEFERRED_FLUSHES.load(Ordering::SeqCst) - deferred;

    probe(op, collapsed);
    STAGE.store(1, Ordering::SeqCst);
    tasks
        .into_iter()
        .for_each(|t| t.join(crate::sched::JOIN_BOUND_MS));
    if scen == Scenario::C || op == Op::Release {
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
                sched::spawn("coherence-back", c, Some(mm), move || probe(op, Expect::Fault))
                    .join(crate::sched::JOIN_BOUND_MS);
            }
        }
    }
    STAGE.store(2, Ordering::SeqCst);
    sched::use_mm(None);

    let mut out = Outcome {
        probes: 0,
        stale: 0,
        left_behind: 0,
        root_freed_early: ROOT_FREED_EARLY.load(Ordering::SeqCst),
        release_waits: RELEASE_WAITS.load(Ordering::SeqCst),
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
    let release = if op == Op::Release {
        alloc::format!(
            " release_waits={} root_freed_early={}",
            out.release_waits,
            out.root_freed_early
        )
    } else {
        alloc::string::String::new()
    };
    log::info!(
        "coherence: op={name} scen={scen:?} backend={} sync={} round={} cpus={cpus} probes={} stale={} left_behind={} deferred={deferred}{release}",
        tlb::mmu().backend.kind().name(),
        tlb::FREER.form().name(),
        tlb::round_mode().name(),
        out.probes,
        out.stale,
        out.left_behind
    );

    if op != Op::Release {
        destroy(mm);
    }
    if let Some(owner) = owner {
        destroy(owner);
    }
    free_giant_frames();
    tlb::settle();
    assert_eq!(crate::mem::frames::stats().used, used, "coherence: frames leaked");
    out
}

/// Runs the oracle and fails the test on any stale read or lazy CPU left behind: once
/// in each table-free sync form (`tlb.sync=`, set for the run) if `op` frees or unshares
/// tables (the form decides how the sync and the batched path's wait reach the other
/// CPUs, and none may leave a translation behind), each form with one of the three
/// shootdown round modes (`mm::round`: serial, concurrent, early; early acknowledgement
/// does not apply to these flushes, the local flush's place does); else once in each
/// round mode, in the form in force (no sync is made): these are the flushes that
/// responders acknowledge early in `early`.
pub fn check(op: Op, scen: Scenario) {
    if op.frees_tables() {
        for (form, mode) in SyncForm::ALL.into_iter().zip(ROUND_MODES) {
            with_round_mode(mode, || with_sync_form(form, || check_in_form(op, scen)));
        }
    } else {
        for mode in ROUND_MODES {
            with_round_mode(mode, || check_in_form(op, scen));
        }
    }
}

/// Runs the oracle once under each idle policy (`idle.leave_mm=`, set for the run and
/// the one in force restored after), in the sync form in force: no stale read, no lazy
/// CPU left behind, whatever idle CPUs do with the address space they held. (A failing
/// run panics, which ends the boot: the next boot starts from the boot option's policy.)
pub fn check_each_idle_policy(op: Op, scen: Scenario) {
    let before = sched::idle_policy();
    for &policy in Idle::ALL {
        sched::set_idle_policy(policy);
        log::info!("coherence: idle={}", policy.name());
        check_in_form(op, scen);
    }
    sched::set_idle_policy(before);
}

fn check_in_form(op: Op, scen: Scenario) {
    let out = run(op, scen);
    assert!(
        out.stale == 0 && out.left_behind == 0 && out.root_freed_early == 0,
        "coherence: {} stale reads, {} lazy cpus left behind, {} cpus on a freed root ({:?}, {scen:?}, sync={})",
        out.stale,
        out.left_behind,
        out.root_freed_early,
        op,
        tlb::FREER.form().name()
    );
    if op == Op::Release && scen == Scenario::A && arch::cpus::count() > 1 {
        assert!(
            out.release_waits > 0,
            "coherence: the release never waited for the cpus running the address space"
        );
    }
}
