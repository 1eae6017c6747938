//! `bench=tlb`: the table-freeing operations measured the way `/proc/interrupts` would
//! show them in Linux, one machine-readable line per configuration
//! ([`bench_spec::Line`], `gatherOS smp=.. scen=.. ...`). The operations, scenarios,
//! configurations and the percentile rule are `bench_spec`'s.
//!
//! Every op runs on CPU 0 in a fresh address space, on a 2 MiB-aligned region. Scenarios:
//! A, a task of the address space runs on every other CPU (it halts between interrupts
//! or spins, `bench.spin=`; either way it is not lazy); B, the other CPUs are idle
//! and never held it; C, before each op a task of it runs briefly on every other CPU and
//! ends, so those CPUs hold it lazily. Modes: the sync as the static key decides, and
//! forced (`tlb.table_sync=always`). Time is the TSC around the op alone; IPI counts are
//! the per-CPU interrupt counters' deltas over the op alone, summed over CPUs.
//!
//! Idle policies (`bench.idle=`, each set at run time with `sched::set_idle_policy` and
//! the boot's restored after): scenario C is measured once per policy, and there each
//! iteration is a whole cycle: the tasks of the address space are woken on the other
//! CPUs (spawned), run (each reads a page of the region, so it really uses the address
//! space: a CPU that let go of it loads its root again, one that held it lazily catches
//! up on a flush it missed), end; CPU 0 then halts for [`IDLE_TICKS`] of its ticks
//! ([`idle_wait`]), the same for every policy, long enough for `deep` to let go; then
//! the op. Besides the op's time
//! (`ns_median=`), the line gives the cycle's (`cycle_ns_median=`: the TSC from waking
//! the tasks to their end, plus the op; the idle wait between is left out, as its 1 to
//! 2 tick periods would drown the differences and cost no CPU anything) and what the
//! cycle cost the tasks, from mm's counters over it: catch-up flushes
//! (`catchups_per_op=`) and idle leaves (`idle_left_per_op=`, each a CR3 load when a
//! task of the address space comes back). Scenarios A and B have no such cycle: they
//! are measured once, with the boot's policy (`idle=` on every line says which).
//!
//! Sync forms (`bench.syncs=`, each set at run time with `TableFreerState::set_form`):
//! every configuration is measured once per form (`sync=broadcast|targeted|wait`); with
//! the native backend the static key's skip comes first (`sync=skip`, measured once,
//! under the first form), and the forms are measured forced. Walkers (`bench.walkers=`):
//! with `all`, scenario A is measured once more with its tasks walking the operation's
//! region lock-free ([`super::walkers`]) instead of halting (`walkers=` N-1); B and C
//! have no walkers (their other CPUs do not run the address space). Each boot also
//! prints the walker's price ([`super::walk_cost`], `walk-cost:`) and, per form and
//! walker count, the unlink-to-free time of batched tables ([`super::unlink_to_free`],
//! `unlink-to-free:`).
//!
//! With the paravirt backend, half of scenario A's tasks (those on odd CPUs) count as
//! preempted by the host for the whole run: the pv flush defers them (no IPI, a flush
//! when they resume at the end), so only the other half take flush IPIs, and the sync
//! IPI (which the pv flush cannot stand in for) reaches all of them. The model is only of
//! who gets an IPI: a "preempted" task keeps running with interrupts on and answers the
//! sync at once, so the cost of waiting for a really descheduled vCPU is not in the
//! times. Freed frames are
//! not poisoned and freed tables not quarantined while the benchmark runs.

extern crate alloc;
use alloc::vec::Vec;
use bench_spec::{Apic, Backend, Config, Idle, Line, Op, Os, PerOp, Scenario, Sync, Walkers, percentile};
use core::sync::atomic::Ordering;
use mm::addr_space::AddressSpace;
use mm::stats::TlbEvent;
use mm::table_free::{SyncForm, SyncMode};

use super::spinners::Spinners;
use super::walkers::Walkers as WalkerTasks;

