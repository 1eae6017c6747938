//! `cargo run -- trace --op collapse --scen C --smp 4` as the README shows it: one boot
//! (about 10-60 s), both runs listed with the events a lazy collapse must show, the order
//! check passed, and the written trace.json and trace.svg well-formed (the JSON by the
//! same format check as boot's unit test). No timing is asserted.

use boot::trace::{TracePlan, json_check, run};

#[test]
fn collapse_in_scenario_c_traces_the_skip_and_the_forced_sync() {
    boot::install::ensure().expect("QEMU");
    let out = tempfile::tempdir().unwrap();
    let plan = TracePlan {
        op: "collapse".parse().unwrap(),
        scen: "C".parse().unwrap(),
        smp: 4,
        mode: "native".parse().unwrap(),
        sync: "broadcast".parse().unwrap(),
        idle: "never".parse().unwrap(),
        out: out.path().to_path_buf(),
        from: None,
        timeout: 900,
    };
    let traced = run(&plan).expect("trace boot");
    let got = format!("{}\nthe boot: {}", traced.listing, traced.boot);
    assert!(traced.ok, "order check and boot passed:\n{got}");
    let labels: Vec<String> = traced.runs.iter().map(|r| r.label()).collect();
    assert_eq!(labels, ["sync=skip (key)", "sync=broadcast (forced)"], "{got}");
    let runs: Vec<&str> = traced.listing.split("trace: run ").skip(1).collect();
    assert_eq!(runs.len(), 2, "{got}");
    for (i, run) in runs.iter().enumerate() {
        let has = |words: &str| {
            run.lines()
                .any(|l| words.split(' ').all(|w| l.split(' ').any(|x| x == w)))
        };
        for words in [
            "cpu=0 event=flush_begin",
            "cpu=1 event=flush_run",
            "cpu=2 event=flush_run",
            "cpu=3 event=flush_run",
            "cpu=0 event=table_freed batch=0x0",
        ] {
            // `t_ns=` sits between cpu= and event=: match words, not the line.
            assert!(has(words), "run {i} has no line with {words:?}:\n{got}");
        }
        assert!(run.contains("trace: order ok: 1 direct frees"), "run {i}:\n{got}");
    }
    assert!(
        runs[0].contains("event=sync_begin") && runs[0].contains("decision=skip cpus=-"),
        "{got}"
    );
    assert!(
        !runs[0].contains("reason=sync"),
        "no sync IPI when the key skips:\n{got}"
    );
    assert!(runs[1].contains("decision=broadcast cpus=1,2,3"), "{got}");
    assert!(runs[1].contains("event=ipi_send reason=sync"), "{got}");
    let json = out.path().join("trace.json");
    let sum =
        json_check::check_file(&json).unwrap_or_else(|bad| panic!("{}:\n{}", json.display(), bad.join("\n")));
    assert_eq!((sum.processes, sum.threads), (2, 8), "{sum:?}");
    // Flush IPIs to 3 CPUs in both runs, the sync IPI to 3 in the forced one.
    assert!(sum.flows >= 9, "{sum:?}\n{got}");
    let svg = std::fs::read_to_string(out.path().join("trace.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}",
        &svg[..svg.len().min(300)]
    );
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    for cpu in 0..4 {
        assert_eq!(
            svg.matches(&format!(">\ncpu {cpu}\n<")).count(),
            2,
            "a lane for cpu {cpu} in each panel"
        );
    }
    assert!(out.path().join("trace.log").exists());
}
