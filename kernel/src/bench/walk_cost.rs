//! The walker's own price (`walk-cost:` line, [`bench_spec::WalkCost`]): TSC cycles per
//! lock-free walk with the walk marker published ([`tlb::walk`]) and without it
//! ([`tlb::walk_unpublished`]), on CPU 0, of one mapped page of a fresh address space,
//! with no other CPU in it. Samples of the two kinds alternate (and which goes first
//! alternates too), so that drift and the host's load fall on both alike. The
//! difference is the marker's two stores and its fence (`mfence`): under TCG an
//! emulation of them, not a figure for hardware.

extern crate alloc;
use alloc::vec::Vec;
use bench_spec::{WalkCost, percentile};
use mm::walker::Walk;

use crate::user_space::{destroy, map_new_page};
use crate::{sched, tlb, user_space};

/// Samples of each kind.
const SAMPLES: usize = 1000;
/// Walks timed together in one sample.
const WALKS_PER_SAMPLE: usize = 64;
/// Samples of each kind run first and discarded.
const WARMUP: usize = 10;
const VA: u64 = 0x4000_0000;

/// Cycles per walk of `n` walks of `walk`.
fn per_walk(walk: &dyn Fn() -> Walk, n: usize) -> u64 {
    let t0 = arch::cpu::rdtsc();
    for _ in 0..n {
        let w = walk();
        debug_assert!(matches!(w, Walk::Page { .. }), "{w:?}");
    }
    (arch::cpu::rdtsc() - t0) / n as u64
}

/// Measures both kinds on this CPU (CPU 0, the benchmark's).
pub fn measure() -> WalkCost {
    let mm = user_space::new_address_space();
    map_new_page(mm, VA);
    sched::use_mm(Some(mm));
    let marked = || tlb::walk(mm, VA);
    let plain = || tlb::walk_unpublished(mm, VA);
    assert!(matches!(marked(), Walk::Page { .. }) && matches!(plain(), Walk::Page { .. }));
    let (mut m, mut p) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for i in 0..WARMUP + SAMPLES {
        let (a, b) = if i % 2 == 0 {
            let a = per_walk(&marked, WALKS_PER_SAMPLE);
            (a, per_walk(&plain, WALKS_PER_SAMPLE))
        } else {
            let b = per_walk(&plain, WALKS_PER_SAMPLE);
            (per_walk(&marked, WALKS_PER_SAMPLE), b)
        };
        if i >= WARMUP {
            m.push(a);
            p.push(b);
        }
    }
    sched::use_mm(None);
    destroy(mm);
    m.sort_unstable();
    p.sort_unstable();
    WalkCost {
        smp: arch::cpus::online_count(),
        backend: super::tlb::backend(tlb::mmu().backend.kind()),
        marker_cycles: percentile(&m, 50).unwrap_or(0),
        plain_cycles: percentile(&p, 50).unwrap_or(0),
        samples: SAMPLES,
        walks_per_sample: WALKS_PER_SAMPLE,
    }
}