use crate::mem::phys::MEM;
use crate::options::BenchOptions;
use crate::sched;
use crate::user_space::{destroy, map_new_page as map_page, unmap};
use crate::{mem, tlb, user_space};

const BASE: u64 = 0x4000_0000;
const SHARED_VA: u64 = (3 << 30) | (1 << 21) | (1 << 12);
/// Ticks of its own every CPU has taken, in scenario C, between the tasks' end and the op,
/// whatever the policy: `deep` lets go at the second tick a CPU takes while idle (a whole
/// tick period of idleness), and the loop goes round to the leave after that tick's
/// handler: a third tick is after the leave.
const IDLE_TICKS: u64 = 3;

/// CPU 0 halts until every online CPU's own tick count has gone up by `ticks` (each CPU's,
/// not CPU 0's: a vCPU the host starves takes its ticks late, and the wait is for that
/// CPU's idleness, so a loaded host makes it longer, never wrong). Not
/// `sched::sleep_ticks`: the benchmark runs in CPU 0's boot context, which is its idle
/// task, and the scheduler has nothing else to switch to, so that sleep would return at
/// once.
fn idle_wait(ticks: u64) {
    // Relaxed: a counter each CPU bumps in its tick; only its progress is read.
    let ticks_of = |c: usize| arch::cpus::get(c).ticks.load(Ordering::Relaxed);
    let cpus = arch::cpus::count();
    let until: Vec<u64> = (0..cpus).map(|c| ticks_of(c) + ticks).collect();
    while (0..cpus).any(|c| ticks_of(c) < until[c]) {
        // Interrupts on, then halt until one (the tick among them) comes.
        arch::cpu::wait_for_interrupt();
    }
}

fn ipi_sums() -> (u64, u64, u64) {
    let t = arch::cpus::ipi_totals();
    (
        t.received[arch::stats::IpiReason::Flush as usize],
        t.call_interrupts,
        t.received[arch::stats::IpiReason::Sync as usize],
    )
}

/// Prepares the mapping an op works on (not measured).
fn setup(cfg: Config, mm: &'static AddressSpace, owner: &'static AddressSpace) {
    match cfg.op {
        Op::Unmap | Op::UnmapNobatch => {
            for p in 0..cfg.pages {
                map_page(mm, BASE + p * 4096);
                // SAFETY: just mapped in the running task's address space.
                unsafe { core::ptr::write_volatile((BASE + p * 4096) as *mut u8, 1) };
            }
            if cfg.keeps_table() {
                map_page(mm, BASE + 511 * 4096);
            }
        }
        Op::Collapse => (0..512).for_each(|p| {
            map_page(mm, BASE + p * 4096);
        }),
        Op::Unshare => {
            let va = mm::addr::VirtAddr::new(SHARED_VA);
            mm::share::share_pmd_table(&MEM, &owner.lock(), &mm.lock(), va).expect("bench: share");
        }
    }
}

/// The measured operation.
fn op(cfg: Config, mm: &'static AddressSpace) {
    match cfg.op {
        Op::Unmap | Op::UnmapNobatch => unmap(mm, BASE, BASE + cfg.pages * 4096),
        Op::Collapse => {
            let va = mm::addr::VirtAddr::new(BASE);
            mm::collapse::collapse(&tlb::gather_ctx(), &mm.lock(), va).expect("bench: collapse");
        }
        Op::Unshare => {
            let va = mm::addr::VirtAddr::new(SHARED_VA);
            mm::share::unshare_pmd_table(&tlb::gather_ctx(), &mm.lock(), va).expect("bench: unshare");
        }
    }
}

/// Undoes what `setup` + `op` left (not measured).
fn cleanup(cfg: Config, mm: &'static AddressSpace) {
    match cfg.op {
        Op::Collapse => unmap(mm, BASE, BASE + (2 << 20)),
        Op::Unmap | Op::UnmapNobatch => {
            if cfg.keeps_table() {
                unmap(mm, BASE, BASE + (2 << 20));
            }
        }
        Op::Unshare => {}
    }
}

