//! Whether events are recorded, and where they go.
//!
//! Three gates, cheapest first:
//! 1. the `compiled` feature: without it [`on`] is `false` at compile time and every
//!    [`event!`](crate::event!) site is gone (the build the benchmark compares against);
//! 2. the static key [`TRACING`]: each site is a 5-byte NOP that jumps over the event
//!    until the kernel enables the key, once, at boot, before the APs start (`trace=tlb`),
//!    the same mechanism as the table-sync decision (`arch::static_key`); so a kernel
//!    with tracing compiled in but off runs the same instructions plus NOPs;
//! 3. [`recording`]: with the key on, an atomic flag that a run switches on around the
//!    part it wants to see (the `trace` command's one operation).
//!
//! [`install`] gives the gate its rings (one per CPU) and its clock (which CPU is running,
//! and its TSC), once the CPUs are known (after the key is enabled: the key must be
//! patched before the APs start); [`record`] finds no sink until then and records
//! nothing, and recording is switched on only after it.

extern crate alloc;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::event::{ARGS, Kind, Record};
use crate::ring::{Lost, Ring};

/// The static key: off until the kernel enables it at boot (`trace=tlb`).
pub static TRACING: static_keys::StaticFalseKey = static_keys::new_static_false_key();

static RECORDING: AtomicBool = AtomicBool::new(false);

/// The running CPU's index and TSC.
pub type Clock = fn() -> (usize, u64);

struct Sink {
    rings: Box<[Ring]>,
    clock: Clock,
    /// Per ring, the event number a [`collect`] reads from (set by [`recording`]`(true)`).
    since: spin::Mutex<Vec<u64>>,
}

static SINK: spin::Once<Sink> = spin::Once::new();

/// Gives the gate a ring of `capacity` events for each of `cpus` CPUs and its clock. Once,
/// before the key is enabled.
pub fn install(cpus: usize, capacity: usize, clock: Clock) {
    SINK.call_once(|| Sink {
        rings: (0..cpus).map(|_| Ring::new(capacity)).collect(),
        clock,
        since: spin::Mutex::new(alloc::vec![0; cpus]),
    });
}

/// Whether an event site records: the key is on and recording is switched on.
#[inline(always)]
pub fn on() -> bool {
    #[cfg(feature = "compiled")]
    {
        // SAFETY: (inside the macro) the key is a static that lives for the whole run.
        static_keys::static_branch_unlikely!(TRACING) && RECORDING.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "compiled"))]
    {
        false
    }
}

/// Whether tracing is compiled into this build.
pub const fn compiled() -> bool {
    cfg!(feature = "compiled")
}

/// Whether the key has been switched on (tracing available in this boot).
pub fn key_enabled() -> bool {
    compiled() && TRACING.is_enabled()
}

/// Switches recording on (from now; earlier events are left out of [`collect`]) or off.
pub fn recording(on: bool) {
    if on && let Some(sink) = SINK.get() {
        let mut since = sink.since.lock();
        for (s, r) in since.iter_mut().zip(sink.rings.iter()) {
            *s = r.written();
        }
    }
    // Relaxed: a switch, not a publication; the rings are installed before the key is on.
    RECORDING.store(on, Ordering::Relaxed);
}

/// Records one event on the running CPU. Called by [`event!`](crate::event!) after [`on`].
#[inline(never)]
pub fn record(kind: Kind, args: [u64; ARGS]) {
    let Some(sink) = SINK.get() else { return };
    let (cpu, tsc) = (sink.clock)();
    if let Some(ring) = sink.rings.get(cpu) {
        ring.push(&Record {
            cpu: cpu as u32,
            tsc,
            kind,
            args,
        });
    }
}

/// Every event recorded since recording was last switched on, per CPU, oldest first, and
/// what each CPU's ring could not return.
pub fn collect() -> Vec<(Vec<Record>, Lost)> {
    let Some(sink) = SINK.get() else { return Vec::new() };
    let since = sink.since.lock();
    sink.rings
        .iter()
        .zip(since.iter())
        .map(|(ring, &s)| {
            let mut out = Vec::new();
            let lost = ring.read_since(s, &mut out);
            (out, lost)
        })
        .collect()
}

/// Records an event if tracing is on: `event!(Kind, a, b, ...)`, each argument converted
/// with `as u64`. The arguments are evaluated only when the event is recorded.
#[macro_export]
macro_rules! event {
    ($kind:ident $(, $arg:expr)* $(,)?) => {
        $crate::event_if!($crate::gate::on(), $kind $(, $arg)*)
    };
}

/// [`event!`] with the gate read earlier: `event_if!(traced, Kind, a, ...)` records if
/// `traced` (a `bool` from [`on`]). For per-entry sites in loops (an unmap clears up to
/// 512 entries per table): each [`on`] is a static-key site, and the `static-keys`
/// crate's `asm!` is an optimisation barrier for the compiler (it may read and write
/// memory), so the loop reads the gate once per gather instead of once per entry.
#[macro_export]
macro_rules! event_if {
    ($on:expr, $kind:ident $(, $arg:expr)* $(,)?) => {
        if $on {
            $crate::gate::record($crate::event::Kind::$kind, $crate::gate::args(&[$($arg as u64),*]));
        }
    };
}

/// Pads `given` with zeros to [`ARGS`] words.
#[inline(always)]
pub fn args(given: &[u64]) -> [u64; ARGS] {
    core::array::from_fn(|i| given.get(i).copied().unwrap_or(0))
}
