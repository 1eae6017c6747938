//! An exhaustive model checker of x86-TSO, with a loom-like API, so that code written
//! against these atomics (mm's, through `mm/src/sync.rs` under `--cfg tso`) runs under
//! what an x86 CPU does with each instruction Rust emits for it.
//!
//! Why a crate of our own: loom checks Rust's memory model (C++11), which allows more
//! than x86 does and says nothing of which instruction a store becomes; no well-kept
//! crate models x86-TSO for Rust code (the TSO tools are litmus-test runners and
//! theorem-prover models of their own languages). This one is small on purpose:
//! correctness over speed, for two or three threads with a handful of operations each.
//!
//! # The machine (x86-TSO)
//!
//! Each model thread is a CPU with its own FIFO store buffer; memory is one value per
//! atomic. What each operation is on x86 (what Rust emits for it):
//! - every load, any ordering: a plain `mov`: the newest entry for that location in the
//!   CPU's own store buffer, else memory;
//! - a store with `Relaxed` or `Release`: a plain `mov`: appended to the store buffer;
//! - a store with `SeqCst`: `xchg`, a locked instruction;
//! - every read-modify-write (`swap`, `fetch_*`, `compare_exchange*`), any ordering: a
//!   locked instruction: it waits until the CPU's buffer has drained, then reads and
//!   writes memory in one step (a failed `compare_exchange` too: `lock cmpxchg`);
//! - `fence(SeqCst)`: `mfence`: waits until the CPU's buffer has drained; the other
//!   fences emit no instruction.
//!
//! A buffer drains its oldest entry to memory at any moment: a scheduling choice.
//!
//! # Exploration
//!
//! [`model`] runs its closure again and again, one execution per choice sequence, until
//! every choice has been explored (depth-first, replaying the prefix). A choice is either
//! "CPU t runs its next load or locked instruction" or "CPU t's buffer drains its oldest
//! entry". Everything else a thread does (its code between operations, a store into its
//! own buffer, a fence with an empty buffer) touches nothing another CPU can see, so it
//! runs without a choice. Sleep sets (Godefroid) prune orders of steps that commute (two
//! loads; steps on different locations of different CPUs): every execution that differs
//! in what some load reads, or in the order of writes to a location, is still explored.
//!
//! Spin loops must call [`hint::spin_loop`] once per iteration: the thread is then parked
//! until some write reaches memory (before that, the loop would read the same values
//! again), which keeps executions finite. If no thread can move and some have not
//! finished, the execution is a deadlock: a failure.
//!
//! # Failures
//!
//! A panic in any model thread (a failed assertion), a deadlock, or an execution longer
//! than [`MAX_STEPS`] ends the check: [`model`] panics with the message and the trace of
//! that execution: every operation, which value each load read and from where, and when
//! each buffer entry drained.
//!
//! # Example: the store-buffer litmus
//!
//! ```
//! use std::sync::Arc;
//! use tso::sync::atomic::{AtomicU64, Ordering::Relaxed};
//!
//! let found = std::panic::catch_unwind(|| {
//!     tso::model(|| {
//!         let (x, y) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
//!         let (x1, y1) = (x.clone(), y.clone());
//!         let t = tso::thread::spawn(move || {
//!             y1.store(1, Relaxed);
//!             x1.load(Relaxed)
//!         });
//!         x.store(1, Relaxed);
//!         let r0 = y.load(Relaxed);
//!         let r1 = t.join().unwrap();
//!         assert!(!(r0 == 0 && r1 == 0), "both loads read 0");
//!     })
//! });
//! assert!(found.is_err()); // x86 allows it: both stores still in their buffers
//! ```
//!
//! # Rules for the code under test
//!
//! - It must be deterministic given the values its loads return (no clocks, no
//!   randomness, no other shared state between model threads).
//! - Only the model's first thread (`cpu0`, the closure given to [`model`]) spawns.
//! - An atomic keeps, outside a model, the value it had when made (or was given outside);
//!   each execution starts from that value: state built before [`model`] is the initial
//!   state of every execution.

mod cell;
mod exec;
mod explore;
pub mod hint;
mod pool;
pub mod sync;
pub mod thread;

use std::sync::Arc;

pub use exec::{MAX_CPUS, MAX_STEPS};

/// What [`model`] explored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explored {
    /// Executions run to the end (every thread finished).
    pub executions: usize,
    /// Executions cut short because every way on had been explored already (sleep sets).
    pub redundant: usize,
}

impl core::fmt::Display for Explored {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} executions ({} more cut short as redundant)",
            self.executions, self.redundant
        )
    }
}

/// Runs `f` (as `cpu0`, which may spawn more CPUs with [`thread::spawn`]) in every
/// execution x86-TSO allows; panics with the trace of the first failing one.
pub fn model<F>(f: F) -> Explored
where
    F: Fn() + Send + Sync + 'static,
{
    explore(false, f)
}

/// Runs a check that must fail (a litmus outcome x86-TSO allows, a weakened twin) and
/// returns its failure message, the failing execution's trace; panics if it passes.
pub fn must_fail(check: impl FnOnce() -> Explored + std::panic::UnwindSafe) -> String {
    match std::panic::catch_unwind(check) {
        Ok(e) => panic!("the check passed ({e}): it should have failed"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(a panic without a message)".into()),
    }
}

/// As [`model`], without pruning equivalent executions: every order of every step (for
/// the checker's own tests, which compare the two).
#[doc(hidden)]
pub fn model_every_order<F>(f: F) -> Explored
where
    F: Fn() + Send + Sync + 'static,
{
    explore(true, f)
}

fn explore<F>(no_reduction: bool, f: F) -> Explored
where
    F: Fn() + Send + Sync + 'static,
{
    let f = Arc::new(f);
    exec::explore(no_reduction, move || {
        let f = f.clone();
        Box::new(move || f())
    })
}

/// The thread that called [`model`], for code inside a model that looks up settings the
/// test made on its own thread (`mm`'s weakened ordering sites); outside a model, the
/// current thread.
pub fn model_owner() -> std::thread::ThreadId {
    exec::owner().unwrap_or_else(|| std::thread::current().id())
}
