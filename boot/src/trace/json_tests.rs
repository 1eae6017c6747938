use super::*;
use crate::trace::{json_check, sample};

#[test]
fn the_sample_runs_make_a_trace_that_passes_the_format_check() {
    let runs = sample::runs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.json");
    write(&runs, &path).unwrap();
    // Read back from the file, as a viewer would.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sum = json_check::check(&doc).unwrap_or_else(|bad| panic!("{bad:#?}\n{doc:#}"));
    assert_eq!(
        sum,
        json_check::Summary {
            events: sum.events,
            processes: 2,
            threads: 5,
            slices: 13,
            instants: 7,
            flows: 5,
        },
        "{doc:#}"
    );
}

#[test]
fn events_carry_names_args_and_microseconds_and_flows_bind_inside_their_slices() {
    let doc = document(&sample::runs());
    let events = doc["traceEvents"].as_array().unwrap();
    let find = |ph: &str, name: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == ph && e["name"] == name && e["pid"] == 1)
            .collect::<Vec<_>>()
    };
    let names: Vec<&str> = find("M", "thread_name")
        .iter()
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu 0", "cpu 1", "cpu 2"]);
    assert_eq!(find("M", "thread_name")[0]["tid"], 1, "tid is cpu + 1");
    let flush = find("B", "flush");
    assert_eq!(flush.len(), 1);
    // 100 ns after the run's first event, in microseconds.
    assert_eq!(flush[0]["ts"], 0.1);
    assert_eq!(flush[0]["args"]["targets"], "1,2");
    assert_eq!(flush[0]["args"]["gen"], 5);
    assert_eq!(flush[0]["args"]["event"], "flush_begin");
    let sync = find("B", "sync");
    assert_eq!(sync[0]["args"]["decision"], "broadcast");
    let instant = &find("i", "table_freed")[0];
    assert_eq!(
        (instant["s"].as_str(), instant["ts"].as_f64()),
        (Some("t"), Some(1.5))
    );
    // The flush IPI's flow to cpu 1: from the send (1 ns into ipi_wait, at 0.2 us) to cpu
    // 1's handler (1 ns into it, at 0.3 us), one id.
    let starts = find("s", "ipi flush");
    let ends = find("f", "ipi flush");
    assert_eq!((starts.len(), ends.len()), (2, 2));
    assert!(
        starts.iter().all(|s| s["tid"] == 1 && s["ts"] == 0.201),
        "{starts:?}"
    );
    let to_cpu1 = ends.iter().find(|e| e["tid"] == 2).unwrap();
    assert_eq!(
        (to_cpu1["ts"].as_f64(), to_cpu1["bp"].as_str()),
        (Some(0.301), Some("e"))
    );
    assert!(starts.iter().any(|s| s["id"] == to_cpu1["id"]));
    assert_ne!(starts[0]["id"], starts[1]["id"], "one id per target");
}

#[test]
fn the_readmes_recorded_boot_makes_a_trace_that_passes_the_format_check() {
    // A real boot's lines (`cargo run -- trace --op collapse --scen C --smp 4`), kept
    // beside the README's picture; tests/trace.rs checks a fresh boot the same way.
    let log = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/trace/collapse-C-smp4.log");
    let mut c = crate::trace::collect::Collector::default();
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .for_each(|l| c.line(l));
    let runs = c.finish();
    assert_eq!(runs.len(), 2);
    let doc = document(&runs);
    let sum = json_check::check(&doc).unwrap_or_else(|bad| panic!("{bad:#?}"));
    assert_eq!((sum.processes, sum.threads, sum.flows), (2, 8, 9), "{sum:?}");
}
