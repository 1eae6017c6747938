use super::*;

const LINE: &str = "gatherOS smp=4 scen=A pages=512 tables=free op=unmap backend=native sync=skip ns_median=100 ns_p99=200 tlb_ipis_per_op=3.00 cal_ipis_per_op=3.00 sync_ipis_per_op=0.00 tsc_median=250 tsc_p99=500 iters=20 pt_freed_kb=4 apic=x2apic levels=4";

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
    assert_eq!(r.0.len(), FIELDS.len() + 3, "the fields, os, kernel, collapsed");
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
            .replace("sync=skip", "sync=ipi")
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
