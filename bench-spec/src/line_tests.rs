use super::*;
use crate::{Idle, Op, Scenario, Tables};

/// A line printed by the kernel (`cargo run -- --smp 4 --args "bench=tlb bench.iters=5"`,
/// QEMU TCG; its `sync=broadcast walkers=0` as issue 21 writes what was `sync=ipi`).
const GATHEROS: &str = "gatherOS smp=4 scen=A pages=1 tables=free op=unshare backend=native sync=broadcast walkers=0 ns_median=164594 ns_p99=168406 tlb_ipis_per_op=3.00 cal_ipis_per_op=6.00 sync_ipis_per_op=3.00 tsc_median=426582 tsc_p99=436462 iters=5 pt_freed_kb=0 apic=x2apic levels=4";
/// A line printed by `linux-bench` under Linux 6.12 (docs/bench/bench-linux-6.12-7.3.4.csv;
/// `sync=broadcast walkers=0` as above).
const LINUX: &str = "linux smp=4 scen=C pages=512 tables=free op=collapse backend=native sync=broadcast walkers=0 ns_median=10575185 ns_p99=42846347 tlb_ipis_per_op=3.00 cal_ipis_per_op=6.63 sync_ipis_per_op=3.63 tsc_median=27436864 tsc_p99=111213310 iters=200 pt_freed_kb=0 apic=x2apic levels=4 collapsed=200/200";

#[test]
fn real_lines_parse_and_print_back_byte_for_byte() {
    let g = Line::parse(GATHEROS).unwrap();
    assert_eq!(g.os, Os::GatherOS);
    assert_eq!(
        g.config,
        Config {
            op: Op::Unshare,
            scen: Scenario::A,
            pages: 1,
            tables: Tables::Free
        }
    );
    assert_eq!(
        (g.backend, g.sync, g.smp, g.iters),
        (Backend::Native, Sync::Broadcast, 4, 5)
    );
    assert_eq!(g.cal_ipis_per_op, PerOp(6.0));
    assert_eq!(g.collapsed, None);
    assert_eq!(g.to_string(), GATHEROS);
    let l = Line::parse(LINUX).unwrap();
    assert_eq!(l.os, Os::Linux);
    assert_eq!(l.collapsed, Some(Collapsed { ok: 200, tried: 200 }));
    assert_eq!(l.to_string(), LINUX);
}

