//! `bench=tlb`: the table-freeing operations measured the way `/proc/interrupts` would
//! show them in Linux, one machine-readable line per configuration:
//!
//! `gatherOS smp=<n> scen=<A|B|C> pages=<P> tables=<free|keep> op=<op> backend=<native|pv>
//! sync=<skip|ipi> ns_median=.. ns_p99=.. tlb_ipis_per_op=.. cal_ipis_per_op=..
//! sync_ipis_per_op=.. tsc_median=.. tsc_p99=.. iters=.. pt_freed_kb=.. apic=.. levels=4`
//!
//! Every op runs on CPU 0 in a fresh address space, on a 2 MiB-aligned region. Scenarios:
//! A, a task of the address space runs on every other CPU (it halts between interrupts
//! or spins, `bench.spin=`; either way it is not lazy); B, the other CPUs are idle
//! and never held it; C, before each op a task of it runs briefly on every other CPU and
//! ends, so those CPUs hold it lazily. Modes: the sync as the static key decides, and
//! forced (`tlb.table_sync=always`). Time is the TSC around the op alone; IPI counts are
//! the per-CPU interrupt counters' deltas over the op alone, summed over CPUs.
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
use core::sync::atomic::{AtomicBool, Ordering};
use mm::addr_space::AddressSpace;
use mm::stats::TlbEvent;
use mm::table_free::SyncMode;

use crate::mem::phys::MEM;
use crate::sched;
use crate::user_space::{destroy, map_new_page as map_page, unmap};
use crate::{mem, tlb, user_space};

const BASE: u64 = 0x4000_0000;
const SHARED_VA: u64 = (3 << 30) | (1 << 21) | (1 << 12);

/// What to run (boot options `bench.ops=`, `bench.scen=`, `bench.iters=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Operations: `unmap`, `unmap-nobatch`, `collapse`, `unshare`.
    pub ops: Vec<&'static str>,
    /// Scenarios: `A`, `B`, `C`.
    pub scenarios: Vec<&'static str>,
    /// Measured iterations (after min(50, iters) discarded).
    pub iters: usize,
    /// Scenario A's tasks wait for interrupts (`hlt`) in their loop instead of spinning
    /// (`bench.spin=halt|busy`). Either way each stays the running task of the address
    /// space on its CPU (not lazy), so every flush must interrupt it; halting keeps
    /// emulated CPUs from taking the host cores that CPU 0 needs under TCG.
    pub spin_halts: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            ops: alloc::vec!["unmap", "unmap-nobatch", "collapse", "unshare"],
            scenarios: alloc::vec!["A", "B", "C"],
            iters: 1000,
            spin_halts: true,
        }
    }
}

/// One measured configuration.
#[derive(Clone, Copy)]
struct Config {
    op: &'static str,
    scen: &'static str,
    pages: u64,
    keep: bool,
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
        "unmap" | "unmap-nobatch" => {
            for p in 0..cfg.pages {
                map_page(mm, BASE + p * 4096);
                // SAFETY: just mapped in the running task's address space.
                unsafe { core::ptr::write_volatile((BASE + p * 4096) as *mut u8, 1) };
            }
            if cfg.keep {
                map_page(mm, BASE + 511 * 4096);
            }
        }
        "collapse" => (0..512).for_each(|p| {
            map_page(mm, BASE + p * 4096);
        }),
        _ => {
            mm::share::share_pmd_table(&MEM, owner, mm, SHARED_VA).expect("bench: share");
        }
    }
}

/// The measured operation.
fn op(cfg: Config, mm: &'static AddressSpace) {
    match cfg.op {
        "unmap" | "unmap-nobatch" => unmap(mm, BASE, BASE + cfg.pages * 4096),
        "collapse" => {
            let _g = mm.pt_lock.lock();
            mm::collapse::collapse(&tlb::gather_ctx(), mm, BASE).expect("bench: collapse");
        }
        _ => {
            mm::share::unshare_pmd_table(&tlb::gather_ctx(), mm, SHARED_VA).expect("bench: unshare");
        }
    }
}

