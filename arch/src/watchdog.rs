//! The watchdog on every wait that depends on another CPU, after Linux's
//! `CONFIG_CSD_LOCK_WAIT_DEBUG` (`csd_lock_wait_toolong`): a waiter that has waited
//! longer than the bound reports what it waits for and which CPUs have not answered,
//! asks each of them by NMI what it is doing (an NMI gets through with interrupts off),
//! sends a cross-call waiter's targets their IPI again, and then fails the run.
//!
//! Protocol:
//! - A wait calls [`Wait::start`] once and [`Wait::check`] on every round; `check` reads
//!   the TSC and, before the bound, costs nothing more. The laggards are computed only
//!   when the bound has passed (the caller's closure).
//! - Report: the waiter prints `watchdog: cpu=.. waited_ms=.. for=.. at=.. laggards=..`,
//!   sets each laggard's `wanted` flag (SeqCst) and sends it an NMI. The laggard's NMI
//!   hook sees the flag (SeqCst swap), prints
//!   `watchdog: cpu=.. rip=.. if=.. cr3=.. ticks=.. queued_calls=..` for the context the
//!   NMI interrupted and bumps `answered`. The waiter waits up to 500 ms for the answers.
//!   Printing breaks the serial lock (the laggard may hold it; the run is ending anyway).
//! - Then the waiter panics (the default), or, with [`set_fatal`]`(false)` (tests only),
//!   returns and keeps waiting: the tests heal the fault they injected and check that the
//!   report happened. Each wait reports once.

use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use mm::cpumask::CpuMask;

use crate::cpus;
use crate::percpu::{self, with_lapic};

/// Default bound on a wait for other CPUs (`watchdog.ms=`).
pub const DEFAULT_BOUND_MS: u64 = 10_000;

static BOUND_MS: AtomicU64 = AtomicU64::new(DEFAULT_BOUND_MS);
static FATAL: AtomicBool = AtomicBool::new(true);
/// Reports made (waits that passed the bound).
static REPORTS: AtomicU64 = AtomicU64::new(0);
/// Reports under way (their NMIs may still arrive after the request they answer was
/// served by an earlier NMI: those are the watchdog's too, not "unexpected").
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// Whether a watchdog report is under way (the NMI handler's second question).
pub fn report_in_flight() -> bool {
    IN_FLIGHT.load(Ordering::SeqCst) > 0
}
/// The laggards of the latest report (for tests).
static LAST_LAGGARDS: spin::Mutex<CpuMask> = spin::Mutex::new(CpuMask::new());

/// A laggard's answer to the watchdog's NMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// NMIs this CPU answered so far.
    pub count: u64,
    /// Where it was when the last one came.
    pub rip: u64,
    /// Whether interrupts were enabled there.
    pub interrupts_enabled: bool,
}

/// CPU `cpu`'s answers so far.
pub fn answer(cpu: usize) -> Answer {
    let w = &cpus::get(cpu).watchdog;
    Answer {
        count: w.answered.load(Ordering::SeqCst),
        rip: w.last_rip.load(Ordering::SeqCst),
        interrupts_enabled: w.last_if.load(Ordering::SeqCst),
    }
}

/// Sets the bound (boot option `watchdog.ms=`; tests shorten it).
pub fn set_bound_ms(ms: u64) {
    BOUND_MS.store(ms.max(1), Ordering::SeqCst);
}

/// The bound in milliseconds.
pub fn bound_ms() -> u64 {
    BOUND_MS.load(Ordering::SeqCst)
}

/// Whether a report fails the run (the default) or lets the wait go on (tests).
pub fn set_fatal(fatal: bool) {
    FATAL.store(fatal, Ordering::SeqCst);
}

/// Reports made so far, and the laggards of the latest.
pub fn reports() -> (u64, CpuMask) {
    (REPORTS.load(Ordering::SeqCst), *LAST_LAGGARDS.lock())
}

/// The TSC cycles in `ms` milliseconds (at least a 1 MHz clock before calibration).
fn cycles(ms: u64) -> u64 {
    ms.saturating_mul(crate::timer::tsc_hz().max(1_000_000) / 1000)
}

/// Whether a wait that began at TSC `since` has passed the bound.
/// Before the TSC is calibrated there is no bound.
pub fn past_bound(since: u64) -> bool {
    crate::timer::tsc_hz() != 0 && crate::cpu::rdtsc().wrapping_sub(since) > cycles(bound_ms())
}

/// One wait for other CPUs, bounded.
pub struct Wait {
    what: &'static str,
    at: &'static Location<'static>,
    start: u64,
    reported: bool,
}

impl Wait {
    /// Starts the clock on a wait for `what`, located at the caller.
    #[track_caller]
    pub fn start(what: &'static str) -> Self {
        Self {
            what,
            at: Location::caller(),
            start: crate::cpu::rdtsc(),
            reported: false,
        }
    }

