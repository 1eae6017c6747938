//! The in-kernel race detector: freed page tables are poisoned (and quarantined) before
//! reuse, walkers on every other CPU check each entry they read, and a poison hit is a
//! use-after-free of a page table. Native tests run in the default configurations;
//! `race_pv` tests need the boot option `tlb.backend=pv` (their own configurations, at
//! `-smp 2, 4, 8`), `race_invlpgb` tests `setcpuid=invlpgb` (its configuration, `-smp 2`).
//!
//! The sync forms (`mm::table_free::SyncForm`): the tests where the form matters run each
//! form in turn, set for the run (`RaceConfig::form`), whatever `tlb.sync=` booted:
//! - 0 poison hits in every form, on the fallback path (a sync per table) and the
//!   batched one (a tick grace period under `broadcast`, a walk period otherwise);
//! - what each form sends, seen by mm's counters and by the CPUs themselves (arch's
//!   per-CPU count of sync IPIs run): with half the other CPUs walking and the rest idle,
//!   `broadcast` interrupts the idle CPUs too, `targeted` only walkers (the idle ones are
//!   counted as spared), `wait` nobody (it waits instead);
//! - the teeth: with the walk marker not published (`no_marker`, `Fault::NoMarker`),
//!   `targeted` and `wait` free tables under walkers, on the fallback path and on the
//!   batched one (the walk period ends at once), and the detector sees the first hit
//!   within [`DETECT_WITHIN`] table frees; with the sync switched off (`force_skip`) it
//!   does in every form.
//!
//! The teeth are shown under pv only. QEMU cannot execute INVLPGB, and its emulation
//! (`arch::backend::invlpgb`) empties the targets' TLBs by an IPI that a walker takes
//! only after its walk (interrupts off), so under it the flush itself waits out every
//! walk open at the unlink: with the marker unpublished nothing is freed under a walker
//! (tried in `targeted` at `-smp 2`: 4500 frees on each path, 0 hits). On the hardware INVLPGB interrupts
//! nobody, which is what the pv backend's preempted vCPUs stand in for here.
//!
//! Why detection does not depend on the host's load: the walkers are "preempted by the
//! host" (the pv host model, `ktest::pv_host`) for [`PREEMPT_US`] at every walk that
//! reaches a PTE table, between reading the PMD entry and reading the PTE table, with
//! interrupts off and their marker published. That window is timed by the TSC, so a slow
//! or descheduled vCPU only widens it; a table freed while a walker is inside it is read
//! after it was poisoned. Whether a free lands in a window is chance (a walker walks the
//! four slots in turn, most of its walks find the slot unmapped and are short), which is
//! why the bound is 10^3 frees when under a hundred sufficed here (without the marker the
//! first hit came after 4 to 74 frees at `-smp 2, 4, 8`, on either path).

extern crate alloc;

use mm::hw::BackendKind;
use mm::stats::TlbEvent;
use mm::table_free::SyncForm;

use crate::ktests::soak::DETECT_WITHIN;
use crate::workload::{RaceConfig, RaceResult, log_result, race};

const ROUNDS: u64 = 30;
/// Rounds per form where a test runs the fallback path with walkers in every form: the
/// three share what one form had (each broadcast sync waits for every walker to take an
/// IPI, slow under TCG).
const ROUNDS_PER_FORM: u64 = 10;
const PREEMPT_US: u32 = 200;
/// Tables one race round frees: four slots, two tables each.
const TABLES_PER_ROUND: u64 = 8;

fn backend() -> BackendKind {
    crate::tlb::mmu().backend.kind()
}

fn others() -> u64 {
    arch::cpus::count() as u64 - 1
}

fn run(name: &str, cfg: RaceConfig) -> RaceResult {
    let r = race(cfg);
    log_result(name, &r);
    assert_eq!(r.frames_leaked, 0, "frames leaked");
    r
}

fn assert_no_hits(r: &RaceResult) {
    assert_eq!(
        r.delta.get(TlbEvent::PoisonHits),
        0,
        "use-after-free of a page table with sync={}: {}",
        r.form.name(),
        r.delta.gather_line()
    );
    assert_eq!(r.bad_reads, 0, "bad reads with sync={}", r.form.name());
}

