use super::*;
use bench_spec::{PerOp, RoundTrip};

/// Every line a boot at `smp` CPUs prints, each round counting what it must.
fn complete(smp: usize) -> Vec<Shootdown> {
    let mut lines = Vec::new();
    for k in 1..smp {
        for pages in SHOOTDOWN_PAGES {
            for (i, &mode) in ShootdownMode::ALL.iter().enumerate() {
                lines.push(Shootdown::Round(FlushRound {
                    smp,
                    pages,
                    targets: k,
                    mode,
                    cycles_median: 1000 - 100 * i as u64,
                    ratio_to_serial: (1000 - 100 * i) as f64 / 1000.0,
                    ipis_per_round: PerOp(k as f64),
                    early_acks_per_round: PerOp(if mode == ShootdownMode::Early {
                        k as f64
                    } else {
                        0.0
                    }),
                    iters: 200,
                }));
            }
        }
        lines.push(Shootdown::RoundTrip(RoundTrip {
            smp,
            targets: k,
            cycles_median: 500,
            iters: 600,
        }));
    }
    lines
}

#[test]
fn the_boot_options_name_the_benchmark_and_its_rounds() {
    assert_eq!(args(7), "bench=shootdown bench.iters=7");
}

#[test]
fn a_complete_run_passes_the_check() {
    let mut lines = complete(2);
    lines.extend(complete(4));
    assert_eq!(lines.len(), 10 + 3 * 10);
    assert_eq!(check(&lines, &[2, 4]), Vec::<String>::new());
}

#[test]
fn missing_doubled_foreign_and_miscounted_lines_are_each_named() {
    let mut lines = complete(2);
    let removed = lines.remove(1); // pages=1 targets=1 mode=concurrent
    assert!(removed.to_string().contains("pages=1 targets=1 mode=concurrent"));
    // Now: serial, early (pages 1), then serial, concurrent, early (pages 33), ...
    lines.push(lines[0]);
    lines.extend(
        complete(3)
            .into_iter()
            .filter(|l| matches!(l, Shootdown::RoundTrip(t) if t.targets == 2)),
    );
    if let Shootdown::Round(r) = &mut lines[1] {
        r.early_acks_per_round = PerOp(0.5);
    }
    if let Shootdown::Round(r) = &mut lines[2] {
        r.ipis_per_round = PerOp(0.0);
    }
    assert_eq!(
        check(&lines, &[2]),
        [
            "smp=2 pages=1 targets=1 mode=early: early_acks_per_round=0.5 but expected 1",
            "smp=2 pages=33 targets=1 mode=serial: ipis_per_round=0 but expected 1",
            "smp=2 pages=1 targets=1 mode=serial: 2 lines",
            "smp=2 pages=1 targets=1 mode=concurrent: missing",
            "smp=3 targets=2 mode=roundtrip: not measured in this run",
        ]
    );
}

#[test]
fn the_table_has_one_row_per_configuration_with_ratios_and_floor() {
    let t = table(&complete(3));
    let rows: Vec<&str> = t.lines().collect();
    assert_eq!(rows.len(), 1 + 2 * 3, "{t}");
    let head: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        head,
        [
            "smp",
            "pages",
            "targets",
            "serial",
            "concurrent",
            "early",
            "concurrent/serial",
            "early/serial",
            "roundtrip"
        ]
    );
    let first: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(
        first,
        ["3", "1", "1", "1000", "900", "800", "0.900", "0.800", "500"]
    );
    // A mode missing shows as `-`, not as a figure.
    let partial: Vec<Shootdown> = complete(2)
        .into_iter()
        .filter(|l| !l.to_string().contains("mode=early"))
        .collect();
    assert!(
        table(&partial).lines().nth(1).unwrap().contains(" - "),
        "{}",
        table(&partial)
    );
}

#[test]
fn the_csv_holds_each_line_under_the_spec_s_columns() {
    let lines = complete(2);
    let text = csv(&lines);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "smp,pages,targets,mode,cycles_median,ratio_to_serial,ipis_per_round,early_acks_per_round,iters"
    );
    assert_eq!(rows.len(), 1 + lines.len());
    assert_eq!(rows[3], "2,1,1,early,800,0.800,1.00,1.00,200");
    assert_eq!(rows[10], "2,,1,roundtrip,500,,,,600");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shootdown.csv");
    write_csv(&lines, &path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_boot_s_log_keeps_its_lines_and_the_kernel_s_count_failures() {
    let mut log = crate::bench::BootLog::default();
    for l in complete(2) {
        assert!(log.line(&l.to_string()).is_none(), "not a matrix record");
    }
    log.line("shootdown: smp=2 pages=1 targets=1 mode=lazy cycles_median=1 ratio_to_serial=1.000 ipis_per_round=1.00 early_acks_per_round=0.00 iters=1");
    log.line("error: bench-shootdown: pages=1 targets=1 mode=serial: ipis_per_round=0 but expected 1");
    assert_eq!(log.shootdowns, complete(2));
    assert_eq!(log.unreadable.len(), 1, "{:?}", log.unreadable);
    assert!(
        log.unreadable[0].starts_with("unreadable shootdown line (bad value for mode=)"),
        "{:?}",
        log.unreadable
    );
    assert_eq!(
        log.failed,
        ["pages=1 targets=1 mode=serial: ipis_per_round=0 but expected 1"]
    );
}

#[test]
fn the_plan_takes_200_rounds_unless_told() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        plan: BenchPlan,
    }
    let plan = |args: &[&str]| ShootdownPlan::of(&Cli::parse_from([&["bench"], args].concat()).plan);
    assert_eq!(plan(&[]).iters, 200);
    assert_eq!(plan(&[]).smp, [2, 4, 8]);
    assert_eq!(plan(&["--iters", "5", "--smp", "2"]).iters, 5);
    assert_eq!(plan(&["--iters", "5", "--smp", "2"]).smp, [2]);
}
