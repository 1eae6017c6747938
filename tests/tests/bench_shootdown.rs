//! `bench=shootdown` (issue 24) at -smp 2 with few rounds: its lines read, every (pages,
//! targets, mode) and the round trip are there, and each round counted what it must: one
//! flush IPI per target in every mode, early acknowledgements in early mode only. No
//! timing is asserted: the cycles are for people. About 20 s.

use bench_spec::{SHOOTDOWN_PAGES, Shootdown, ShootdownMode};
use boot::bench_shootdown::{ShootdownPlan, check, run};

#[test]
fn shootdown_rounds_count_one_ipi_per_target_and_early_acks_only_in_early_mode() {
    boot::install::ensure().expect("QEMU");
    let plan = ShootdownPlan {
        smp: vec![2],
        iters: 5,
        // Whole boot: generous; the verdict on a hung guest is its silence.
        timeout_secs: 1800,
        silence_secs: 300,
    };
    let report = run(&plan).expect("bench=shootdown boot");
    let got = report.describe();
    assert_eq!(report.failures, vec![], "nothing failed; the run:\n{got}");
    let lines = &report.shootdowns;
    assert_eq!(
        check(lines, &plan.smp),
        Vec::<String>::new(),
        "the lines: {lines:#?}"
    );
    // One target at -smp 2: three modes per size, and the round trip.
    assert_eq!(
        lines.len(),
        SHOOTDOWN_PAGES.len() * ShootdownMode::ALL.len() + 1,
        "{lines:#?}"
    );
    for l in lines {
        match l {
            Shootdown::Round(r) => {
                assert_eq!((r.smp, r.targets, r.iters), (2, 1, 5), "{r}");
                assert_eq!(r.ipis_per_round.0, 1.0, "one flush IPI per round: {r}");
                let early = if r.mode == ShootdownMode::Early { 1.0 } else { 0.0 };
                assert_eq!(
                    r.early_acks_per_round.0, early,
                    "early acks in early mode only: {r}"
                );
                assert!(r.cycles_median > 0, "{r}");
                if r.mode == ShootdownMode::Serial {
                    assert_eq!(r.ratio_to_serial, 1.0, "{r}");
                }
            }
            Shootdown::RoundTrip(t) => {
                assert_eq!((t.smp, t.targets), (2, 1), "{t}");
                // The round trips of all three sizes' iterations.
                assert_eq!(t.iters, 5 * SHOOTDOWN_PAGES.len(), "{t}");
                assert!(t.cycles_median > 0, "{t}");
            }
        }
    }
}
