//! Soak: the table-freeing race at length, with walkers on every other CPU (as many as
//! `workload::busy_cpus` allows). 10^5 table frees per backend must produce no poison
//! hit (under the paravirt backend, where the sync is needed, a third of them in each
//! sync form: `broadcast`, `targeted`, `wait`); with the sync wrongly skipped under the
//! paravirt backend the detector must see its first hit within 10^3 frees. Both counts
//! are printed:
//! `soak: backend=.. sync=.. form=.. tables_freed=.. poison_hits=.. first_hit_after=.. walks=.. ms=..`.
//! They run in one native and one paravirt configuration at `-smp 4` (`tests/tests/kernel.rs`).

use mm::stats::TlbEvent;
use mm::table_free::SyncForm;

use crate::workload::{RaceConfig, RaceResult, race};

/// The soak length in force: table frees a soak must reach (each unmap of a slot frees a
/// PTE and a PMD table); boot option `soak.tables=`, default 10^5.
fn tables() -> u64 {
    crate::options::boot_options().soak_tables
}
/// The detection bound: the first poison hit with the sync skipped comes within this.
pub const DETECT_WITHIN: u64 = 1_000;
/// Tables one race round frees: four slots, two tables each.
const TABLES_PER_ROUND: u64 = 8;

fn soak(
    backend: &str,
    sync: &str,
    rounds: u64,
    form: Option<SyncForm>,
    force_skip: bool,
    stop_at_first_hit: bool,
) -> RaceResult {
    let r = race(RaceConfig {
        force_skip,
        stop_at_first_hit,
        form,
        // Every table takes the flush + sync path, where the skip is decided. Walkers
        // "preempted" by the host only where that is the point (pv); natively a walk
        // holds interrupts off only for its own length.
        ..RaceConfig::new(rounds, true, if backend == "pv" { 200 } else { 0 })
    });
    let hz = arch::timer::tsc_hz().max(1);
    log::info!(
        "soak: backend={backend} sync={sync} form={} cpus={} tables_freed={} poison_hits={} first_hit_after={} walks={} frames_leaked={} ms={}",
        r.form.name(),
        arch::cpus::count(),
        r.delta.get(TlbEvent::TablesFreed),
        r.delta.get(TlbEvent::PoisonHits),
        r.tables_freed_at_first_hit.map_or(-1, |n| n as i64),
        r.walks,
        r.frames_leaked,
        r.cycles * 1000 / hz,
    );
    assert_eq!(r.frames_leaked, 0);
    r
}

fn assert_clean_soak(r: &RaceResult, tables: u64) {
    assert!(
        r.delta.get(TlbEvent::TablesFreed) >= tables,
        "{}",
        r.delta.gather_line()
    );
    assert_eq!(
        r.delta.get(TlbEvent::PoisonHits),
        0,
        "use-after-free of a page table"
    );
    assert_eq!(r.bad_reads, 0);
    assert!(r.walks > 0 || arch::cpus::count() == 1);
}

ktest::kernel_test!(
    needs(soak().and(native())) fn soak_native_100k_table_frees_without_a_poison_hit() {
        let r = soak("native", "decided", tables().div_ceil(TABLES_PER_ROUND), None, false, false);
        assert_clean_soak(&r, tables());
    }
);

ktest::kernel_test!(
    needs(soak().and(pv())) fn soak_pv_100k_table_frees_without_a_poison_hit() {
        // A third of the frees in each sync form.
        let each = tables().div_ceil(SyncForm::ALL.len() as u64);
        for form in SyncForm::ALL {
            let rounds = each.div_ceil(TABLES_PER_ROUND);
            let r = soak("pv", "decided", rounds, Some(form), false, false);
            assert_clean_soak(&r, each);
            super::race::assert_form_sent(&r, rounds);
        }
    }
);

ktest::kernel_test!(
    needs(soak().and(pv()).and_cpus(2)) fn soak_pv_with_the_sync_skipped_hits_poison_within_1000_frees() {
        let r = soak(
            "pv",
            "force-skip",
            DETECT_WITHIN / TABLES_PER_ROUND * 4,
            None,
            true,
            true,
        );
        let at = r
            .tables_freed_at_first_hit
            .expect("the detector saw no use-after-free");
        assert!(
            at <= DETECT_WITHIN,
            "first poison hit only after {at} table frees"
        );
    }
);
