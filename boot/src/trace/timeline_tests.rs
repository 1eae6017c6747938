use super::*;
use crate::trace::sample;

#[test]
fn slices_pair_and_nest_and_each_ipi_target_gets_an_arrow() {
    let runs = sample::runs();
    let r = &runs[0];
    let t = Timeline::of(&r.events);
    let named: Vec<(u32, &str, usize)> = t.slices.iter().map(|s| (s.cpu, s.name, s.depth)).collect();
    assert_eq!(
        named,
        vec![
            (0, "flush", 0),
            (0, "ipi_wait", 1),
            (1, "ipi_handler", 0),
            (2, "ipi_handler", 0),
            (0, "sync", 0),
            (0, "ipi_wait", 1),
            (1, "ipi_handler", 0),
            (2, "ipi_handler", 0),
        ]
    );
    assert!(
        t.slices.iter().all(|s| s.end.is_some() && !s.cut),
        "{:?}",
        t.slices
    );
    // cpu 2's ipi_ran at 1250 had no ipi_run in the trace.
    assert_eq!(t.lone_ends.len(), 1);
    assert_eq!(r.events[t.lone_ends[0]].tsc, 1250);
    assert_eq!(t.arrows.len(), 4, "two IPIs to two CPUs each: {:?}", t.arrows);
    for a in &t.arrows {
        let (s, run) = (&r.events[a.send], &r.events[a.run]);
        assert_eq!((s.arg("id"), run.kind), (run.arg("id"), Kind::IpiRun));
        assert!(s.has_cpu("targets", run.cpu as usize));
    }
    assert!(t.unanswered.is_empty());
}

#[test]
fn an_end_cuts_the_slices_it_encloses_and_open_slices_stay_open() {
    let runs = sample::runs();
    let r = &runs[1];
    let t = Timeline::of(&r.events);
    let of = |name: &str| t.slices.iter().find(|s| s.name == name).unwrap();
    let gather_end = r.events.iter().position(|e| e.kind == Kind::GatherEnd).unwrap();
    assert_eq!((of("gather").end, of("gather").cut), (Some(gather_end), false));
    assert_eq!(
        (of("flush").end, of("flush").cut),
        (Some(gather_end), true),
        "flush_end was lost"
    );
    assert_eq!(of("sync").end, None);
}
