//! The in-kernel race detector: freed page tables are poisoned (and quarantined) before
//! reuse, walkers on every other CPU check each entry they read, and a poison hit is a
//! use-after-free of a page table. Native tests run in the default configurations;
//! `race_pv` tests need the boot option `tlb.backend=pv` (their own configuration).

use mm::hw::BackendKind;
use mm::stats::TlbEvent;

use crate::workload::{RaceConfig, log_result, race};

const ROUNDS: u64 = 30;
const PREEMPT_US: u32 = 200;

fn backend() -> BackendKind {
    crate::tlb::mmu().backend.kind()
}

fn run(name: &str, fallback: bool, force_skip: bool) -> crate::workload::RaceResult {
    let r = race(RaceConfig {
        rounds: ROUNDS,
        fallback,
        force_skip,
        preempt_us: PREEMPT_US,
        stop_at_first_hit: false,
    });
    log_result(name, &r);
    assert_eq!(r.frames_leaked, 0, "frames leaked");
    r
}

ktest::kernel_test!(
    needs(native().and(up_to_cpus(16))) fn race_native_fallback_no_hits_no_sync_ipis() {
        assert!(arch::static_key::tlb_table_flush_implies_ipi_broadcast());
        let r = run("native-fallback", true, false);
        assert_eq!(r.delta.get(TlbEvent::PoisonHits), 0);
        assert_eq!(r.bad_reads, 0);
        assert_eq!(
            r.delta.get(TlbEvent::SyncSent),
            0,
            "the flush receipt must make the sync redundant"
        );
        assert!(
            r.delta.get(TlbEvent::SyncSkipped) >= ROUNDS,
            "{}",
            r.delta.gather_line()
        );
    }
);

ktest::kernel_test!(
    needs(native().and(up_to_cpus(16))) fn race_native_batched_no_hits() {
        let r = run("native-batched", false, false);
        assert_eq!(r.delta.get(TlbEvent::PoisonHits), 0);
        assert_eq!(r.bad_reads, 0);
        assert!(r.delta.get(TlbEvent::TablesDeferred) >= ROUNDS);
        assert_eq!(r.delta.get(TlbEvent::SyncSent), 0);
    }
);

ktest::kernel_test!(
    needs(pv().and(up_to_cpus(16))) fn race_pv_fallback_no_hits_syncs_sent() {
        assert!(!arch::static_key::tlb_table_flush_implies_ipi_broadcast());
        let r = run("pv-fallback", true, false);
        assert_eq!(r.delta.get(TlbEvent::PoisonHits), 0);
        assert_eq!(r.bad_reads, 0);
        if arch::cpus::count() > 1 {
            assert!(
                r.delta.get(TlbEvent::SyncSent) >= ROUNDS,
                "{}",
                r.delta.gather_line()
            );
        }
    }
);

ktest::kernel_test!(
    needs(pv().and(up_to_cpus(16))) fn race_pv_batched_no_hits() {
        let r = run("pv-batched", false, false);
        assert_eq!(r.delta.get(TlbEvent::PoisonHits), 0);
        assert_eq!(r.bad_reads, 0);
    }
);

ktest::kernel_test!(
    needs(pv().and_cpus(2).and(up_to_cpus(16))) fn race_pv_force_skip_is_caught_by_the_detector() {
        // The sync switched off where it is needed: walkers preempted mid-walk are not
        // interrupted by the pv flush, and the table is freed under them.
        let r = run("pv-force-skip", true, true);
        assert!(
            r.syncs_dropped >= ROUNDS,
            "the fault dropped {} syncs: it did not reach the fallback path",
            r.syncs_dropped
        );
        assert!(
            r.delta.get(TlbEvent::PoisonHits) > 0,
            "the detector missed the use-after-free ({} walks)",
            r.walks
        );
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
