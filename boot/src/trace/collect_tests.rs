use super::*;
use crate::trace::sample;

#[test]
fn runs_are_read_with_their_events_merged_by_time() {
    let runs = sample::runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let r = &runs[0];
    assert!(r.complete);
    assert_eq!((r.tsc_hz, r.cpus), (1_000_000_000, 3));
    assert_eq!(r.label(), "sync=broadcast (forced)");
    assert_eq!(
        r.describe(),
        "op=collapse scen=C pages=512 sync=broadcast forced=true walkers=0"
    );
    assert_eq!(runs[1].label(), "sync=skip (key)");
    assert_eq!(r.events.len(), 22);
    // Printed CPU after CPU; merged, the TSCs never go back.
    let tscs: Vec<u64> = r.events.iter().map(|e| e.tsc).collect();
    assert!(tscs.windows(2).all(|w| w[0] <= w[1]), "{tscs:?}");
    assert_eq!(
        r.events[3].cpu, 2,
        "the lone ipi_ran of cpu 2 at 1250 comes fourth"
    );
    assert_eq!((r.ns(r.events[0].tsc), r.span_ns()), (0, 1500));
    assert_eq!(r.lost, vec![(2, 7, 0)]);
    assert!(r.unreadable.is_empty(), "{:?}", r.unreadable);
    assert_eq!(runs[1].ns(5500), 250, "2 GHz: two ticks a nanosecond");
}

#[test]
fn an_unreadable_event_line_is_kept_as_such_and_a_run_without_its_end_is_incomplete() {
    let mut c = Collector::default();
    c.line("trace-run: what=plain tsc_hz=1000 cpus=1");
    c.line("trace-event: cpu=0 tsc=5 event=no_such_event");
    c.line("trace-event: cpu=0 tsc=9 event=gp_done seq=1");
    c.line("a line of the boot");
    let runs = c.finish();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].events.len(), 1);
    assert_eq!(
        runs[0].unreadable,
        vec!["trace-event: cpu=0 tsc=5 event=no_such_event"]
    );
    assert!(!runs[0].complete);
    assert_eq!(runs[0].label(), "what=plain");
}