/// The backend's word in the line.
pub(super) fn backend(kind: mm::hw::BackendKind) -> Backend {
    match kind {
        mm::hw::BackendKind::NativeIpi => Backend::Native,
        mm::hw::BackendKind::Paravirt => Backend::Pv,
        mm::hw::BackendKind::Invlpgb => Backend::Invlpgb,
    }
}

/// The form's word in the line.
pub(super) fn sync_of(form: SyncForm) -> Sync {
    match form {
        SyncForm::Broadcast => Sync::Broadcast,
        SyncForm::Targeted => Sync::Targeted,
        SyncForm::Wait => Sync::Wait,
    }
}

/// The form a `sync=` word names (never `skip`: the options refuse it).
fn form_of(sync: Sync) -> SyncForm {
    match sync {
        Sync::Broadcast | Sync::Skip => SyncForm::Broadcast,
        Sync::Targeted => SyncForm::Targeted,
        Sync::Wait => SyncForm::Wait,
    }
}

/// The region the operation works on, as walkers walk it: its first page and how many.
fn walked(cfg: Config) -> (u64, u64) {
    match cfg.op {
        Op::Unmap | Op::UnmapNobatch | Op::Collapse => (BASE, cfg.pages.max(1)),
        Op::Unshare => (SHARED_VA, 1),
    }
}

/// One line of a configuration: whether the sync is forced, in which form, with how
/// many walkers, under which idle policy.
#[derive(Debug, Clone, Copy)]
struct Row {
    forced: bool,
    form: SyncForm,
    walkers: usize,
    idle: Idle,
}

/// The rows of a configuration in `scen`, in the order they are measured: per idle
/// policy (scenario C: each of `idles`; A and B: the boot's, `boot`) and walker count, the key's skip (native only, under the
/// first form), then every form (forced with the native backend, where the key would
/// skip).
fn rows(
    opts: &BenchOptions,
    forms: &[SyncForm],
    scen: Scenario,
    native: bool,
    (idles, boot): (&[Idle], Idle),
) -> Vec<Row> {
    let others = arch::cpus::count() - 1;
    let mut counts: Vec<usize> = opts
        .walkers
        .iter()
        .filter_map(|w| match w {
            Walkers::None => Some(0),
            Walkers::All if scen == Scenario::A && others > 0 => Some(others),
            Walkers::All => None,
        })
        .collect();
    counts.dedup();
    let idles = if scen == Scenario::C {
        idles
    } else {
        core::slice::from_ref(&boot)
    };
    let mut rows = Vec::new();
    for &idle in idles {
        for &walkers in &counts {
            if native {
                rows.push(Row {
                    forced: false,
                    form: forms[0],
                    walkers,
                    idle,
                });
            }
            rows.extend(forms.iter().map(|&form| Row {
                forced: native,
                form,
                walkers,
                idle,
            }));
        }
    }
    rows
}

/// The APIC mode's word in the line.
fn apic(mode: arch::apic::ApicMode) -> Apic {
    match mode {
        arch::apic::ApicMode::X2Apic => Apic::X2apic,
        arch::apic::ApicMode::XApic => Apic::Xapic,
    }
}

