//! The watchdog on every wait that depends on another CPU, after Linux's
//! `CONFIG_CSD_LOCK_WAIT_DEBUG` (`csd_lock_wait_toolong`): a waiter that has waited
//! longer than the bound reports what it waits for and which CPUs have not answered,
//! asks each of them by NMI what it is doing (an NMI gets through with interrupts off),
//! sends a cross-call waiter's targets their IPI again, and goes on waiting; it fails
//! the run only when a CPU it waits for has made no progress at all over two bounds.
//!
//! Protocol (B = `watchdog.ms`; check points at B, 3B, 5B, ...: [`FATAL_FACTOR`] x B is
//! the first at which the run can fail):
//! - A wait calls [`Wait::start`] once and [`Wait::check`] on every round; `check` reads
//!   the TSC and, before the next check point, costs nothing more. The laggards are
//!   computed only at a check point (the caller's closure).
//! - At a check point with laggards: the waiter prints
//!   `watchdog: cpu=.. waited_ms=.. for=.. at=.. laggards=.. stuck=..`, sets each
//!   laggard's `wanted` flag and sends it an NMI. The laggard's NMI handler takes the flag,
//!   prints `watchdog: cpu=.. rip=.. if=.. cr3=.. ticks=.. queued_calls=..` for the
//!   context the NMI interrupted and bumps `answered`. The waiter waits up to 500 ms for
//!   the answers, runs the kick on each laggard (a cross call resends its IPI) and goes
//!   on waiting. Printing breaks the serial lock (the laggard may hold it).
//! - Progress: the waiter keeps a fingerprint of its laggards and of each one's progress
//!   count (timer ticks taken plus cross calls served: neither moves on a CPU stuck with
//!   interrupts off, or spinning without serving its queue). At a later check point, the
//!   same laggards with the same counts are stuck: the waiter reports them again and
//!   panics (the default), or, with [`set_fatal`]`(false)` (tests only), returns and
//!   keeps waiting. Laggards that moved are slow, not stuck: reported again, and the
//!   wait goes on to the next check point.
//! - A check point with no laggard: every CPU had answered by the time the waiter
//!   looked; the waiter itself was late to see it (under TCG on a busy host a vCPU thread
//!   can be off its host core for seconds). That is a late answer, not a lost one: one
//!   line `watchdog: late answer cpu=.. for=.. at=.. (all answered; seen after N ms)`
//!   and the wait goes on (it ends at its next round).
//! - The last word ([`GIVE_UP_FACTOR`] x B, 310 s by default): a wait still going then
//!   fails the run whatever its laggards did, and so does one with no laggard left (a
//!   wait that no CPU holds up yet never ends is a lost answer after all). Progress is
//!   ticks plus calls served, which a CPU can make without serving the one call a waiter
//!   needs (its IPI lost twice, its queue entry lost): slow forever is stuck.
//!
//! Why progress and not a fixed larger bound: at `-smp 288` under TCG on a two-core
//! host kept busy by other work, the all-to-all call storm had CPUs behind for more than
//! 30 s (3 x B) while still serving calls (their queues moving between NMI answers): a
//! fixed bound turns host load into a verdict. A CPU whose ticks and served calls have
//! not moved for two whole bounds (20 s by default), after an NMI and its IPI again, is
//! stuck, not slow.
//!
//! Orderings (x86-TSO; the Rust orderings are what the compiler must keep): the bound,
//! the fatal switch and the counters are independent words that publish nothing else
//! (Relaxed). The request/answer handshake between a waiter and a laggard's NMI handler
//! is stated at each operation below.

use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use mm::cpumask::CpuMask;

use crate::cpus;
use crate::percpu::{self, with_lapic};

/// Default bound on a wait for other CPUs before it is reported (`watchdog.ms=`).
pub const DEFAULT_BOUND_MS: u64 = 10_000;

/// The earliest a wait can fail the run, in bounds: its second check point (the first
/// is at one bound; then every two). See the module's protocol.
pub const FATAL_FACTOR: u64 = 3;

/// The check point at which a wait fails the run whatever progress its laggards make
/// (in bounds: the 16th check point). See the module's protocol.
pub const GIVE_UP_FACTOR: u64 = 31;