    /// Whether the wait has passed the bound.
    pub fn expired(&self) -> bool {
        past_bound(self.start)
    }

    /// One round of the wait. Past the bound: reports `laggards()` and fails the run
    /// (returns, once, if the watchdog is not fatal); `kick` is run on each laggard
    /// after its NMI (a cross call sends its IPI again).
    pub fn check(&mut self, laggards: impl FnOnce() -> CpuMask, kick: impl Fn(usize)) {
        if self.reported || !self.expired() {
            return;
        }
        self.report(&laggards(), &kick);
    }

    /// Reports the wait now with these laggards (see [`Wait::check`]).
    pub fn report(&mut self, laggards: &CpuMask, kick: &dyn Fn(usize)) {
        self.reported = true;
        report(self.what, self.at, self.start, laggards, kick);
    }
}

/// The watchdog check of a wait that began at TSC `since` and is checked without a
/// [`Wait`] (mm's waits, through their hardware trait): past the bound, reports once
/// and returns true.
pub fn check_since(
    since: u64,
    what: &'static str,
    at: &'static Location<'static>,
    laggards: impl FnOnce() -> CpuMask,
) -> bool {
    if !past_bound(since) {
        return false;
    }
    report(what, at, since, &laggards(), &|_| {});
    true
}

fn report(what: &str, at: &Location, start: u64, lag: &CpuMask, kick: &dyn Fn(usize)) {
    let me = percpu::cpu_index();
    let waited_ms = crate::cpu::rdtsc().wrapping_sub(start) / cycles(1);
    let hz = crate::timer::tsc_hz().max(1_000_000);
    let mut list = cpu_list(lag);
    crate::serial::write_fmt_panicking(format_args!(
        "watchdog: cpu={me} waited_ms={waited_ms} for={what} at={at} laggards={}\n",
        list.as_str()
    ));
    REPORTS.fetch_add(1, Ordering::SeqCst);
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    *LAST_LAGGARDS.lock() = *lag;
    let counts: alloc::vec::Vec<u64> = lag.iter().map(|c| answer(c).count).collect();
    for c in lag.iter().filter(|&c| c != me) {
        cpus::get(c).watchdog.wanted.fetch_add(1, Ordering::SeqCst);
        with_lapic(|l| l.send_nmi(cpus::get(c).apic_id));
    }
    let end = crate::cpu::rdtsc() + hz / 2;
    while crate::cpu::rdtsc() < end
        && lag
            .iter()
            .zip(&counts)
            .any(|(c, &n)| c != me && answer(c).count == n)
    {
        core::hint::spin_loop();
    }
    let silent: CpuMask = lag
        .iter()
        .zip(&counts)
        .filter(|&(c, &n)| c != me && answer(c).count == n)
        .map(|(c, _)| c)
        .collect();
    if !silent.is_empty() {
        list = cpu_list(&silent);
        crate::serial::write_fmt_panicking(format_args!(
            "watchdog: no NMI answer from cpus={}\n",
            list.as_str()
        ));
    }
    lag.iter().for_each(kick);
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    if FATAL.load(Ordering::SeqCst) {
        list = cpu_list(lag);
        panic!(
            "watchdog: cpu {me} waited {waited_ms} ms for {what} at {at}; no answer from cpus {}",
            list.as_str()
        );
    }
}

extern crate alloc;

/// `1,5,287` (allocates: the report path runs in task context, not under the heap lock).
fn cpu_list(mask: &CpuMask) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    for (i, c) in mask.iter().enumerate() {
        let _ = write!(s, "{}{c}", if i > 0 { "," } else { "" });
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// The NMI side: if the watchdog asked this CPU for a report, prints it for the
/// interrupted context and returns true (the NMI was ours). The NMI handler then still
/// runs its halt hook (a panic's stop NMI may be merged with ours).
pub(crate) fn answer_nmi(rip: u64, rflags: u64) -> bool {
    let Some(me) = percpu::current() else { return false };
    if me.watchdog.wanted.swap(0, Ordering::SeqCst) == 0 {
        return false;
    }
    let irqs = rflags & (1 << 9) != 0;
    let (cr3, _) = x86_64::registers::control::Cr3::read();
    crate::serial::write_fmt_panicking(format_args!(
        "watchdog: cpu={} rip={rip:#x} if={} cr3={:#x} ticks={} queued_calls={}\n",
        me.index,
        u8::from(irqs),
        cr3.start_address().as_u64(),
        me.ticks.load(Ordering::Relaxed),
        me.calls.len_now().map_or(-1, |n| n as i64),
    ));
    me.watchdog.last_rip.store(rip, Ordering::SeqCst);
    me.watchdog.last_if.store(irqs, Ordering::SeqCst);
    me.watchdog.answered.fetch_add(1, Ordering::SeqCst);
    true
}
