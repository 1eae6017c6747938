//! The table-freeing race workload: one task maps and unmaps table-freeing ranges while
//! lock-free walkers on every other CPU walk them. Used by the demo, the race-detector
//! tests and the soak.
//!
//! Each slot is one 4 KiB page with its own level-3 entry, so unmapping it frees a PTE
//! table and a level-2 table. Addresses avoid index 0 at every level (the frame
//! allocator's free-list link lives in word 0 of a freed frame, the rest is poison).

extern crate alloc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use mm::addr_space::AddressSpace;

use mm::hw::PhysMem;
use mm::round::RoundMode;
use mm::stats::{TlbEvent, TlbTotals};
use mm::table_free::SyncForm;
use mm::walker::Walk;

use crate::mem::phys::MEM;
use crate::sched;
use crate::tlb::faults::Fault;
use crate::user_space::{destroy, unmap};
use crate::{mem, tlb, user_space};

/// Walks that returned a page whose content was not what was mapped there.
pub static BAD_READS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Walks that found the page, and walks that backed off.
pub static OUTCOMES: [core::sync::atomic::AtomicU64; 2] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 2];

/// Most CPUs besides CPU 0 that a workload occupies.
///
/// Under TCG every vCPU is a host thread, so a cross call costs time in proportion to the
/// CPUs that must run its handler; with busy tasks on 287 vCPUs and 2 host cores the demo
/// took minutes. Beyond this count a workload spreads over the CPU range (always taking
/// the last CPU, whose APIC ID is the highest) and leaves the others idle: they never
/// join the address space, so no flush interrupts them.
pub const MAX_BUSY_CPUS: usize = 15;

/// The CPUs (other than 0) a workload runs tasks on: all of them, or [`MAX_BUSY_CPUS`]
/// spread evenly up to the last.
pub fn busy_cpus() -> Vec<usize> {
    let others = arch::cpus::count().saturating_sub(1);
    if others <= MAX_BUSY_CPUS {
        return (1..=others).collect();
    }
    (1..=MAX_BUSY_CPUS).map(|k| k * others / MAX_BUSY_CPUS).collect()
}

/// Slots the unmapper cycles through.
pub const SLOTS: u64 = 4;

/// Address of slot `s`.
pub fn slot_va(s: u64) -> u64 {
    (1 << 39) | ((1 + s) << 30) | (1 << 21) | (1 << 12) | 8
}

/// How to run the race.
#[derive(Debug, Clone, Copy)]
pub struct RaceConfig {
    /// Map+unmap rounds per slot.
    pub rounds: u64,
    /// Table batches cannot be allocated: every table takes the flush + sync + free path
    /// ([`Fault::NoBatchPages`]).
    pub fallback: bool,
    /// Test-only: no sync reaches a CPU, even where it is needed ([`Fault::ForceSkip`]).
    pub force_skip: bool,
    /// Host preemption of walkers: microseconds per walk (0: none).
    pub preempt_us: u32,
    /// End the run at the first poison hit (the soak's detection count).
    pub stop_at_first_hit: bool,
    /// The table-free sync form for the run (None: the one in force, `tlb.sync=`); the
    /// one in force before is restored after.
    pub form: Option<SyncForm>,
    /// Test-only: walkers publish their walk markers where no freer looks
    /// ([`Fault::NoMarker`]).
    pub no_marker: bool,
    /// Most CPUs that run a walker (None: every CPU of [`busy_cpus`]); the rest of
    /// [`busy_cpus`] stay idle, outside the address space (what the `targeted` sync
    /// must spare).
    pub walkers: Option<usize>,
}

impl RaceConfig {
    /// `rounds` rounds on the fallback path (`fallback`) or the batched one, walkers
    /// on every busy CPU preempted by the host for `preempt_us` per walk, in the sync
    /// form in force, no fault.
    pub const fn new(rounds: u64, fallback: bool, preempt_us: u32) -> Self {
        Self {
            rounds,
            fallback,
            force_skip: false,
            preempt_us,
            stop_at_first_hit: false,
            form: None,
            no_marker: false,
            walkers: None,
        }
    }
}

/// What the race produced.
#[derive(Debug, Clone, Copy)]
pub struct RaceResult {
    /// Counter deltas over the run.
    pub delta: TlbTotals,
    /// Walks done by all walkers.
    pub walks: u64,
    /// Frames in use after the run minus before (0: no leak).
    pub frames_leaked: i64,
    /// Walks that read data that was not mapped there.
    pub bad_reads: u64,
    /// Syncs the protocol asked for that the `force-skip` fault dropped (counted in
    /// `delta`'s `SyncSent` too).
    pub syncs_dropped: u64,
    /// Tables freed when the first poison hit was seen (None: no hit).
    pub tables_freed_at_first_hit: Option<u64>,
    /// TSC cycles the map/unmap rounds took.
    pub cycles: u64,
    /// The sync form the run used.
    pub form: SyncForm,
    /// CPUs that ran a walker.
    pub walker_cpus: u64,
    /// Other CPUs that ran none (idle, outside the address space).
    pub idle_cpus: u64,
    /// Sync IPI requests the walker CPUs ran (the machine's own count: arch's per-CPU
    /// `received` IPI counters).
    pub sync_ipis_to_walkers: u64,
    /// Sync IPI requests the idle CPUs ran (the same count).
    pub sync_ipis_to_idle: u64,
}