/// What a run on the fallback path must have sent in its form, where the sync is needed
/// (not skipped) at least `syncs` times and no fault is in force: mm's counters, and the
/// sync IPIs the walker and idle CPUs ran (the machine's own count). The pv soak checks
/// its runs with it too.
pub fn assert_form_sent(r: &RaceResult, syncs: u64) {
    let d = &r.delta;
    let (sent, ipi_cpus, spared) = (
        d.get(TlbEvent::SyncSent),
        d.get(TlbEvent::SyncIpiCpus),
        d.get(TlbEvent::SyncSpared),
    );
    let others = others();
    if others == 0 {
        return;
    }
    let line = d.gather_line();
    let form = r.form.name();
    let machine = (r.sync_ipis_to_walkers, r.sync_ipis_to_idle);
    match r.form {
        SyncForm::Broadcast => {
            assert!(sent >= syncs, "{form}: {sent} syncs sent, {syncs} due: {line}");
            assert_eq!(
                ipi_cpus,
                sent * others,
                "{form}: every other CPU each time: {line}"
            );
            assert!(
                r.sync_ipis_to_idle >= sent * r.idle_cpus,
                "{form}: the idle CPUs ran {} sync IPIs, {} sent to each: {line}",
                r.sync_ipis_to_idle,
                sent
            );
        }
        SyncForm::Targeted => {
            // Every targeted sync counts each other CPU once: IPI'd or spared.
            assert_eq!(
                (ipi_cpus + spared) % others,
                0,
                "{form}: {ipi_cpus} CPUs sent to, {spared} spared, {others} others: {line}"
            );
            let done = (ipi_cpus + spared) / others;
            assert!(done >= syncs, "{form}: {done} syncs, {syncs} due: {line}");
            assert!(
                ipi_cpus <= sent * r.walker_cpus,
                "{form}: {ipi_cpus} CPUs sent to in {sent} syncs, only {} walk: {line}",
                r.walker_cpus
            );
            assert!(
                spared >= done * r.idle_cpus,
                "{form}: {spared} spared in {done} syncs, {} CPUs idle each time: {line}",
                r.idle_cpus
            );
            assert_eq!(
                r.sync_ipis_to_idle, 0,
                "{form}: an idle CPU (no walk marker) ran a sync IPI: {line}"
            );
        }
        SyncForm::Wait => {
            assert_eq!(sent, 0, "{form}: sync IPIs sent: {line}");
            assert_eq!(
                machine,
                (0, 0),
                "{form}: CPUs ran sync IPIs (walkers, idle): {line}"
            );
            let waits = d.get(TlbEvent::SyncWaits);
            assert!(waits >= syncs, "{form}: {waits} waits, {syncs} due: {line}");
        }
    }
}

/// The fallback path in each form, half the other CPUs walking (at least one) and the
/// rest idle: no poison hit, and each form sends what it must.
fn fallback_each_form(backend: &str) {
    let walkers = others().div_ceil(2) as usize;
    for form in SyncForm::ALL {
        let r = run(
            &alloc::format!("{backend}-fallback"),
            RaceConfig {
                form: Some(form),
                walkers: Some(walkers),
                ..RaceConfig::new(ROUNDS_PER_FORM, true, PREEMPT_US)
            },
        );
        assert_no_hits(&r);
        assert_form_sent(&r, ROUNDS_PER_FORM);
    }
}

/// The batched path in each form, `rounds` rounds each: no poison hit, no sync sent, the
/// batches freed (after a tick grace period under `broadcast`, a walk period otherwise).
fn batched_each_form(backend: &str, rounds: u64) {
    for form in SyncForm::ALL {
        let r = run(
            &alloc::format!("{backend}-batched"),
            RaceConfig {
                form: Some(form),
                ..RaceConfig::new(rounds, false, PREEMPT_US)
            },
        );
        assert_no_hits(&r);
        let d = &r.delta;
        assert!(d.get(TlbEvent::TablesDeferred) >= rounds, "{}", d.gather_line());
        assert!(d.get(TlbEvent::BatchesFreed) > 0, "{}", d.gather_line());
        assert_eq!(d.get(TlbEvent::SyncSent), 0, "{}", d.gather_line());
        assert_eq!(d.get(TlbEvent::SyncWaits), 0, "{}", d.gather_line());
    }
}

/// The walk marker not published (`no_marker`), in `targeted` and `wait` on the fallback
/// path (`fallback`) or the batched one: the freer sees no walker, and the detector must
/// see the use-after-free within [`DETECT_WITHIN`] table frees.
fn no_marker_is_caught(backend: &str, fallback: bool) {
    let path = if fallback { "fallback" } else { "batched" };
    for form in [SyncForm::Targeted, SyncForm::Wait] {
        let r = run(
            &alloc::format!("{backend}-{path}-nomarker"),
            RaceConfig {
                form: Some(form),
                no_marker: true,
                stop_at_first_hit: true,
                ..RaceConfig::new(DETECT_WITHIN / TABLES_PER_ROUND * 4, fallback, PREEMPT_US)
            },
        );
        let d = &r.delta;
        // The fault in force: the freer saw no walker.
        assert_eq!(
            (d.get(TlbEvent::SyncSent), d.get(TlbEvent::SyncWaitCpus)),
            (0, 0),
            "{}: the freer saw a walker: {}",
            form.name(),
            d.gather_line()
        );
        let at = r.tables_freed_at_first_hit.unwrap_or_else(|| {
            panic!(
                "{}, {path}, no marker: the detector missed the use-after-free ({} walks, {} tables freed)",
                form.name(),
                r.walks,
                d.get(TlbEvent::TablesFreed)
            )
        });
        assert!(
            at <= DETECT_WITHIN,
            "{}, {path}, no marker: first poison hit only after {at} table frees",
            form.name()
        );
    }
}

