use super::*;

const LINE: &str = "gatherOS smp=4 scen=A pages=512 tables=free op=unmap backend=native sync=skip walkers=0 ns_median=100 ns_p99=200 tlb_ipis_per_op=3.00 cal_ipis_per_op=3.00 sync_ipis_per_op=0.00 tsc_median=250 tsc_p99=500 iters=20 pt_freed_kb=4 apic=x2apic levels=4";

#[test]
fn lines_parse_only_when_complete_and_ordered() {
    let r = Record::parse(LINE).unwrap();
    assert_eq!(r.get("op"), "unmap");
    assert!(Record::parse(&LINE.replace(" levels=4", "")).is_none());
    assert!(Record::parse(&LINE.replace("scen=A pages=512", "pages=512 scen=A")).is_none());
    assert!(Record::parse("gatherOS 0.1.0: booted via bios").is_none());
    let linux = Record::parse(&LINE.replace("gatherOS ", "linux ")).unwrap();
    assert_eq!((linux.get("os"), r.get("os")), ("linux", "gatherOS"));
    assert!(Record::parse(&LINE.replace("gatherOS ", "other ")).is_none());
}

#[test]
fn an_unreadable_result_line_is_a_failure_not_a_lost_record() {
    let mut log = BootLog::default();
    assert!(
        log.line(&LINE.replace(" levels=4", " [ 12.3] printk levels=4"))
            .is_none()
    );
    assert!(log.line("gatherOS 0.1.0: booted via bios").is_none());
    assert_eq!(log.unreadable.len(), 1, "{:?}", log.unreadable);
    assert!(
        log.unreadable[0].starts_with("unreadable result line ("),
        "{:?}",
        log.unreadable
    );
    assert!(log.failed.is_empty(), "no guest report to explain a failed boot");
    assert!(log.line(LINE).is_some());
}

#[test]
fn records_hold_the_words_of_the_line() {
    let r = Record::parse(LINE).unwrap();
    for w in LINE.split_whitespace().skip(1) {
        let (k, v) = w.split_once('=').unwrap();
        assert_eq!(r.get(k), v, "{k}");
    }
    assert_eq!(
        r.0.len(),
        FIELDS.len() + 4,
        "the fields, os, kernel, collapsed, idle"
    );
    assert_eq!(r.get("collapsed"), "20/20");
    assert!(Record::parse(&LINE.replace("op=unmap", "op=grow")).is_none());
}

#[test]
fn ops_and_scenarios_are_checked_on_the_command_line() {
    assert_eq!(
        parse_ops(bench_spec::Op::LIST).as_deref(),
        Ok(bench_spec::Op::LIST)
    );
    assert!(parse_ops("unmap,grow").unwrap_err().contains("'grow'"));
    assert!(parse_scenarios("A,C").is_ok());
    assert!(parse_scenarios("A,D").is_err());
    assert!(parse_scenarios("").is_err());
}

#[test]
fn csv_round_trips_and_baseline_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let r = Record::parse(LINE).unwrap();
    let path = dir.path().join("b.csv");
    write_csv(std::slice::from_ref(&r), &path).unwrap();
    let back = read_csv(&path).unwrap();
    assert_eq!(back, vec![r.clone()]);
    let forced = Record::parse(
        &LINE
            .replace("sync=skip", "sync=broadcast")
            .replace("ns_median=100", "ns_median=150")
            .replace("cal_ipis_per_op=3.00", "cal_ipis_per_op=6.00"),
    )
    .unwrap();
    let s = saving(&[r.clone(), forced]);
    assert!(s.contains("forced_over_skip=1.50 extra_ipis_per_op=3.00"), "{s}");
    let faster = Record::parse(&LINE.replace("ns_median=100", "ns_median=50")).unwrap();
    assert!(compare(&[faster], &back).contains("ratio=0.500"));
    assert!(table(&back).contains("unmap"));
    assert_eq!(plot(&back, dir.path()).unwrap().len(), 1);
}

#[test]
fn syncs_and_walkers_are_checked_on_the_command_line() {
    assert_eq!(
        parse_syncs("broadcast,targeted,wait").as_deref(),
        Ok("broadcast,targeted,wait")
    );
    assert!(parse_syncs("targeted,skip").unwrap_err().contains("'skip'"));
    assert!(parse_syncs("ipi").is_err());
    assert_eq!(parse_walkers("0,all").as_deref(), Ok("0,all"));
    assert!(parse_walkers("3").is_err());
    assert_eq!(
        parse_idles("never,deep,always").as_deref(),
        Ok("never,deep,always")
    );
    assert!(
        parse_idles("never,sometimes")
            .unwrap_err()
            .contains("'sometimes'")
    );
}