// Relaxed: a setting read on its own; no data is published with it.
static BOUND_MS: AtomicU64 = AtomicU64::new(DEFAULT_BOUND_MS);
// Relaxed: as BOUND_MS (tests set it on the CPU that then waits).
static FATAL: AtomicBool = AtomicBool::new(true);
/// Reports made (waits that passed a bound with laggards). Relaxed: a count, read by
/// tests after the wait it counts has returned on the reading CPU or been joined.
static REPORTS: AtomicU64 = AtomicU64::new(0);
/// Late answers seen (waits that passed a bound with no laggard). Relaxed: as REPORTS.
static LATE: AtomicU64 = AtomicU64::new(0);
/// Reports under way (their NMIs may still arrive after the request they answer was
/// served by an earlier NMI: those are the watchdog's too, not "unexpected").
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// Whether a watchdog report is under way (the NMI handler's second question).
pub fn report_in_flight() -> bool {
    // A plain load suffices on x86-TSO: the increment is a locked RMW followed by the
    // fence in `fence_before_nmi` before any NMI is sent, so a CPU taking one of the
    // report's NMIs sees it. SeqCst keeps the compiler from moving it either.
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
    // Acquire on the count pairs with the Release increment in `answer_nmi`: a reader
    // that sees the new count sees the rip and flag stored before it (read after it).
    let count = w.answered.load(Ordering::Acquire);
    Answer {
        count,
        // Relaxed: ordered after the Acquire load above.
        rip: w.last_rip.load(Ordering::Relaxed),
        interrupts_enabled: w.last_if.load(Ordering::Relaxed),
    }
}

/// Sets the bound (boot option `watchdog.ms=`; tests shorten it).
pub fn set_bound_ms(ms: u64) {
    BOUND_MS.store(ms.max(1), Ordering::Relaxed);
}

/// The report bound in milliseconds.
pub fn bound_ms() -> u64 {
    BOUND_MS.load(Ordering::Relaxed)
}

/// The earliest a wait can fail the run, in milliseconds ([`FATAL_FACTOR`] bounds).
pub fn fatal_bound_ms() -> u64 {
    bound_ms().saturating_mul(FATAL_FACTOR)
}

/// Whether a stuck verdict (laggards that made no progress between two check points)
/// fails the run (the default) or lets the wait go on (tests).
pub fn set_fatal(fatal: bool) {
    FATAL.store(fatal, Ordering::Relaxed);
}

/// Reports made so far (waits past a bound with laggards), and the laggards of the latest.
pub fn reports() -> (u64, CpuMask) {
    (REPORTS.load(Ordering::Relaxed), *LAST_LAGGARDS.lock())
}

/// Late answers seen so far (waits past a bound whose CPUs had all answered).
pub fn late_answers() -> u64 {
    LATE.load(Ordering::Relaxed)
}

/// The TSC cycles in `ms` milliseconds (at least a 1 MHz clock before calibration).
fn cycles(ms: u64) -> u64 {
    ms.saturating_mul(crate::timer::tsc_hz().max(1_000_000) / 1000)
}

/// Whether a wait that began at TSC `since` has passed `ms` milliseconds.
/// Before the TSC is calibrated there is no bound.
fn past(since: u64, ms: u64) -> bool {
    crate::timer::tsc_hz() != 0 && crate::cpu::rdtsc().wrapping_sub(since) > cycles(ms)
}

/// Whether a wait that began at TSC `since` has passed the report bound.
pub fn past_bound(since: u64) -> bool {
    past(since, bound_ms())
}

/// How far a wait has got with the watchdog: check points passed, and the fingerprint
/// of its laggards' progress at the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Progress {
    /// Check points passed (the next is at `(1 + 2 * checks)` bounds).
    checks: u64,
    /// [`fingerprint`] of the laggards at the last check point (0: none yet).
    seen: u64,
    /// A verdict was given (non-fatal watchdog): no more checks.
    done: bool,
}

/// What CPU `c` has done that a stuck CPU cannot: timer ticks taken (interrupts on)
/// plus cross calls served. Relaxed: counters; a stale read can only make a moving CPU
/// look stuck for one check point if it moved in the last moment, which a CPU stuck for
/// two bounds never does.
fn progress_count(c: usize) -> u64 {
    let cpu = cpus::get(c);
    let served: u64 = cpu.ipis.received.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    cpu.ticks.load(Ordering::Relaxed).wrapping_add(served)
}

