use super::*;
use crate::trace::sample;

/// Whether `svg` is one `<svg>` element whose `<text>` elements all close.
fn well_formed(svg: &str) -> bool {
    svg.starts_with("<svg")
        && svg.trim_end().ends_with("</svg>")
        && svg.matches("<text").count() == svg.matches("</text>").count()
}

#[test]
fn the_picture_has_a_panel_per_run_a_lane_per_cpu_arrows_and_a_legend() {
    let svg = draw(&sample::runs()).unwrap();
    assert!(well_formed(&svg), "{svg}");
    for text in [
        "sync=broadcast (forced)",
        "sync=skip (key)",
        "cpu 0",
        "cpu 2",
        "sync=broadcast\n",
        "ipi_wait (waiting)",
        "IPI (sync): send -&gt; handler",
        "table_freed",
        "µs from the run&apos;s first event",
    ] {
        assert!(svg.contains(text), "no {text:?} in:\n{svg}");
    }
    // Three lanes in the first panel, two in the second.
    assert_eq!(svg.matches(">\ncpu ").count(), 5, "{svg}");
    // An arrow is a line, a head and a dot at the send: 4 + 1 IPIs, and 2 in the legend.
    assert_eq!(svg.matches("<circle").count(), 7, "{svg}");
}

#[test]
fn a_tail_after_a_long_pause_is_named_not_drawn() {
    let mut runs = sample::runs();
    let mut gp = runs[0].events[0];
    gp.kind = ::trace::event::Kind::GpDone;
    gp.tsc = 100_000;
    runs[0].events.push(gp);
    assert_eq!(window(&runs[0]), 1500, "up to the free, before the pause");
    let svg = draw(&runs[..1]).unwrap();
    assert!(svg.contains("not drawn: from 99 µs, gp_done"), "{svg}");
    // Without the pause, everything is drawn.
    assert_eq!(window(&sample::runs()[0]), 1500);
}
