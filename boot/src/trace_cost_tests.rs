use super::*;

const LINE: &str = "gatherOS smp=4 scen=A pages=512 tables=free op=collapse backend=native sync=skip walkers=0 ns_median=1000 ns_p99=2000 tlb_ipis_per_op=3.00 cal_ipis_per_op=3.00 sync_ipis_per_op=0.00 tsc_median=2500 tsc_p99=5000 iters=60 pt_freed_kb=4 apic=x2apic levels=4";

/// The record of `LINE` (with `edit` applied) as booted from `kernel`.
fn rec(kernel: &str, ns: u32, edit: impl Fn(String) -> String) -> Record {
    let mut r = Record::parse(&edit(LINE.replace("ns_median=1000", &format!("ns_median={ns}")))).unwrap();
    r.0.insert("kernel".into(), kernel.into());
    r
}

fn same(s: String) -> String {
    s
}

fn scen_c(s: String) -> String {
    s.replace("scen=A", "scen=C")
}

#[test]
fn medians_over_boots_are_paired_per_configuration_whatever_the_kernel() {
    // Interleaved as a run boots them: traced, untraced, traced, untraced, traced, untraced.
    let records = vec![
        rec(TRACED, 1000, same),
        rec(TRACED, 2000, scen_c),
        rec(UNTRACED, 1010, same),
        rec(UNTRACED, 1900, scen_c),
        rec(TRACED, 1100, same),
        rec(TRACED, 2200, scen_c),
        rec(UNTRACED, 990, same),
        rec(UNTRACED, 2100, scen_c),
        rec(TRACED, 900, same),
        rec(TRACED, 2000, scen_c),
        rec(UNTRACED, 1000, same),
        rec(UNTRACED, 2000, scen_c),
    ];
    let p = pairs(&records);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].config.starts_with("smp=4 scen=A pages=512"),
        "{:?}",
        p[0].config
    );
    assert_eq!((p[0].traced_ns, p[0].untraced_ns), (1000.0, 1000.0));
    assert_eq!((p[1].traced_ns, p[1].untraced_ns), (2000.0, 2000.0));
    assert_eq!(p[0].ratio, 1.0);
    assert_eq!(p[0].boots, (3, 3));
    // Per round: 1000/1010, 1100/990, 900/1000.
    assert!((p[0].paired - 1000.0 / 1010.0).abs() < 1e-9, "{}", p[0].paired);
    // The traced kernel's boots of rounds 1 and 3 (1000, 900) over round 2's (1100).
    assert!((p[0].null - 950.0 / 1100.0).abs() < 1e-9, "{}", p[0].null);
    let nulls = null_summary(&p).unwrap();
    assert_eq!((nulls.configs, nulls.max), (2, 2000.0 / 2200.0));
    // A configuration only one kernel measured (its other boot failed) is not paired.
    let mut one_sided = records.clone();
    one_sided.push(rec(TRACED, 5000, |s| s.replace("sync=skip", "sync=broadcast")));
    assert_eq!(pairs(&one_sided).len(), 2);
}

#[test]
fn the_ratio_is_traced_over_untraced_and_the_summary_spans_them() {
    let records = vec![
        rec(TRACED, 1100, same),
        rec(UNTRACED, 1000, same),
        rec(TRACED, 900, scen_c),
        rec(UNTRACED, 1000, scen_c),
        rec(TRACED, 1000, |s| s.replace("op=collapse", "op=unmap")),
        rec(UNTRACED, 1000, |s| s.replace("op=collapse", "op=unmap")),
    ];
    let p = pairs(&records);
    let ratios: Vec<f64> = p.iter().map(|p| p.ratio).collect();
    assert_eq!(ratios, vec![1.1, 0.9, 1.0]);
    let s = summary(&p).unwrap();
    assert_eq!((s.configs, s.median, s.min, s.max), (3, 1.0, 0.9, 1.1));
    assert_eq!(summary(&[]), None);
    let (text, agree) = render(&records);
    assert!(agree, "{text}");
    assert!(
        text.contains("traced_over_untraced=1.100 paired=1.100 boots=1+1 null=NaN"),
        "{text}"
    );
    assert_eq!(null_summary(&p), None, "one round has no null ratio");
    assert!(!text.contains("trace-cost-null"), "{text}");
    assert!(
        text.contains("trace-cost-summary: configs=3 traced_over_untraced median=1.000 min=0.900 max=1.100"),
        "{text}"
    );
}

#[test]
fn medians_of_even_and_odd_counts() {
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    assert!(median(Vec::new()).is_nan());
}

#[test]
fn a_different_ipi_count_in_either_kernel_fails_the_run() {
    let agree = vec![
        rec(TRACED, 1000, same),
        rec(UNTRACED, 1000, same),
        rec(TRACED, 1000, same),
    ];
    assert!(ipi_differences(&agree).is_empty());
    let six = |s: String| s.replace("cal_ipis_per_op=3.00", "cal_ipis_per_op=6.00");
    // One boot off in either kernel is a timing accident, not the build: not a difference.
    let mut odd = agree.clone();
    odd.push(rec(UNTRACED, 1000, same));
    odd.push(rec(TRACED, 1000, six));
    assert!(ipi_differences(&odd).is_empty(), "{:?}", ipi_differences(&odd));
    for kernel in [TRACED, UNTRACED] {
        // Every boot of one kernel counts otherwise: that kernel behaves otherwise.
        let records: Vec<Record> = agree
            .iter()
            .filter(|r| r.get("kernel") != kernel)
            .cloned()
            .chain([rec(kernel, 1000, six), rec(kernel, 1000, six)])
            .collect();
        let d = ipi_differences(&records);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("scen=A") && d[0].contains("3.00/6.00/0.00"),
            "{d:?}"
        );
        let (text, ok) = render(&records);
        assert!(!ok && text.contains("trace-cost-ipis: DIFFER"), "{text}");
    }
    // Other configurations' counts are their own.
    let mut other = agree.clone();
    other.push(rec(UNTRACED, 1000, |s| {
        scen_c(s).replace("cal_ipis_per_op=3.00", "cal_ipis_per_op=6.00")
    }));
    assert!(ipi_differences(&other).is_empty());
}

#[test]
fn the_footprint_line_gives_the_text_difference_and_the_sites() {
    let traced = Footprint {
        text_bytes: 1100,
        static_key_sites: 44,
        trace_sites: 40,
    };
    let untraced = Footprint {
        text_bytes: 1000,
        static_key_sites: 4,
        trace_sites: 0,
    };
    let line = render_footprints(&traced, &untraced);
    assert!(line.contains("diff=+100 (+10.00%)"), "{line}");
    assert!(line.contains("trace_key_sites trace-off=40 untraced=0"), "{line}");
}
