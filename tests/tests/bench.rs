//! The benchmark runs (a short matrix) and its lines are well-formed, with the IPI
//! counts each sync form promises. No timing is asserted: figures are for people, not
//! for tests.

use boot::bench::{BenchPlan, FIELDS, Record, run};

#[test]
fn short_bench_matrix_runs_and_lines_are_well_formed() {
    boot::install::ensure().expect("QEMU");
    let plan = BenchPlan {
        smp: vec![2],
        modes: vec!["native".into(), "invlpgb".into()],
        ops: "unmap,unshare".into(),
        scenarios: "A,B,C".into(),
        iters: Some(2),
        syncs: "broadcast,targeted,wait".into(),
        walkers: "0,all".into(),
        // Scenario C once per policy: Linux's (idle CPUs keep the address space) and
        // the one that lets go at every halt.
        idle: Some("never,always".into()),
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
    // unmap: 3 page/table variants; unshare: 1; three scenarios. Per configuration: native
    // the key's skip and the three forms forced, invlpgb the three forms; scenario A once
    // more with its task walking (walkers=1), scenario C once per idle policy.
    let rows = |forms_per_walker_count: usize| 4 * (2 + 1 + 2) * forms_per_walker_count;
    assert_eq!(records.len(), rows(4) + rows(3), "the run:\n{got}");
    for r in &records {
        // Scenario C's lines also time the whole cycle and count what the tasks paid.
        let cycle = if r.get("scen") == "C" { 3 } else { 0 };
        assert_eq!(
            r.0.len(),
            FIELDS.len() + 4 + cycle,
            "the fields, os, kernel, collapsed, idle (and the cycle's three): {r:?}"
        );
        assert_eq!(r.get("os"), "gatherOS");
        assert_eq!(r.get("smp"), "2");
        assert!(r.get("ns_median").parse::<u64>().is_ok());
        let walkers: f64 = r.get("walkers").parse().unwrap();
        assert!(
            walkers == 0.0 || (walkers == 1.0 && r.get("scen") == "A"),
            "{:?}",
            r.0
        );
        // A and B run with the boot's policy (the kernel's default, whichever it is); in
        // C, a CPU that lets go of the address space at every halt takes no flush IPI,
        // and lets go once per cycle, while one that keeps it is interrupted whenever a
        // table is freed (native).
        let idle = r.get("idle");
        let policies: &[&str] = if r.get("scen") == "C" {
            &["never", "always"]
        } else {
            &["never", "deep", "always"]
        };
        assert!(policies.contains(&idle), "{:?}", r.0);
        if r.get("scen") == "C" {
            assert!(r.get("cycle_ns_median").parse::<u64>().is_ok(), "{:?}", r.0);
            let tlb: f64 = r.get("tlb_ipis_per_op").parse().unwrap();
            let left: f64 = r.get("idle_left_per_op").parse().unwrap();
            if idle == "always" {
                assert_eq!(tlb, 0.0, "no flush IPI to a CPU that let go: {:?}", r.0);
                assert!(left >= 1.0, "the other CPU let go every cycle: {:?}", r.0);
            } else {
                assert_eq!(left, 0.0, "never lets go: {:?}", r.0);
                if r.get("backend") == "native" && r.get("tables") == "free" {
                    assert_eq!(tlb, 1.0, "the lazy CPU is interrupted: {:?}", r.0);
                }
            }
        }
        let sync: f64 = r.get("sync_ipis_per_op").parse().unwrap();
        match r.get("sync") {
            "skip" | "wait" => assert_eq!(sync, 0.0, "no sync IPI: {:?}", r.0),
            "targeted" => assert!(sync <= walkers, "at most one per walker: {:?}", r.0),
            "broadcast" if r.get("op") == "unshare" => {
                assert_eq!(sync, 1.0, "every other CPU: {:?}", r.0)
            }
            "broadcast" => {}
            other => panic!("sync={other}: {:?}", r.0),
        }
    }
    // Per boot: the walker's price, and the unlink-to-free time per form and walker count.
    assert_eq!(report.walk_costs.len(), 2, "the run:\n{got}");
    assert!(
        report
            .walk_costs
            .iter()
            .all(|c| c.marker_cycles > 0 && c.plain_cycles > 0)
    );
    let frees = &report.unlink_to_free;
    assert_eq!(frees.len(), 2 * 3 * 2, "the run:\n{got}");
    assert!(
        frees.iter().all(|u| u.batches > 0 && u.median_cycles > 0),
        "{frees:?}"
    );
}
