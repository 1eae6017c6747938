//! `bench=shootdown` (issue 24): one TLB shootdown round as its initiator sees it, in the
//! three ways a round can run, in one boot ([`bench_spec::Shootdown`] lines).
//!
//! For each target count k in 1..N-1 (N CPUs online), a fresh user address space has a
//! task on CPUs 1..=k ([`super::spinners`], halting between interrupts: loaded, not lazy,
//! so each is a flush target) and CPU 0 switched to it; the other CPUs are idle and never
//! held it. For each flush size of [`bench_spec::SHOOTDOWN_PAGES`] (4 KiB stride, no freed
//! tables; 512 pages is above mm's `FLUSH_CEILING` and runs as a full flush), one
//! iteration measures, in an order that rotates with the iteration (so that drift and
//! the host's load fall on all alike):
//!
//! - a round in each mode, serial, concurrent and early (`tlb::set_round_mode`, the
//!   boot's mode restored at the end): TSC cycles around `flush_tlb_mm_range` alone;
//! - the floor: an empty cross call to the same k CPUs ([`super::smp::round_trip`]).
//!
//! After each round (untimed) an empty cross call to the k CPUs makes sure each has left
//! the round's handler, so that its counters are read complete: an early responder counts
//! its acknowledgement after acknowledging. Per round the initiator must count k flush
//! IPIs (`TlbEvent::FlushIpi`) in every mode and the responders k early acknowledgements
//! (`TlbEvent::EarlyAcks`) in early mode, none in the others
//! ([`bench_spec::FlushRound::check`]): a mismatch fails the boot after its lines, saying
//! what was counted. Lines: per k and size, one per mode with its median and its ratio to
//! the serial median; per k, the round trip's median over the samples of all three sizes.
//! Medians over `bench.iters=` iterations (default
//! [`bench_spec::SHOOTDOWN_DEFAULT_ITERS`]) after [`bench_spec::warmup`] more discarded.
//! Under TCG the cycles are emulated time: figures, never assertions.

extern crate alloc;
use alloc::string::String;
use alloc::vec::Vec;
use bench_spec::{FlushRound, PerOp, RoundTrip, SHOOTDOWN_PAGES, ShootdownMode, percentile, ratio};
use mm::addr::VirtAddr;
use mm::addr_space::AddressSpace;
use mm::cpumask::CpuMask;
use mm::level::Level;
use mm::round::RoundMode;
use mm::stats::TlbEvent;

use super::smp::round_trip;
use super::spinners::Spinners;
use crate::user_space::{destroy, new_address_space};
use crate::{sched, tlb};

/// The first page flushed.
const BASE: u64 = 0x4000_0000;

/// The round mode a line's mode names.
fn round_mode(mode: ShootdownMode) -> RoundMode {
    match mode {
        ShootdownMode::Serial => RoundMode::SERIAL,
        ShootdownMode::Concurrent => RoundMode::CONCURRENT,
        ShootdownMode::Early => RoundMode::EARLY,
    }
}

/// One flush round of `pages` pages of `mm` in `mode`: its cycles on this CPU, and the
/// flush IPIs and early acknowledgements it counted (read after a cross call to
/// `targets` that each target answers once out of the round's handler).
fn flush_round(mm: &AddressSpace, pages: u64, mode: ShootdownMode, targets: &CpuMask) -> (u64, u64, u64) {
    tlb::set_round_mode(round_mode(mode));
    let mmu = tlb::mmu();
    let mut on = tlb::irqs_on("flushes for the shootdown benchmark");
    let (start, end) = (VirtAddr::new(BASE), VirtAddr::new(BASE + pages * 4096));
    let before = tlb::STATS.total();
    let t0 = arch::cpu::rdtsc();
    mmu.flush_tlb_mm_range(&mut on, mm, start, end, Level::Pte, false);
    let dt = arch::cpu::rdtsc() - t0;
    round_trip(targets);
    let d = tlb::STATS.total() - before;
    (dt, d.get(TlbEvent::FlushIpi), d.get(TlbEvent::EarlyAcks))
}