#[test]
fn the_idle_policy_is_part_of_the_configuration() {
    // Lines before issue 23 say none: gatherOS's idle CPUs kept the address space then.
    let r = Record::parse(LINE).unwrap();
    assert_eq!(r.get("idle"), "never");
    let linux = Record::parse(&LINE.replace("gatherOS ", "linux ")).unwrap();
    assert_eq!(linux.get("idle"), "", "Linux has no such policy");
    // A scenario C line carries the policy and the whole cycle, into the CSV and back.
    let c = LINE.replace("scen=A", "scen=C")
        + " idle=always cycle_ns_median=300 catchups_per_op=0.00 idle_left_per_op=3.00";
    let c = Record::parse(&c).unwrap();
    assert_eq!((c.get("idle"), c.get("cycle_ns_median")), ("always", "300"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.csv");
    write_csv(&[r.clone(), c.clone()], &path).unwrap();
    assert_eq!(read_csv(&path).unwrap(), vec![r.clone(), c.clone()]);
    assert!(table(std::slice::from_ref(&c)).contains("cycle_ns_median"));
    // A baseline compares a policy with the same policy only.
    let never_c = Record::parse(&(LINE.replace("scen=A", "scen=C") + " idle=never")).unwrap();
    let never = std::slice::from_ref(&never_c);
    assert_eq!(compare(std::slice::from_ref(&c), never), "");
    assert!(compare(never, never).contains("ratio=1.000"));
    // The saving pairs skip and forced under one policy.
    let forced = |idle: &str, ns: &str| {
        Record::parse(
            &(LINE
                .replace("scen=A", "scen=C")
                .replace("sync=skip", "sync=broadcast")
                .replace("ns_median=100", ns)
                + &format!(" idle={idle}")),
        )
        .unwrap()
    };
    let skip = Record::parse(&(LINE.replace("scen=A", "scen=C") + " idle=always")).unwrap();
    let s = saving(&[
        skip,
        forced("never", "ns_median=900"),
        forced("always", "ns_median=200"),
    ]);
    assert!(s.contains("idle=always forced_over_skip=2.00"), "{s}");
    assert_eq!(s.lines().count(), 1, "{s}");
}

#[test]
fn an_earlier_csv_reads_as_broadcast_without_walkers() {
    // As files before issue 21 were written: no `walkers` column, `sync=ipi`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.csv");
    let header = "os,kernel,smp,scen,pages,tables,op,backend,sync,ns_median,ns_p99,tlb_ipis_per_op,cal_ipis_per_op,sync_ipis_per_op,tsc_median,tsc_p99,iters,pt_freed_kb,apic,levels,collapsed";
    let row = "gatherOS,,2,B,1,free,unshare,native,ipi,54000,60000,0.00,1.00,1.00,140000,150000,30,0,x2apic,4,30/30";
    std::fs::write(&path, format!("{header}\n{row}\n")).unwrap();
    let old = read_csv(&path).unwrap();
    assert_eq!((old[0].get("sync"), old[0].get("walkers")), ("broadcast", "0"));
    let now = Record::parse(
        &LINE
            .replace("sync=skip", "sync=broadcast")
            .replace(
                "scen=A pages=512 tables=free op=unmap",
                "scen=B pages=1 tables=free op=unshare",
            )
            .replace("smp=4", "smp=2"),
    )
    .unwrap();
    assert!(
        compare(&[now], &old).contains("ratio="),
        "the same configuration as before"
    );
    // A file that lacks a field that was always there is not a benchmark CSV.
    std::fs::write(&path, format!("{}\n{row}\n", header.replace(",ns_p99", ""))).unwrap();
    assert!(read_csv(&path).is_err());
}

#[test]
fn walk_cost_and_unlink_to_free_lines_are_kept_and_bad_ones_are_failures() {
    let cost = "walk-cost: smp=4 backend=pv marker_cycles=1100 plain_cycles=1000 ratio=1.100 samples=200 walks_per_sample=64";
    let free = "unlink-to-free: smp=4 backend=pv sync=wait walkers=3 period=walks batches=20 median_cycles=5000 p99_cycles=9000 median_ns=1900";
    let mut log = BootLog::default();
    assert!(log.line(cost).is_none());
    assert!(log.line(free).is_none());
    assert!(log.line(&free.replace("period=walks", "period=ticks")).is_none());
    assert_eq!(log.walk_costs.len(), 1);
    assert_eq!(log.unlink_to_free.len(), 1);
    assert_eq!(log.unreadable.len(), 1, "{:?}", log.unreadable);
    assert!(
        log.unreadable[0].starts_with("unreadable unlink-to-free line (bad value for period=)"),
        "{:?}",
        log.unreadable
    );
    let mut report = Report::default();
    log.finish("gatherOS smp=4 pv", Err("killed".into()), &mut report);
    assert_eq!(walk_lines(&report), format!("{cost}\n{free}\n"));
}