ktest::kernel_test!(
    needs(native().and(up_to_cpus(16))) fn race_native_fallback_no_hits_no_sync_ipis() {
        assert!(arch::static_key::tlb_table_flush_implies_ipi_broadcast());
        // The skip comes first: whatever the form, the receipt excuses the sync.
        for form in SyncForm::ALL {
            let r = run(
                "native-fallback",
                RaceConfig {
                    form: Some(form),
                    ..RaceConfig::new(ROUNDS_PER_FORM, true, PREEMPT_US)
                },
            );
            assert_no_hits(&r);
            let d = &r.delta;
            assert_eq!(
                (d.get(TlbEvent::SyncSent), d.get(TlbEvent::SyncWaits)),
                (0, 0),
                "{}: the flush receipt must make the sync redundant: {}",
                form.name(),
                d.gather_line()
            );
            assert!(d.get(TlbEvent::SyncSkipped) >= ROUNDS_PER_FORM, "{}", d.gather_line());
        }
    }
);

ktest::kernel_test!(
    needs(native().and(up_to_cpus(16))) fn race_native_batched_no_hits() {
        // A third of the rounds each: every flush here waits for the walkers to take its
        // IPI, seconds per form under TCG.
        batched_each_form("native", ROUNDS_PER_FORM);
    }
);

ktest::kernel_test!(
    needs(pv().and(up_to_cpus(16))) fn race_pv_fallback_no_hits_syncs_sent() {
        assert!(!arch::static_key::tlb_table_flush_implies_ipi_broadcast());
        fallback_each_form("pv");
    }
);

ktest::kernel_test!(
    needs(pv().and(up_to_cpus(16))) fn race_pv_batched_no_hits() {
        batched_each_form("pv", ROUNDS);
    }
);

ktest::kernel_test!(
    needs(invlpgb().and_cpus(2).and(up_to_cpus(16))) fn race_invlpgb_fallback_no_hits_syncs_sent() {
        assert!(!arch::static_key::tlb_table_flush_implies_ipi_broadcast());
        fallback_each_form("invlpgb");
    }
);

ktest::kernel_test!(
    needs(invlpgb().and_cpus(2).and(up_to_cpus(16))) fn race_invlpgb_batched_no_hits() {
        batched_each_form("invlpgb", ROUNDS_PER_FORM);
    }
);

ktest::kernel_test!(
    needs(pv().and_cpus(2).and(up_to_cpus(16))) fn race_pv_force_skip_is_caught_by_the_detector() {
        // The sync switched off where it is needed: walkers preempted mid-walk are not
        // interrupted by the pv flush, and the table is freed under them. In every form:
        // the fault drops the IPIs and blinds the freer to the markers
        // (`tlb::faults::NO_WALKS`).
        for form in SyncForm::ALL {
            let r = run(
                "pv-force-skip",
                RaceConfig {
                    form: Some(form),
                    force_skip: true,
                    ..RaceConfig::new(ROUNDS, true, PREEMPT_US)
                },
            );
            let d = &r.delta;
            let reached = match form {
                SyncForm::Broadcast => r.syncs_dropped,
                SyncForm::Targeted => d.get(TlbEvent::SyncSpared) / others(),
                SyncForm::Wait => d.get(TlbEvent::SyncWaits),
            };
            assert!(
                reached >= ROUNDS,
                "{}: the fault switched off {reached} syncs: it did not reach the fallback path: {}",
                form.name(),
                d.gather_line()
            );
            assert!(
                d.get(TlbEvent::PoisonHits) > 0,
                "{}: the detector missed the use-after-free ({} walks)",
                form.name(),
                r.walks
            );
        }
    }
);

ktest::kernel_test!(
    needs(pv().and_cpus(2).and(up_to_cpus(16))) fn race_pv_no_marker_is_caught_by_the_detector() {
        no_marker_is_caught("pv", true);
    }
);

ktest::kernel_test!(
    needs(pv().and_cpus(2).and(up_to_cpus(16))) fn race_pv_batched_no_marker_is_caught_by_the_detector() {
        no_marker_is_caught("pv", false);
    }
);

ktest::kernel_test!(
    needs(per_backend()) fn static_branch_bytes_match_the_decision() {
        let sites = arch::static_key::branch_sites();
        assert!(!sites.is_empty(), "no branch site recorded for the key");
        let decided = arch::static_key::key_enabled();
        assert_eq!(decided, backend() == BackendKind::NativeIpi);
        for bytes in sites {
            if decided {
                assert_eq!(bytes, arch::static_key::NOP5, "enabled key must be a NOP");
            } else {
                assert_eq!(bytes[0], 0xe9, "disabled key must be a JMP, got {bytes:x?}");
            }
        }
    }
);