fn measure(cfg: Config, opts: &BenchOptions, row: Row) {
    let forced = row.forced;
    let mm = user_space::new_address_space();
    let owner = user_space::new_address_space();
    if cfg.op == Op::Unshare {
        map_page(owner, SHARED_VA);
    }
    if cfg.op.is_unmap() && !cfg.keeps_table() {
        // A separate mapping 4 MiB above keeps the level-2 table: one PTE table is freed.
        map_page(mm, BASE + (4 << 20));
    }
    tlb::FREER.set_mode(if forced {
        SyncMode::Always
    } else {
        SyncMode::Decided
    });
    tlb::FREER.set_form(row.form);
    sched::set_idle_policy(row.idle);
    tlb::faults::Fault::NoBatchPages.set(cfg.op == Op::UnmapNobatch);
    let others = 1..arch::cpus::count();
    let pv = tlb::mmu().backend.kind() == mm::hw::BackendKind::Paravirt;
    let preempted = |c: usize| pv && c % 2 == 1;
    // Scenario A with walkers: its tasks walk instead of halting (`super::walkers`).
    let walkers = (row.walkers > 0).then(|| {
        let (va, pages) = walked(cfg);
        WalkerTasks::start(mm, others.clone(), va, pages, preempted)
    });
    let spinners = (cfg.scen == Scenario::A && walkers.is_none())
        .then(|| Spinners::start(mm, others.clone(), opts.spin_halts, preempted));
    sched::use_mm(Some(mm));
    let warmup = bench_spec::warmup(opts.iters);
    let mut cycles = Vec::with_capacity(opts.iters);
    let mut whole = Vec::with_capacity(opts.iters);
    let (mut tlb, mut cal, mut sync, mut pt_frames) = (0u64, 0u64, 0u64, 0u64);
    let (mut catchups, mut idle_left) = (0u64, 0u64);
    for i in 0..warmup + opts.iters {
        setup(cfg, mm, owner);
        // Scenario C's cycle up to the op: the tasks woken, run and ended (timed), then
        // the idle wait (not timed).
        let before_cycle = tlb::STATS.total();
        let mut woken = 0;
        if cfg.scen == Scenario::C {
            let page = walked(cfg).0;
            let t0 = arch::cpu::rdtsc();
            let visits: Vec<_> = others
                .clone()
                .map(|c| {
                    sched::spawn("bench-visit", c, Some(mm), move || {
                        // SAFETY: `setup` mapped the region's first page in `mm`, which
                        // this task runs in; a read changes nothing.
                        unsafe { core::ptr::read_volatile(page as *const u8) };
                    })
                })
                .collect();
            visits
                .into_iter()
                .for_each(|v| v.join(crate::sched::JOIN_BOUND_MS));
            woken = arch::cpu::rdtsc() - t0;
            idle_wait(IDLE_TICKS);
        }
        // `trace=tlb`: the last op is recorded, with the frees of its tables.
        let traced = crate::tracing::enabled() && i + 1 == warmup + opts.iters;
        if traced {
            trace::gate::recording(true);
        }
        let before_ipis = ipi_sums();
        let before_tables = tlb::STATS.total();
        let t0 = arch::cpu::rdtsc();
        op(cfg, mm);
        let dt = arch::cpu::rdtsc() - t0;
        let after_ipis = ipi_sums();
        let d = tlb::STATS.total() - before_tables;
        if traced {
            tlb::settle();
            crate::tracing::dump(format_args!(
                "op={} scen={} pages={} sync={} forced={} walkers={}",
                cfg.op,
                cfg.scen,
                cfg.pages,
                if !forced && arch::static_key::tlb_table_flush_implies_ipi_broadcast() {
                    "skip"
                } else {
                    row.form.name()
                },
                forced,
                row.walkers
            ));
        }
        let cycle = tlb::STATS.total() - before_cycle;
        cleanup(cfg, mm);
        if i >= warmup {
            cycles.push(dt);
            whole.push(woken + dt);
            catchups += cycle.get(TlbEvent::Catchup);
            idle_left += cycle.get(TlbEvent::IdleLeft);
            tlb += after_ipis.0 - before_ipis.0;
            cal += after_ipis.1 - before_ipis.1;
            sync += after_ipis.2 - before_ipis.2;
            // Batched tables are counted when queued (their grace period ends later);
            // fallback, collapse and unshare free at once.
            pt_frames += match cfg.op {
                Op::Unmap => d.get(TlbEvent::TablesDeferred),
                Op::UnmapNobatch | Op::Collapse | Op::Unshare => d.get(TlbEvent::TablesFreed),
            };
        }
    }
    sched::use_mm(None);
    if let Some(s) = spinners {
        s.stop();
    }
    let walkers = walkers.map_or(0, |w| {
        let n = w.count();
        assert!(w.stop() > 0, "bench: the walkers walked");
        n
    });
    destroy(mm);
    destroy(owner);
    tlb::FREER.set_mode(SyncMode::Decided);
    tlb::faults::Fault::NoBatchPages.set(false);
    tlb::settle();
    cycles.sort_unstable();
    whole.sort_unstable();
    let at = |p| percentile(&cycles, p).expect("bench: at least one iteration");
    let (median, p99) = (at(50), at(99));
    let c = cfg.scen == Scenario::C;
    let whole_median = percentile(&whole, 50).expect("bench: at least one iteration");
    let sync_mode = if !forced && arch::static_key::tlb_table_flush_implies_ipi_broadcast() {
        Sync::Skip
    } else {
        sync_of(row.form)
    };
    let line = Line {
        os: Os::GatherOS,
        smp: arch::cpus::online_count(),
        config: cfg,
        backend: backend(tlb::mmu().backend.kind()),
        sync: sync_mode,
        walkers,
        ns_median: arch::timer::cycles_to_ns(median),
        ns_p99: arch::timer::cycles_to_ns(p99),
        tlb_ipis_per_op: PerOp::of(tlb, opts.iters),
        cal_ipis_per_op: PerOp::of(cal, opts.iters),
        sync_ipis_per_op: PerOp::of(sync, opts.iters),
        tsc_median: median,
        tsc_p99: p99,
        iters: opts.iters,
        pt_freed_kb: pt_frames * 4 / opts.iters as u64,
        apic: apic(crate::smp::summary().mode),
        levels: 4,
        collapsed: None,
        idle: Some(row.idle),
        cycle_ns_median: c.then(|| arch::timer::cycles_to_ns(whole_median)),
        catchups_per_op: c.then(|| PerOp::of(catchups, opts.iters)),
        idle_left_per_op: c.then(|| PerOp::of(idle_left, opts.iters)),
    };
    log::info!("{line}");
}

