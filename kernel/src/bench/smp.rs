//! `bench=smp`: cycles of an IPI round trip and of bringing all CPUs online.
//!
//! Prints `bench-smp: smp=<n> apic=<mode> online_cycles=<c> online_ms=<ms>
//! ipi_rtt_median=<c> ipi_rtt_p99=<c> ipi_rtt_median_ns=<ns> iters=<k>`: figures, never
//! assertions. The round trip ([`round_trip`]) is an empty cross call to the last CPU
//! timed with the TSC on CPU 0 (send, remote interrupt, run, acknowledgement);
//! `bench=shootdown` times the same to several CPUs as its floor.

extern crate alloc;
use alloc::vec::Vec;
use arch::ipi::call_on_many;
use arch::stats::IpiReason;
use arch::timer::cycles_to_ns;
use bench_spec::percentile;
use mm::cpumask::CpuMask;

/// Measured iterations (after as many again discarded as warm-up, at most 50).
const ITERS: usize = 1000;

/// TSC cycles of one empty cross call to `targets` (other CPUs), from before the send
/// to the last acknowledgement.
pub fn round_trip(targets: &CpuMask) -> u64 {
    let t0 = arch::cpu::rdtsc();
    call_on_many(targets, IpiReason::Call, &|| {});
    arch::cpu::rdtsc() - t0
}

/// Runs the SMP benchmark and prints its line.
pub fn run() {
    let s = crate::smp::summary();
    let target = CpuMask::from_iter([arch::cpus::count() - 1]);
    let mut samples: Vec<u64> = Vec::with_capacity(ITERS);
    for i in 0..ITERS + 50 {
        let dt = round_trip(&target);
        if i >= 50 {
            samples.push(dt);
        }
    }
    samples.sort_unstable();
    let at = |p| percentile(&samples, p).expect("bench-smp: samples");
    let median = at(50);
    log::info!(
        "bench-smp: smp={} apic={} online_cycles={} online_ms={} ipi_rtt_median={} ipi_rtt_p99={} ipi_rtt_median_ns={} iters={}",
        s.online,
        s.mode.name(),
        s.start_cycles,
        cycles_to_ns(s.start_cycles) / 1_000_000,
        median,
        at(99),
        cycles_to_ns(median),
        ITERS
    );
}
