//! `bench=smp`: cycles of an IPI round trip and of bringing all CPUs online.
//!
//! Prints `bench-smp: smp=<n> apic=<mode> online_cycles=<c> online_ms=<ms>
//! ipi_rtt_median=<c> ipi_rtt_p99=<c> ipi_rtt_median_ns=<ns> iters=<k>`: figures, never
//! assertions. The round trip is `call_on_cpu(last CPU, no-op)` timed with the TSC on
//! CPU 0 (send, remote interrupt, run, acknowledgement).

extern crate alloc;
use alloc::vec::Vec;
use arch::ipi::call_on_cpu;
use arch::stats::IpiReason;
use arch::timer::cycles_to_ns;
use bench_spec::percentile;

/// Measured iterations (after as many again discarded as warm-up, at most 50).
const ITERS: usize = 1000;

/// Runs the SMP benchmark and prints its line.
pub fn run() {
    let s = crate::smp::summary();
    let target = arch::cpus::count() - 1;
    let mut samples: Vec<u64> = Vec::with_capacity(ITERS);
    for i in 0..ITERS + 50 {
        let t0 = arch::cpu::rdtsc();
        call_on_cpu(target, IpiReason::Call, &|| {});
        let dt = arch::cpu::rdtsc() - t0;
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