/// Runs `f` with the table-free sync form `form` in force, restoring the one in force
/// before. Test-only: the form is a boot setting (`tlb.sync=`) that a test may switch
/// between its runs, never while a sync or walk period of another task is under way.
pub fn with_sync_form<R>(form: SyncForm, f: impl FnOnce() -> R) -> R {
    let before = tlb::FREER.form();
    tlb::FREER.set_form(form);
    let r = f();
    tlb::FREER.set_form(before);
    r
}

/// Runs `f` with shootdown rounds run in `mode` (`tlb::set_round_mode`), then restores
/// the mode in force before.
pub fn with_round_mode<R>(mode: RoundMode, f: impl FnOnce() -> R) -> R {
    let before = tlb::round_mode();
    tlb::set_round_mode(mode);
    let r = f();
    tlb::set_round_mode(before);
    r
}

/// The three round modes (`mm::round`), in the order the oracle runs them.
pub const ROUND_MODES: [RoundMode; 3] = [RoundMode::SERIAL, RoundMode::CONCURRENT, RoundMode::EARLY];

/// Sync IPI requests each CPU has run so far (arch's per-CPU counters).
fn sync_ipis_received() -> [u64; mm::cpumask::MAX_CPUS] {
    let mut out = [0; mm::cpumask::MAX_CPUS];
    for (c, n) in out.iter_mut().enumerate().take(arch::cpus::count()) {
        *n = arch::cpus::get(c).ipis.received[arch::stats::IpiReason::Sync as usize].load(Ordering::Relaxed);
    }
    out
}

/// Maps a fresh page at `va` in `mm` whose word at `va` holds `va` itself (what a
/// walker of `va` checks), written before the page is mapped.
pub fn map_page(mm: &AddressSpace, va: u64) -> u64 {
    let f = MEM.alloc_frame().expect("workload: out of memory");
    mem::phys::write_phys(f.as_u64() + (va & 0xff8), va);
    user_space::map_frame(mm, va, f.as_u64());
    f.as_u64()
}

/// Runs the race and returns its counters.
pub fn race(cfg: RaceConfig) -> RaceResult {
    match cfg.form {
        Some(form) => with_sync_form(form, || race_in_form(cfg)),
        None => race_in_form(cfg),
    }
}