/// What one (targets, pages) configuration measured.
struct Samples {
    /// Cycles per round, per mode (in [`ShootdownMode::ALL`]'s order).
    cycles: [Vec<u64>; 3],
    /// Flush IPIs and early acknowledgements summed over the measured rounds, per mode.
    counts: [(u64, u64); 3],
}

/// Measures `pages` pages to `targets` (whose tasks run `mm`), adding the round trips to
/// `trips`.
fn measure(mm: &AddressSpace, pages: u64, targets: &CpuMask, iters: usize, trips: &mut Vec<u64>) -> Samples {
    let modes = ShootdownMode::ALL;
    let mut s = Samples {
        cycles: core::array::from_fn(|_| Vec::with_capacity(iters)),
        counts: [(0, 0); 3],
    };
    let warmup = bench_spec::warmup(iters);
    for i in 0..warmup + iters {
        // Three modes and the round trip, starting one further each iteration.
        for j in 0..=modes.len() {
            let kind = (i + j) % (modes.len() + 1);
            if kind == modes.len() {
                let dt = round_trip(targets);
                if i >= warmup {
                    trips.push(dt);
                }
                continue;
            }
            let (dt, ipis, acks) = flush_round(mm, pages, modes[kind], targets);
            if i >= warmup {
                s.cycles[kind].push(dt);
                s.counts[kind].0 += ipis;
                s.counts[kind].1 += acks;
            }
        }
    }
    s
}

/// Runs the benchmark and prints its lines; the error lists the rounds that counted
/// wrong (also logged).
pub fn run(iters: usize) -> Result<(), String> {
    let smp = arch::cpus::online_count();
    let boot_mode = tlb::round_mode();
    log::info!(
        "bench: shootdown smp={smp} iters={iters} pages={:?} boot_round={}",
        SHOOTDOWN_PAGES,
        boot_mode.name()
    );
    let mut wrong = Vec::new();
    for k in 1..smp {
        let mm = new_address_space();
        let spinners = Spinners::start(mm, 1..=k, true, |_| false);
        sched::use_mm(Some(mm));
        let targets: CpuMask = (1..=k).collect();
        let mut trips = Vec::with_capacity(iters * SHOOTDOWN_PAGES.len());
        for pages in SHOOTDOWN_PAGES {
            let mut s = measure(mm, pages, &targets, iters, &mut trips);
            let medians: Vec<u64> = s
                .cycles
                .iter_mut()
                .map(|c| {
                    c.sort_unstable();
                    percentile(c, 50).expect("bench: at least one iteration")
                })
                .collect();
            for (m, &mode) in ShootdownMode::ALL.iter().enumerate() {
                let line = FlushRound {
                    smp,
                    pages,
                    targets: k,
                    mode,
                    cycles_median: medians[m],
                    ratio_to_serial: ratio(medians[m], medians[0]),
                    ipis_per_round: PerOp::of(s.counts[m].0, iters),
                    early_acks_per_round: PerOp::of(s.counts[m].1, iters),
                    iters,
                };
                log::info!("{line}");
                if let Err(e) = line.check() {
                    wrong.push(alloc::format!("pages={pages} targets={k} mode={mode}: {e}"));
                }
            }
        }
        trips.sort_unstable();
        let trip = RoundTrip {
            smp,
            targets: k,
            cycles_median: percentile(&trips, 50).expect("bench: at least one iteration"),
            iters: trips.len(),
        };
        log::info!("{trip}");
        sched::use_mm(None);
        spinners.stop();
        destroy(mm);
    }
    tlb::set_round_mode(boot_mode);
    for w in &wrong {
        log::error!("bench-shootdown: {w}");
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(alloc::format!("{} configurations counted wrong", wrong.len()))
    }
}
