//! The benchmark's options (`bench.ops=`, `bench.scen=`, `bench.iters=`, `bench.spin=`),
//! kept with the other options so that parsing them needs nothing of the benchmark.

extern crate alloc;
use alloc::vec::Vec;
use bench_spec::{Op, Scenario};

/// What to run (boot options `bench.ops=`, `bench.scen=`, `bench.iters=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Operations, in the order they run.
    pub ops: Vec<Op>,
    /// Scenarios, in the order they run.
    pub scenarios: Vec<Scenario>,
    /// Measured iterations (after [`bench_spec::warmup`] of them discarded).
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
            ops: Op::ALL.to_vec(),
            scenarios: Scenario::ALL.to_vec(),
            iters: bench_spec::DEFAULT_ITERS,
            spin_halts: true,
        }
    }
}