#[test]
fn fields_are_the_line_in_order() {
    let g = Line::parse(GATHEROS).unwrap();
    let mut names = Vec::new();
    g.for_each_field(|n, _| {
        names.push(n);
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(names, FIELDS);
    let l = Line::parse(LINUX).unwrap();
    let mut last = String::new();
    l.for_each_field(|n, v| {
        last = format!("{n}={v}");
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(last, "collapsed=200/200");
}

#[test]
fn per_op_counts_have_two_decimals() {
    assert_eq!(PerOp::of(7, 3).to_string(), "2.33");
    assert_eq!(PerOp::of(30, 30).to_string(), "1.00");
    assert_eq!(PerOp::of(0, 30).to_string(), "0.00");
    assert_eq!(PerOp::of(21, 30).to_string(), "0.70");
}

#[test]
fn round_trips_every_configuration() {
    let base = Line::parse(GATHEROS).unwrap();
    for &op in Op::ALL {
        for &scen in Scenario::ALL {
            for config in Config::matrix(op, scen) {
                for (&backend, &sync) in Backend::ALL.iter().zip(Sync::ALL.iter().cycle()) {
                    let line = Line {
                        config,
                        backend,
                        sync,
                        walkers: backend as usize * 3,
                        tlb_ipis_per_op: PerOp(2.25),
                        collapsed: Some(Collapsed { ok: 3, tried: 5 }),
                        ..base
                    };
                    let text = line.to_string();
                    assert_eq!(Line::parse(&text), Ok(line), "{text}");
                    // A count with more decimals is written with two, and reads
                    // back as those two.
                    let more = Line {
                        tlb_ipis_per_op: PerOp::of(7, 3),
                        ..line
                    };
                    let text = more.to_string();
                    assert_eq!(Line::parse(&text).unwrap().to_string(), text);
                }
            }
        }
    }
}

#[test]
fn malformed_lines_are_refused() {
    use ParseError::*;
    let cases: &[(String, ParseError)] = &[
        ("gatherOS 0.1.0: booted via bios".into(), Expected("smp")),
        ("gatherOS: done (ok)".into(), NotALine),
        ("".into(), NotALine),
        (GATHEROS.replace("gatherOS ", "other "), NotALine),
        (GATHEROS.replace(" levels=4", ""), Missing("levels")),
        (
            GATHEROS.replace("scen=A pages=1", "pages=1 scen=A"),
            Expected("scen"),
        ),
        (GATHEROS.replace("op=unshare", "op=frobnicate"), BadValue("op")),
        (GATHEROS.replace("scen=A", "scen=D"), BadValue("scen")),
        (
            GATHEROS.replace("ns_median=164594", "ns_median=-1"),
            BadValue("ns_median"),
        ),
        (GATHEROS.replace("=3.00", "=NaN"), BadValue("tlb_ipis_per_op")),
        (GATHEROS.replace("smp=4", "smp"), Expected("smp")),
        (format!("{GATHEROS} unknown=1"), Trailing),
        (GATHEROS.replace(" walkers=0", ""), Expected("walkers")),
        (GATHEROS.replace("walkers=0", "walkers=all"), BadValue("walkers")),
        (GATHEROS.replace("sync=broadcast", "sync=ipi"), BadValue("sync")),
        (format!("{GATHEROS} collapsed=3/2"), BadValue("collapsed")),
        (format!("{GATHEROS} collapsed=3"), BadValue("collapsed")),
        (format!("{LINUX} levels=4"), Trailing),
        (format!("{GATHEROS} idle=sometimes"), BadValue("idle")),
        (
            format!("{GATHEROS} idle=deep cycle_ns_median=x"),
            BadValue("cycle_ns_median"),
        ),
        (format!("{GATHEROS} idle"), Expected("idle")),
        // Optional fields only in their order, each at most once.
        (format!("{GATHEROS} cycle_ns_median=5 idle=deep"), Trailing),
        (format!("{GATHEROS} idle=deep idle=never"), Trailing),
        (format!("{GATHEROS} idle=never collapsed=1/1"), Trailing),
    ];
    for (text, err) in cases {
        assert_eq!(Line::parse(text), Err(*err), "{text}");
    }
}

/// A scenario C line with the idle policy and the whole cycle (issue 23's fields).
const CYCLE: &str = "gatherOS smp=4 scen=C pages=1 tables=free op=unmap backend=native sync=skip walkers=0 ns_median=90000 ns_p99=120000 tlb_ipis_per_op=0.00 cal_ipis_per_op=0.00 sync_ipis_per_op=0.00 tsc_median=233000 tsc_p99=311000 iters=30 pt_freed_kb=4 apic=x2apic levels=4 idle=always cycle_ns_median=410000 catchups_per_op=0.00 idle_left_per_op=3.00";

#[test]
fn idle_and_cycle_fields_read_and_print_back() {
    let c = Line::parse(CYCLE).unwrap();
    assert_eq!(c.idle, Some(Idle::Always));
    assert_eq!(c.cycle_ns_median, Some(410_000));
    assert_eq!(c.catchups_per_op, Some(PerOp(0.0)));
    assert_eq!(c.idle_left_per_op, Some(PerOp(3.0)));
    assert_eq!(c.collapsed, None);
    assert_eq!(c.to_string(), CYCLE);
    // Scenarios A and B carry the policy alone.
    let a = CYCLE.split(" cycle_ns_median").next().unwrap();
    let a = Line::parse(a).unwrap();
    assert_eq!(
        (a.idle, a.cycle_ns_median, a.idle_left_per_op),
        (Some(Idle::Always), None, None)
    );
    // Every optional field after the one before it, with any of them missing.
    let all = format!("{LINUX} idle=deep cycle_ns_median=7 catchups_per_op=1.50 idle_left_per_op=0.25");
    let l = Line::parse(&all).unwrap();
    assert_eq!(l.collapsed, Some(Collapsed { ok: 200, tried: 200 }));
    assert_eq!((l.idle, l.cycle_ns_median), (Some(Idle::Deep), Some(7)));
    assert_eq!(l.to_string(), all);
}

#[test]
fn lines_without_the_idle_fields_still_read() {
    // Earlier gatherOS lines and linux-bench's carry none of them.
    for text in [GATHEROS, LINUX] {
        let l = Line::parse(text).unwrap();
        assert_eq!(
            (l.idle, l.cycle_ns_median, l.catchups_per_op, l.idle_left_per_op),
            (None, None, None, None),
            "{text}"
        );
    }
}