fn race_in_form(cfg: RaceConfig) -> RaceResult {
    tlb::settle();
    let form = tlb::FREER.form();
    let busy = busy_cpus();
    let walking = busy.len().min(cfg.walkers.unwrap_or(usize::MAX));
    let walker_cpus = &busy[..walking];
    let received_before = sync_ipis_received();
    let frames_before = crate::mem::frames_used_outside_heap() as i64;
    let before = tlb::STATS.total();
    let dropped_before = crate::tlb::faults::syncs_dropped();
    let mm = user_space::new_address_space();
    static STOP: AtomicBool = AtomicBool::new(false);
    static WALKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    STOP.store(false, Ordering::SeqCst);
    BAD_READS.store(0, Ordering::SeqCst);
    OUTCOMES.iter().for_each(|o| o.store(0, Ordering::SeqCst));
    WALKS.store(0, Ordering::SeqCst);
    ktest::pv_host::set_host_preemption(if cfg.preempt_us > 0 { 1 } else { 0 }, cfg.preempt_us);
    Fault::NoBatchPages.set(cfg.fallback);
    let forced_before = Fault::ForceSkip.active();
    if cfg.force_skip {
        Fault::ForceSkip.set(true);
    }
    let unmarked_before = Fault::NoMarker.active();
    if cfg.no_marker {
        Fault::NoMarker.set(true);
    }
    let walkers: Vec<_> = walker_cpus
        .iter()
        .map(|&cpu| {
            sched::spawn("walker", cpu, Some(mm), move || {
                let mut s = cpu as u64;
                while !STOP.load(Ordering::SeqCst) {
                    let va = slot_va(s % SLOTS);
                    match tlb::walk(mm, va) {
                        Walk::Page { value, pa } if value != va => {
                            if BAD_READS.fetch_add(1, Ordering::Relaxed) < 3 {
                                log::info!("race: bad read va={va:#x} pa={pa:#x} value={value:#x}");
                            }
                        }
                        Walk::Page { .. } => {
                            OUTCOMES[0].fetch_add(1, Ordering::Relaxed);
                        }
                        Walk::BackedOff => {
                            OUTCOMES[1].fetch_add(1, Ordering::Relaxed);
                        }
                        Walk::NotLoaded => panic!("race: walker on cpu {cpu} outside its address space"),
                        Walk::NotMapped | Walk::Poisoned => {}
                    }
                    WALKS.fetch_add(1, Ordering::Relaxed);
                    s += 1;
                }
            })
        })
        .collect();
    sched::use_mm(Some(mm));
    let start = arch::cpu::rdtsc();
    let mut first_hit = None;
    // A long race (the soaks) says how far it is every tenth of its rounds: the host
    // bounds a boot by its silence, and a slow host must not make a healthy soak look hung.
    let progress_every = if cfg.rounds >= 100 {
        cfg.rounds / 10
    } else {
        u64::MAX
    };
    'rounds: for round in 0..cfg.rounds {
        if round > 0 && round % progress_every == 0 {
            log::info!("race: progress rounds={round}/{}", cfg.rounds);
        }
        for s in 0..SLOTS {
            map_page(mm, slot_va(s));
        }
        for s in 0..SLOTS {
            let va = slot_va(s) & !0xfff;
            unmap(mm, va, va + 4096);
            if first_hit.is_none() {
                let d = tlb::STATS.total() - before;
                if d.get(TlbEvent::PoisonHits) > 0 {
                    first_hit = Some(d.get(TlbEvent::TablesFreed));
                    if cfg.stop_at_first_hit {
                        break 'rounds;
                    }
                }
            }
        }
    }
    let cycles = arch::cpu::rdtsc() - start;
    STOP.store(true, Ordering::SeqCst);
    walkers
        .into_iter()
        .for_each(|w| w.join(crate::sched::JOIN_BOUND_MS));
    ktest::pv_host::set_host_preemption(0, 0);
    sched::use_mm(None);
    destroy(mm);
    Fault::ForceSkip.set(forced_before);
    Fault::NoMarker.set(unmarked_before);
    Fault::NoBatchPages.set(false);
    tlb::settle();
    let delta = tlb::STATS.total() - before;
    let received_after = sync_ipis_received();
    let received = |c: usize| received_after[c] - received_before[c];
    let others = arch::cpus::count().saturating_sub(1);
    RaceResult {
        delta,
        walks: WALKS.load(Ordering::SeqCst),
        frames_leaked: crate::mem::frames_used_outside_heap() as i64 - frames_before,
        bad_reads: BAD_READS.load(Ordering::SeqCst),
        syncs_dropped: crate::tlb::faults::syncs_dropped() - dropped_before,
        tables_freed_at_first_hit: first_hit,
        cycles,
        form,
        walker_cpus: walking as u64,
        idle_cpus: (others - walking) as u64,
        sync_ipis_to_walkers: walker_cpus.iter().map(|&c| received(c)).sum(),
        sync_ipis_to_idle: (1..=others)
            .filter(|c| !walker_cpus.contains(c))
            .map(received)
            .sum(),
    }
}

/// Logs a race result as one line.
pub fn log_result(name: &str, r: &RaceResult) {
    let hz = arch::timer::tsc_hz().max(1);
    log::info!(
        "race: case={name} form={} walkers={} idle={} walks={} found={} backed_off={} poison_hits={} first_hit_after={} bad_reads={} sync_ipis={} sync_ipi_cpus={} sync_spared={} sync_waits={} sync_wait_cpus={} sync_wait_ms={} sync_ipis_to_walkers={} sync_ipis_to_idle={} syncs_skipped={} syncs_dropped={} tables_freed={} frames_leaked={} ms={}",
        r.form.name(),
        r.walker_cpus,
        r.idle_cpus,
        r.walks,
        OUTCOMES[0].load(Ordering::Relaxed),
        OUTCOMES[1].load(Ordering::Relaxed),
        r.delta.get(TlbEvent::PoisonHits),
        r.tables_freed_at_first_hit.map_or(-1, |n| n as i64),
        r.bad_reads,
        r.delta.get(TlbEvent::SyncSent) - r.syncs_dropped,
        r.delta.get(TlbEvent::SyncIpiCpus),
        r.delta.get(TlbEvent::SyncSpared),
        r.delta.get(TlbEvent::SyncWaits),
        r.delta.get(TlbEvent::SyncWaitCpus),
        r.delta.get(TlbEvent::SyncWaitCycles) * 1000 / hz,
        r.sync_ipis_to_walkers,
        r.sync_ipis_to_idle,
        r.delta.get(TlbEvent::SyncSkipped),
        r.syncs_dropped,
        r.delta.get(TlbEvent::TablesFreed),
        r.frames_leaked,
        r.cycles * 1000 / hz
    );
}
