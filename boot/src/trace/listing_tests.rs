use super::*;
use crate::trace::{collect, sample};

#[test]
fn a_run_lists_its_events_in_time_order_with_losses_and_the_order_verdict() {
    let runs = sample::runs();
    let (text, ok) = listing(&runs[0]);
    // Its ring lost events: the order is not checked, and that is not a pass.
    assert!(!ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "trace: run sync=broadcast (forced) (op=collapse scen=C pages=512 sync=broadcast forced=true walkers=0): 22 events on 3 CPUs over 1500 ns"
    );
    assert_eq!(
        lines[1],
        "trace: cpu=0 t_ns=0 event=entry_clear mm=6 va=0x0 level=2 table=0x5000"
    );
    assert_eq!(
        lines[5],
        "trace: cpu=1 t_ns=300 event=ipi_run reason=flush id=0x1 from=0"
    );
    assert!(
        text.contains("trace: cpu 2 lost 7 events (ring full)\n"),
        "{text}"
    );
    assert!(
        text.ends_with("trace: order not checked: 7 events lost (the rings above), the trace has holes\n"),
        "{text}"
    );
}

#[test]
fn a_run_that_lost_nothing_gets_the_order_verdict() {
    let mut c = collect::Collector::default();
    sample::LINES
        .replace("trace-lost: cpu=2 overwritten=7 torn=0\n", "")
        .lines()
        .for_each(|l| c.line(l));
    let (text, ok) = listing(&c.finish()[0]);
    assert!(ok, "{text}");
    assert!(
        text.ends_with("trace: order ok: 1 direct frees, 0 batched frees, 0 lazy skips checked\n"),
        "{text}"
    );
}

#[test]
fn a_free_before_a_target_ran_the_flush_is_a_violation() {
    // The free moved before cpu 2's flush handler (1360).
    let lines = sample::LINES.replace("tsc=2500 event=table_freed", "tsc=1355 event=table_freed");
    let mut c = collect::Collector::default();
    lines.lines().for_each(|l| c.line(l));
    let (text, ok) = listing(&c.finish()[0]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("trace: order VIOLATED: flush-before-free: cpu 0 at tsc 1355 (table_freed): table 0x5000 of mm 6 freed before cpu 2"),
        "{text}"
    );
}