/// Undoes what `setup` + `op` left (not measured).
fn cleanup(cfg: Config, mm: &'static AddressSpace) {
    match cfg.op {
        "collapse" => unmap(mm, BASE, BASE + (2 << 20)),
        "unmap" | "unmap-nobatch" if cfg.keep => unmap(mm, BASE, BASE + (2 << 20)),
        _ => {}
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    crate::bench::smp::percentile(sorted, p)
}

fn measure(cfg: Config, opts: &BenchOptions, forced: bool) {
    let mm = user_space::new_address_space();
    let owner = user_space::new_address_space();
    if cfg.op == "unshare" {
        map_page(owner, SHARED_VA);
    }
    if cfg.op.starts_with("unmap") && !cfg.keep {
        // A separate mapping 4 MiB above keeps the level-2 table: one PTE table is freed.
        map_page(mm, BASE + (4 << 20));
    }
    tlb::FREER.set_mode(if forced {
        SyncMode::Always
    } else {
        SyncMode::Decided
    });
    tlb::FREER.set_batch_allocation_fails(cfg.op == "unmap-nobatch");
    static STOP: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Ordering::SeqCst);
    let others = 1..arch::cpus::count();
    let pv = tlb::mmu().backend.kind() == mm::hw::BackendKind::Paravirt;
    let spinners: Vec<_> = if cfg.scen == "A" {
        others
            .clone()
            .map(|c| {
                let halts = opts.spin_halts;
                let preempted = pv && c % 2 == 1;
                sched::spawn("bench-spinner", c, Some(mm), move || {
                    if preempted {
                        arch::pv_host::enter_preempted();
                    }
                    while !STOP.load(Ordering::Relaxed) {
                        if halts {
                            arch::cpu::wait_for_interrupt();
                        } else {
                            core::hint::spin_loop();
                        }
                    }
                    if preempted {
                        arch::pv_host::leave_preempted();
                    }
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    sched::use_mm(Some(mm));
    let warmup = opts.iters.min(50);
    let mut cycles = Vec::with_capacity(opts.iters);
    let (mut tlb, mut cal, mut sync, mut pt_frames) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..warmup + opts.iters {
        setup(cfg, mm, owner);
        if cfg.scen == "C" {
            let visits: Vec<_> = others
                .clone()
                .map(|c| sched::spawn("bench-visit", c, Some(mm), || {}))
                .collect();
            visits.into_iter().for_each(|v| v.join(10_000));
        }
        let before_ipis = ipi_sums();
        let before_tables = tlb::STATS.total();
        let t0 = arch::cpu::rdtsc();
        op(cfg, mm);
        let dt = arch::cpu::rdtsc() - t0;
        let after_ipis = ipi_sums();
        let d = tlb::STATS.total() - before_tables;
        cleanup(cfg, mm);
        if i >= warmup {
            cycles.push(dt);
            tlb += after_ipis.0 - before_ipis.0;
            cal += after_ipis.1 - before_ipis.1;
            sync += after_ipis.2 - before_ipis.2;
            // Batched tables are counted when queued (their grace period ends later);
            // fallback, collapse and unshare free at once.
            pt_frames += if cfg.op == "unmap" {
                d.get(TlbEvent::TablesDeferred)
            } else {
                d.get(TlbEvent::TablesFreed)
            };
        }
    }
    sched::use_mm(None);
    STOP.store(true, Ordering::SeqCst);
    spinners.into_iter().for_each(|s| s.join(10_000));
    destroy(mm);
    destroy(owner);
    tlb::FREER.set_mode(SyncMode::Decided);
    tlb::FREER.set_batch_allocation_fails(false);
    tlb::settle();
    cycles.sort_unstable();
    let n = opts.iters as f64;
    let (median, p99) = (percentile(&cycles, 50), percentile(&cycles, 99));
    let sync_mode = if !forced && arch::static_key::tlb_table_flush_implies_ipi_broadcast() {
        "skip"
    } else {
        "ipi"
    };
    log::info!(
        "gatherOS smp={} scen={} pages={} tables={} op={} backend={} sync={} ns_median={} ns_p99={} tlb_ipis_per_op={:.2} cal_ipis_per_op={:.2} sync_ipis_per_op={:.2} tsc_median={} tsc_p99={} iters={} pt_freed_kb={} apic={} levels=4",
        arch::cpus::online_count(),
        cfg.scen,
        cfg.pages,
        if cfg.keep { "keep" } else { "free" },
        cfg.op,
        tlb::mmu().backend.kind().name(),
        sync_mode,
        arch::timer::cycles_to_ns(median),
        arch::timer::cycles_to_ns(p99),
        tlb as f64 / n,
        cal as f64 / n,
        sync as f64 / n,
        median,
        p99,
        opts.iters,
        pt_frames * 4 / opts.iters as u64,
        crate::smp::summary().mode.name()
    );
}

fn configs(op: &'static str, scen: &'static str) -> Vec<Config> {
    match op {
        "unmap" | "unmap-nobatch" => alloc::vec![
            Config {
                op,
                scen,
                pages: 512,
                keep: false
            },
            Config {
                op,
                scen,
                pages: 1,
                keep: false
            },
            Config {
                op,
                scen,
                pages: 510,
                keep: true
            },
        ],
        "collapse" => alloc::vec![Config {
            op,
            scen,
            pages: 512,
            keep: false
        }],
        _ => alloc::vec![Config {
            op,
            scen,
            pages: 1,
            keep: false
        }],
    }
}

/// Runs the benchmark matrix of this boot and prints one line per configuration.
pub fn run(opts: &BenchOptions) {
    // The race detector's poisoning of freed frames and the table quarantine stay out of
    // the timed operations: tables and pages go straight back to the allocator.
    mem::poison::set_debug_poison(false);
    log::info!("bench: debug-poison=off");
    let native = tlb::mmu().backend.kind() == mm::hw::BackendKind::NativeIpi;
    let total: usize = opts.ops.iter().map(|o| configs(o, "A").len()).sum::<usize>() * opts.scenarios.len();
    log::info!(
        "bench: configurations={} iters={}",
        total * if native { 2 } else { 1 },
        opts.iters
    );
    for &op_name in &opts.ops {
        for &scen in &opts.scenarios {
            for cfg in configs(op_name, scen) {
                measure(cfg, opts, false);
                if native {
                    measure(cfg, opts, true);
                }
            }
        }
    }
    log::info!("bench: done");
}
