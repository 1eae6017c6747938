//! The benchmark's options (`bench.ops=`, `bench.scen=`, `bench.iters=`, `bench.spin=`,
//! `bench.syncs=`, `bench.walkers=`, `bench.idle=`), kept with the other options so that parsing them
//! needs nothing of the benchmark.

extern crate alloc;
use alloc::vec::Vec;
use bench_spec::{Idle, Op, Scenario, Sync, Walkers};

/// What to run (boot options `bench.ops=`, `bench.scen=`, `bench.iters=`, `bench.spin=`,
/// `bench.syncs=`, `bench.walkers=`, `bench.idle=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Operations, in the order they run.
    pub ops: Vec<Op>,
    /// Scenarios, in the order they run.
    pub scenarios: Vec<Scenario>,
    /// Measured iterations (after [`bench_spec::warmup`] of them discarded).
    pub iters: usize,
    /// `bench=shootdown`'s measured rounds per configuration: `bench.iters=` too, but
    /// [`bench_spec::SHOOTDOWN_DEFAULT_ITERS`] without it.
    pub shootdown_iters: usize,
    /// Scenario A's tasks wait for interrupts (`hlt`) in their loop instead of spinning
    /// (`bench.spin=halt|busy`). Either way each stays the running task of the address
    /// space on its CPU (not lazy), so every flush must interrupt it; halting keeps
    /// emulated CPUs from taking the host cores that CPU 0 needs under TCG.
    pub spin_halts: bool,
    /// The sync forms measured, each set at run time (`bench.syncs=`, comma-separated
    /// `broadcast`, `targeted`, `wait`; never `skip`). Empty: the boot's `tlb.sync=` form.
    pub syncs: Vec<Sync>,
    /// Walker counts measured (`bench.walkers=0,all`): with `all`, scenario A is measured
    /// once more with its tasks walking the address space lock-free.
    pub walkers: Vec<Walkers>,
    /// Idle policies scenario C is measured with, each set at run time (`bench.idle=`,
    /// comma-separated `never`, `deep`, `always`). Empty: the boot's `idle.leave_mm=`.
    /// Scenarios A and B are measured once, with the boot's.
    pub idles: Vec<Idle>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            ops: Op::ALL.to_vec(),
            scenarios: Scenario::ALL.to_vec(),
            iters: bench_spec::DEFAULT_ITERS,
            shootdown_iters: bench_spec::SHOOTDOWN_DEFAULT_ITERS,
            spin_halts: true,
            syncs: Vec::new(),
            walkers: alloc::vec![Walkers::None],
            idles: Vec::new(),
        }
    }
}