/// Runs the benchmark matrix of this boot and prints one line per configuration, after
/// the walker's price and the unlink-to-free times.
pub fn run(opts: &BenchOptions) {
    // The race detector's poisoning of freed frames and the table quarantine stay out of
    // the timed operations: tables and pages go straight back to the allocator.
    mem::poison::set_debug_poison(false);
    log::info!("bench: debug-poison=off");
    let boot_form = tlb::FREER.form();
    let forms: Vec<SyncForm> = if opts.syncs.is_empty() {
        alloc::vec![boot_form]
    } else {
        opts.syncs.iter().map(|&s| form_of(s)).collect()
    };
    log::info!("{}", super::walk_cost::measure());
    let walker_counts: &[bool] = if opts.walkers.contains(&Walkers::All) && arch::cpus::count() > 1 {
        &[false, true]
    } else {
        &[false]
    };
    for &form in &forms {
        for &walkers in walker_counts {
            log::info!("{}", super::unlink_to_free::measure(form, walkers, opts.iters));
        }
    }
    let native = tlb::mmu().backend.kind() == mm::hw::BackendKind::NativeIpi;
    let boot_idle = sched::idle_policy();
    let idles: Vec<Idle> = if opts.idles.is_empty() {
        alloc::vec![boot_idle]
    } else {
        opts.idles.clone()
    };
    let total: usize = opts
        .ops
        .iter()
        .flat_map(|&op| opts.scenarios.iter().map(move |&scen| (op, scen)))
        .map(|(op, scen)| {
            Config::matrix(op, scen).count() * rows(opts, &forms, scen, native, (&idles, boot_idle)).len()
        })
        .sum();
    log::info!("bench: configurations={} iters={}", total, opts.iters);
    for &op in &opts.ops {
        for &scen in &opts.scenarios {
            for cfg in Config::matrix(op, scen) {
                for row in rows(opts, &forms, scen, native, (&idles, boot_idle)) {
                    measure(cfg, opts, row);
                }
            }
        }
    }
    tlb::FREER.set_form(boot_form);
    sched::set_idle_policy(boot_idle);
    log::info!("bench: done");
}