/// A fingerprint of `lag` and each one's [`progress_count`] (FNV-1a over the pairs):
/// equal at two check points means the same CPUs, none of which moved.
fn fingerprint(lag: &CpuMask) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in lag.iter() {
        for word in [c as u64, progress_count(c)] {
            h = (h ^ word).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h | 1 // never 0, the "none yet" value
}

/// One step of a wait's watchdog: at a check point, report or note a late answer, and
/// fail the run if its laggards made no progress since the last one. Returns the new
/// state.
fn step(
    mut p: Progress,
    what: &'static str,
    at: &Location,
    start: u64,
    laggards: impl FnOnce() -> CpuMask,
    kick: &dyn Fn(usize),
) -> Progress {
    if p.done || !past(start, bound_ms().saturating_mul(1 + 2 * p.checks)) {
        return p;
    }
    p.checks += 1;
    let last_word = 1 + 2 * (p.checks - 1) >= GIVE_UP_FACTOR;
    let lag = laggards();
    if lag.is_empty() {
        late_answer(what, at, start);
        p.seen = 0;
        if last_word {
            never_ended(what, at, start);
            p.done = true; // only reached when the watchdog is not fatal
        }
        return p;
    }
    let now = fingerprint(&lag);
    let stuck = if p.seen == now {
        Some("no tick taken, no call served since the last check point")
    } else if last_word {
        Some("still not answered at the watchdog's last word")
    } else {
        None
    };
    p.seen = now;
    report(what, at, start, &lag, kick, stuck);
    p.done = stuck.is_some(); // only reached when the watchdog is not fatal
    p
}

/// A wait at its last word with no laggard: every CPU it waited for has answered, yet it
/// has not ended. Fails the run (if the watchdog is fatal).
fn never_ended(what: &str, at: &Location, start: u64) {
    let me = percpu::cpu_index();
    let waited_ms = crate::cpu::rdtsc().wrapping_sub(start) / cycles(1);
    if FATAL.load(Ordering::Relaxed) {
        panic!(
            "watchdog: cpu {me} waited {waited_ms} ms for {what} at {at}; no CPU holds it up, yet it has not ended (a lost answer)"
        );
    }
}

/// One wait for other CPUs, bounded.
pub struct Wait {
    what: &'static str,
    at: &'static Location<'static>,
    start: u64,
    progress: Progress,
}

impl Wait {
    /// Starts the clock on a wait for `what`, located at the caller.
    #[track_caller]
    pub fn start(what: &'static str) -> Self {
        Self {
            what,
            at: Location::caller(),
            start: crate::cpu::rdtsc(),
            progress: Progress::default(),
        }
    }

    /// Whether the wait has passed [`FATAL_FACTOR`] bounds (a caller that gives up then
    /// reports with [`Wait::report`], which fails the run).
    pub fn expired(&self) -> bool {
        past(self.start, fatal_bound_ms())
    }

    /// One round of the wait. At each check point (see the module's protocol): reports
    /// `laggards()` (NMIs, then `kick` on each: a cross call sends its IPI again) and goes
    /// on, or fails the run when they made no progress since the last one (returns, once,
    /// if the watchdog is not fatal). No laggard is a late answer: one line, and the wait
    /// goes on.
    pub fn check(&mut self, laggards: impl FnOnce() -> CpuMask, kick: impl Fn(usize)) {
        self.progress = step(self.progress, self.what, self.at, self.start, laggards, &kick);
    }

    /// Reports the wait now with these laggards as its final verdict (fails the run
    /// unless the watchdog is not fatal; no laggard: a late answer).
    pub fn report(&mut self, laggards: &CpuMask, kick: &dyn Fn(usize)) {
        self.progress.done = true;
        if laggards.is_empty() {
            late_answer(self.what, self.at, self.start);
        } else {
            report(
                self.what,
                self.at,
                self.start,
                laggards,
                kick,
                Some("given up by the waiter"),
            );
        }
    }
}

/// The watchdog check of a wait that began at TSC `since` and is checked without a
/// [`Wait`] (mm's waits, through their hardware trait), on every round: at each check
/// point, reports (or notes a late answer) and returns false; when the laggards made no
/// progress, fails the run, or (not fatal: tests) returns true, after which the caller
/// stops checking. The state is kept in one of this CPU's `WAIT_SLOTS` records, keyed
/// by `since`: waits begun on this CPU while another waits (a yield in the first's
/// relax lets another task wait too) each keep their own, so alternating waits neither
/// reset nor repeat each other's check points. A record is reused least recently
/// checked first; a wait whose record was taken over starts its check points again
/// (repeated lines, and still the last word at [`GIVE_UP_FACTOR`] bounds, which needs no
/// record).
pub fn check_since(
    since: u64,
    what: &'static str,
    at: &'static Location<'static>,
    laggards: impl FnOnce() -> CpuMask,
) -> bool {
    if !past_bound(since) {
        return false;
    }
    let w = &percpu::current().expect("a wait before per-CPU data").watchdog;
    // Relaxed throughout: the records are this CPU's own, read and written only by the
    // code running on it, and no wait is checked in an interrupt handler.
    let slot = w
        .waits
        .iter()
        .find(|r| r.since.load(Ordering::Relaxed) == since)
        .or_else(|| {
            w.waits
                .iter()
                .min_by_key(|r| r.checked_at.load(Ordering::Relaxed))
        })
        .expect("WAIT_SLOTS > 0");
    let mut p = Progress::default();
    if slot.since.load(Ordering::Relaxed) == since {
        let checks = slot.checks.load(Ordering::Relaxed);
        p = Progress {
            checks: checks >> 1,
            seen: slot.seen.load(Ordering::Relaxed),
            done: checks & 1 != 0,
        };
    }
    let next = step(p, what, at, since, laggards, &|_| {});
    slot.since.store(since, Ordering::Relaxed);
    slot.checks
        .store(next.checks << 1 | u64::from(next.done), Ordering::Relaxed);
    slot.seen.store(next.seen, Ordering::Relaxed);
    slot.checked_at.store(crate::cpu::rdtsc(), Ordering::Relaxed);
    next.done
}

/// A wait past a bound whose CPUs had all answered: one line, no verdict.
fn late_answer(what: &str, at: &Location, start: u64) {
    let me = percpu::cpu_index();
    let waited_ms = crate::cpu::rdtsc().wrapping_sub(start) / cycles(1);
    LATE.fetch_add(1, Ordering::Relaxed);
    crate::serial::write_fmt_panicking(format_args!(
        "watchdog: late answer cpu={me} for={what} at={at} (all answered; seen after {waited_ms} ms)\n"
    ));
}

/// Makes this CPU's earlier stores (the `wanted` request) visible before the NMI that
/// follows is sent: in x2APIC mode the ICR is written with WRMSR, which the SDM (vol. 3,
/// "x2APIC register access") lets complete before earlier stores are globally visible,
/// and the NMI handler must find the request. MFENCE then LFENCE, as Linux's
/// `weak_wrmsr_fence` (the LFENCE keeps the WRMSR from starting before the MFENCE ends).
fn fence_before_nmi() {
    core::sync::atomic::fence(Ordering::SeqCst);
    // SAFETY: LFENCE only orders this CPU's instruction stream.
    unsafe { core::arch::x86_64::_mm_lfence() };
}

/// Reports laggards (and their NMI answers), kicks them, and, if `stuck` (the reason:
/// no progress since the last check point, or the last word) and the watchdog is fatal,
/// fails the run.
fn report(
    what: &'static str,
    at: &Location,
    start: u64,
    lag: &CpuMask,
    kick: &dyn Fn(usize),
    stuck: Option<&str>,
) {
    let me = percpu::cpu_index();
    let waited_ms = crate::cpu::rdtsc().wrapping_sub(start) / cycles(1);
    let hz = crate::timer::tsc_hz().max(1_000_000);
    let mut list = cpu_list(lag);
    crate::serial::write_fmt_panicking(format_args!(
        "watchdog: cpu={me} waited_ms={waited_ms} for={what} at={at} laggards={} stuck={}\n",
        list.as_str(),
        if stuck.is_some() { "yes" } else { "not-yet" }
    ));
    REPORTS.fetch_add(1, Ordering::Relaxed);
    trace::event!(Watchdog, what.as_ptr(), what.len(), lag.low_word());
    // Before any NMI of this report is sent (the fence below orders it): a laggard
    // taking one must see a report in flight. SeqCst: also kept after the NMIs by the
    // compiler, until the answers are in (the decrement below).
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    *LAST_LAGGARDS.lock() = *lag;
    let counts: alloc::vec::Vec<u64> = lag.iter().map(|c| answer(c).count).collect();
    for c in lag.iter().filter(|&c| c != me) {
        // The request the laggard's NMI handler takes (`swap` in `answer_nmi`). Release
        // would do for the handshake; the fence after it is what makes it visible
        // before the WRMSR that sends the NMI.
        cpus::get(c).watchdog.wanted.fetch_add(1, Ordering::Release);
        fence_before_nmi();
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
    // SeqCst: not moved by the compiler before the answers were read and the kicks sent.
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    if let Some(why) = stuck
        && FATAL.load(Ordering::Relaxed)
    {
        list = cpu_list(lag);
        panic!(
            "watchdog: cpu {me} waited {waited_ms} ms for {what} at {at}; no answer from cpus {} ({why})",
            list.as_str(),
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
/// runs its halt check, `smp::halt_if_stopping` (a panic's stop NMI may be merged with ours).
pub(crate) fn answer_nmi(rip: u64, rflags: u64) -> bool {
    let Some(me) = percpu::current() else { return false };
    // Acquire pairs with the waiter's Release increment (nothing else is published with
    // the request today; Acquire keeps it so if the request ever carries data).
    if me.watchdog.wanted.swap(0, Ordering::Acquire) == 0 {
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
    // Relaxed: published by the Release increment of `answered` after them.
    me.watchdog.last_rip.store(rip, Ordering::Relaxed);
    me.watchdog.last_if.store(irqs, Ordering::Relaxed);
    // Release: a waiter (or test) that sees the new count (Acquire in `answer`) sees the
    // rip and flag above.
    me.watchdog.answered.fetch_add(1, Ordering::Release);
    true
}
