//! The benchmark runs (a short matrix) and its lines are well-formed. No timing is
//! asserted: figures are for people, not for tests.

use boot::bench::{BenchPlan, FIELDS, Record, run};

#[test]
fn short_bench_matrix_runs_and_lines_are_well_formed() {
    boot::install::ensure().expect("QEMU");
    let plan = BenchPlan {
        smp: vec![2],
        modes: vec!["native".into()],
        ops: "unmap,unshare".into(),
        scenarios: "A,B,C".into(),
        iters: 2,
        spin: "halt".into(),
        os: vec!["gatheros".into()],
        linux_kernel: vec![],
        linux_args: String::new(),
        // Whole boot: generous; the verdict on a hung guest is its silence.
        timeout_secs: 3600,
        silence_secs: 300,
    };
    let report = run(&plan).expect("bench boot");
    let got = report.describe();
    assert_eq!(report.failures, vec![], "nothing failed; the run:\n{got}");
    let records: Vec<Record> = report.records;
    // unmap: 3 page/table variants; unshare: 1; three scenarios; skip and forced.
    assert_eq!(records.len(), (3 + 1) * 3 * 2, "the run:\n{got}");
    for r in &records {
        assert_eq!(
            r.0.len(),
            FIELDS.len() + 3,
            "the fields, os, kernel, collapsed: {r:?}"
        );
        assert_eq!(r.get("os"), "gatherOS");
        assert_eq!(r.get("smp"), "2");
        assert!(r.get("ns_median").parse::<u64>().is_ok());
        let sync: f64 = r.get("sync_ipis_per_op").parse().unwrap();
        if r.get("sync") == "skip" {
            assert_eq!(sync, 0.0, "{:?}", r.0);
        }
    }
}
