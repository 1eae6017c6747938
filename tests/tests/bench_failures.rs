//! A Linux boot that fails one configuration loses nothing else: the host keeps every
//! line measured (in the records, the table and the CSV), lists the failed
//! configuration with its errno, and the run's status says that something failed. The
//! guest's serial output is given here (what `linux-bench` prints with
//! `lb.fail=collapse:C` under Linux 7.3.4, shortened), so no Linux kernel is needed.

use boot::bench::{BootLog, Record, Report, failures, read_csv, table, write_csv};
use boot::qemu::{Outcome, Verdict};

const GUEST: &str = "\
[    0.000000] Linux version 7.3.4+deb13-amd64
linux-bench: kernel=7.3.4+deb13-amd64 cpus=4 apic=x2apic levels=4 iters=20
bench: configurations=3 iters=20
linux smp=4 scen=B pages=512 tables=free op=collapse backend=native sync=ipi ns_median=20000 ns_p99=30000 tlb_ipis_per_op=0.00 cal_ipis_per_op=3.10 sync_ipis_per_op=3.10 tsc_median=50000 tsc_p99=70000 iters=20 pt_freed_kb=4 apic=x2apic levels=4 collapsed=20/23
linux-bench: config-failed op=collapse scen=C pages=512 tables=free errno=11 reason=\"madvise(MADV_COLLAPSE): no try succeeded (100 tries): Resource temporarily unavailable (os error 11)\"
linux smp=4 scen=B pages=1 tables=free op=unshare backend=native sync=ipi ns_median=600 ns_p99=900 tlb_ipis_per_op=0.00 cal_ipis_per_op=3.00 sync_ipis_per_op=3.00 tsc_median=1500 tsc_p99=2000 iters=20 pt_freed_kb=0 apic=x2apic levels=4
bench: done
";

fn boot(lines: &str, verdict: Verdict) -> Report {
    let mut log = BootLog::default();
    for l in lines.lines() {
        log.line(l);
    }
    let outcome = Outcome {
        verdict,
        lines: lines.lines().map(String::from).collect(),
    };
    let mut report = Report::default();
    log.finish(
        "linux smp=4 linux-binary-unsigned-7.3.4+deb13-amd64",
        Ok(outcome),
        &mut report,
    );
    report
}

#[test]
fn a_failed_configuration_keeps_the_other_lines_and_is_listed() {
    let report = boot(GUEST, Verdict::Failure);
    let ops: Vec<(&str, &str)> = report
        .records
        .iter()
        .map(|r| (r.get("op"), r.get("scen")))
        .collect();
    assert_eq!(ops, [("collapse", "B"), ("unshare", "B")]);
    let collapse = &report.records[0];
    assert_eq!(collapse.get("collapsed"), "20/23");
    assert_eq!(collapse.get("kernel"), "7.3.4+deb13-amd64");
    // A line without the field: every iteration succeeded.
    assert_eq!(report.records[1].get("collapsed"), "20/20");

    // The failure is the configuration's, with its errno; the boot's Failure verdict is
    // explained by it, so the boot is not listed a second time.
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let f = &report.failures[0];
    assert!(f.boot.contains("7.3.4"), "{f:?}");
    assert!(
        f.reason
            .starts_with("op=collapse scen=C pages=512 tables=free errno=11 "),
        "{f:?}"
    );
    assert!(!report.ok(), "the run's status says something failed");
    let listed = failures(&report);
    assert!(
        listed.starts_with("failed: linux smp=4 linux-binary-unsigned-7.3.4+deb13-amd64: op=collapse scen=C"),
        "{listed}"
    );

    // The table and the CSV hold both measured lines.
    let t = table(&report.records);
    assert_eq!(t.lines().count(), 3, "{t}");
    assert!(t.contains("collapsed") && t.contains("20/23"), "{t}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bench.csv");
    write_csv(&report.records, &csv).unwrap();
    assert_eq!(read_csv(&csv).unwrap(), report.records);
}

#[test]
fn a_boot_that_dies_midway_keeps_its_lines_and_names_its_last_one() {
    // Cut after the first record: no `bench: done`, so the boot itself failed.
    let cut: String = GUEST.lines().take(4).map(|l| format!("{l}\n")).collect();
    let report = boot(
        &(cut + "Kernel panic - not syncing: error in something\n"),
        Verdict::NoVerdict(Some(1), String::new()),
    );
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.failures.len(), 1);
    assert!(
        report.failures[0].reason.contains("Kernel panic"),
        "{:?}",
        report.failures
    );

    // A timeout (QEMU killed): the lines read so far are kept too.
    let mut log = BootLog::default();
    for l in GUEST.lines().take(4) {
        log.line(l);
    }
    let mut report = Report::default();
    log.finish(
        "linux smp=8 x",
        Err("QEMU timed out after 5 s".into()),
        &mut report,
    );
    assert_eq!(
        (report.records.len(), report.failures[0].reason.as_str()),
        (1, "QEMU timed out after 5 s")
    );
}

#[test]
fn lines_and_files_from_before_the_collapsed_field_still_read() {
    let old = "linux smp=2 scen=A pages=512 tables=free op=collapse backend=native sync=ipi ns_median=1 ns_p99=2 tlb_ipis_per_op=1.00 cal_ipis_per_op=2.00 sync_ipis_per_op=1.00 tsc_median=3 tsc_p99=4 iters=9 pt_freed_kb=4 apic=x2apic levels=4";
    let r = Record::parse(old).unwrap();
    assert_eq!((r.get("collapsed"), r.get("kernel")), ("9/9", ""));
    assert!(Record::parse(&format!("{old} unknown=1")).is_none());
    // The CSV committed before this change (os column, no kernel or collapsed).
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench/bench-a-busy.csv");
    let rows = read_csv(&csv).unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r.get("collapsed") == format!("{0}/{0}", r.get("iters")))
    );
}

/// The same through a real Linux boot (Debian's 6.12, fetched once as `bench --os linux`
/// does; about 10 s): `lb.fail=collapse:B` makes the collapse report EAGAIN on every try.
#[test]
fn a_real_linux_boot_with_one_failing_configuration_keeps_the_others() {
    use boot::bench::{BenchPlan, run};
    boot::install::ensure().expect("QEMU");
    let plan = BenchPlan {
        smp: vec![2],
        modes: vec!["native".into()],
        ops: "unmap,collapse".into(),
        scenarios: "B".into(),
        iters: Some(2),
        syncs: "broadcast".into(),
        walkers: "0".into(),
        idle: None,
        spin: "halt".into(),
        os: vec!["linux".into()],
        linux_kernel: vec!["default".into()],
        linux_args: "lb.fail=collapse:B".into(),
        // Whole boot: generous; the verdict on a hung guest is its silence.
        timeout_secs: 3600,
        silence_secs: 300,
    };
    let report = run(&plan).expect("the Linux guest (kernel, program, initramfs)");
    let got = report.describe();
    println!("{got}");
    let ops: Vec<&str> = report.records.iter().map(|r| r.get("op")).collect();
    assert_eq!(
        ops, ["unmap"; 3],
        "the three unmap configurations are kept; the run:\n{got}"
    );
    assert_eq!(report.failures.len(), 1, "one failure; the run:\n{got}");
    let reason = &report.failures[0].reason;
    assert!(
        reason.starts_with("op=collapse scen=B pages=512 tables=free errno=11 "),
        "the failure is the collapse's; the run:\n{got}"
    );
    assert!(!report.ok());
}
