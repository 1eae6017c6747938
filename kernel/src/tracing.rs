//! The kernel's side of tracing (`trace=tlb`): switches the trace key on at boot, gives
//! the gate one ring per CPU and the clock (CPU index, TSC), and prints what was
//! recorded, one `trace-event:` line per event, on the serial port only (the screen
//! would take longer to draw them than the run took).
//!
//! Order at boot: [`enable`] before the APs start (the key is patched into the kernel's
//! text, which only the boot CPU may be running), [`install`] once the CPUs are known,
//! and recording is switched on only after that (by [`record_boot`] or by a run that
//! wants a part: the benchmark's traced op).

extern crate alloc;
use alloc::vec::Vec;

use trace::line::{Args, EventLine, LOST};

/// Events each CPU's ring keeps (the oldest are dropped and counted beyond).
pub const RING_EVENTS: usize = 8192;

/// Switches the trace key on: `trace=tlb`. Boot CPU, before the APs start.
pub fn enable() {
    assert!(
        trace::gate::compiled(),
        "trace=tlb: this kernel was built without tracing"
    );
    arch::static_key::enable_tracing();
    log::info!("trace: key on, {RING_EVENTS} events per CPU");
}

/// Whether this boot traces (`trace=tlb` switched the key on).
pub fn enabled() -> bool {
    trace::gate::key_enabled()
}

/// Gives the gate its rings, one per CPU, and its clock. After the CPUs are known.
pub fn install() {
    if enabled() {
        trace::gate::install(arch::cpus::count(), RING_EVENTS, clock);
    }
}

/// The gate's clock: the running CPU's index and its TSC.
pub(crate) fn clock() -> (usize, u64) {
    (arch::percpu::cpu_index(), arch::cpu::rdtsc())
}

/// A plain boot with `trace=tlb` records everything from here to [`dump`].
pub fn record_boot() {
    if enabled() {
        trace::gate::recording(true);
    }
}

/// Stops recording and prints every event recorded since recording was switched on, per
/// CPU, then the lost-events line of each CPU that lost any, after a line naming the run
/// (`trace-run: <what>`) and before `trace-run-end`.
pub fn dump(what: core::fmt::Arguments) {
    if !enabled() {
        return;
    }
    trace::gate::recording(false);
    arch::serial::write_fmt(format_args!(
        "trace-run: {what} tsc_hz={} cpus={}\n",
        arch::timer::tsc_hz(),
        arch::cpus::count()
    ));
    let rings = trace::gate::collect();
    for (events, _) in &rings {
        for rec in events {
            arch::serial::write_fmt(format_args!(
                "{}\n",
                EventLine(Args {
                    rec,
                    text: text_of(rec)
                })
            ));
        }
    }
    for (cpu, (_, lost)) in rings.iter().enumerate() {
        // `torn` counts both: events not whole when read and events never written (their
        // slot still held by a preempted writer of an earlier lap).
        if lost.overwritten + lost.torn + lost.busy > 0 {
            arch::serial::write_fmt(format_args!(
                "{LOST} cpu={cpu} overwritten={} torn={}\n",
                lost.overwritten,
                lost.torn + lost.busy
            ));
        }
    }
    arch::serial::write_fmt(format_args!("trace-run-end\n"));
}

/// The recorded events since recording was last switched on, merged in TSC order (for
/// the in-kernel tests), and how many the rings lost.
pub fn merged() -> (Vec<trace::Record>, u64) {
    let rings = trace::gate::collect();
    let lost = rings.iter().map(|(_, l)| l.overwritten + l.torn + l.busy).sum();
    let per_cpu: Vec<Vec<trace::Record>> = rings.into_iter().map(|(e, _)| e).collect();
    (trace::order::merge(&per_cpu), lost)
}

/// The text a [`trace::event::Fmt::Text`] argument of `rec` points to.
fn text_of(rec: &trace::Record) -> Option<&'static str> {
    let i = rec
        .kind
        .spec()
        .args
        .iter()
        .position(|(_, f)| *f == trace::event::Fmt::Text)?;
    let (ptr, len) = (rec.args[i] as *const u8, rec.args[i + 1] as usize);
    // SAFETY: a Text argument is recorded only by the kernel's own event sites, from a
    // `&'static str` (the watchdog's `what`): pointer and length of text that lives and
    // never changes for the whole run.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    core::str::from_utf8(bytes).ok()
}
