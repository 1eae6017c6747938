//! `trace.svg`: the runs drawn as timelines, for the README. One panel per run, stacked
//! (the run the key decided above the forced one), all on one time scale from each run's
//! first event; in a panel one lane per CPU (CPU 0 on top), slices as bars (nested ones
//! inside, narrower), the waits (`ipi_wait`, `sync`) shaded across their lane, instants as
//! coloured ticks, each IPI as an arrow from the send on the sender's lane to the
//! handler's start on the target's; a legend at the bottom. Drawn with plotters (its SVG
//! backend), which gives the time axis; the arrowheads are drawn in pixels on the whole
//! picture, from the chart's coordinates.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use ::trace::event::Kind;

use super::collect::Run;
use super::timeline::Timeline;

/// The picture's width in pixels.
const WIDTH: u32 = 1200;
/// A lane's height.
const LANE: u32 = 46;
/// Above a panel's lanes (its title), and below them (the time axis).
const PANEL_TOP: u32 = 28;
const PANEL_AXIS: u32 = 56;
/// The legend's height.
const LEGEND: u32 = 76;
/// Left of the lanes (their names).
const LABELS: u32 = 56;
const FONT: &str = "sans-serif";

/// A slice's colour, and whether it is a wait (shaded rather than filled).
fn slice_style(name: &str) -> (RGBColor, bool) {
    match name {
        "gather" => (RGBColor(66, 133, 244), false),
        "flush" => (RGBColor(243, 156, 18), false),
        "ipi_handler" => (RGBColor(46, 160, 67), false),
        "sync" => (RGBColor(142, 68, 173), true),
        "ipi_wait" => (RGBColor(110, 110, 110), true),
        _ => (RGBColor(150, 150, 150), false),
    }
}

/// The slices the legend names, in its order.
const SLICES: &[&str] = &["gather", "flush", "ipi_handler", "ipi_wait", "sync"];

/// An instant's colour.
fn instant_color(kind: Kind) -> RGBColor {
    match kind {
        Kind::EntryClear => RGBColor(214, 39, 40),
        Kind::FlushRun => RGBColor(0, 120, 60),
        Kind::EarlyAck => RGBColor(255, 187, 120),
        Kind::TableFreed => RGBColor(0, 0, 0),
        Kind::SwitchMm => RGBColor(23, 162, 184),
        Kind::LazyEnter | Kind::LazyExit => RGBColor(227, 119, 194),
        Kind::GpStart | Kind::GpDone => RGBColor(140, 86, 75),
        Kind::BatchQueued | Kind::BatchFreed => RGBColor(188, 189, 34),
        _ => RGBColor(255, 0, 255),
    }
}

/// An IPI arrow's colour by its reason.
fn ipi_color(reason: &str) -> RGBColor {
    match reason {
        "flush" => RGBColor(230, 85, 13),
        "sync" => RGBColor(142, 68, 173),
        _ => RGBColor(80, 80, 80),
    }
}

/// The part of `run` the picture draws, in ns from its first event: all of it, but a
/// tail of instants after the last slice and the last table freed at once, from a pause
/// longer than half the run on (in a traced op, the settle's grace period that frees
/// earlier batches, milliseconds later, would otherwise squeeze the shootdown into a few
/// pixels). The panel names what it leaves out.
pub fn window(run: &Run) -> u64 {
    let t = Timeline::of(&run.events);
    let slices_end = t.slices.iter().map(|s| s.end.unwrap_or(s.begin));
    let direct_frees = (run.events.iter().enumerate())
        .filter(|(_, e)| e.kind == Kind::TableFreed && e.arg("batch") == 0)
        .map(|(i, _)| i);
    let from = slices_end.chain(direct_frees).max().unwrap_or(0);
    let ns: Vec<u64> = run.events.iter().map(|e| run.ns(e.tsc)).collect();
    let pause = (from..ns.len().saturating_sub(1)).max_by_key(|&i| ns[i + 1] - ns[i]);
    match pause {
        Some(i) if 2 * (ns[i + 1] - ns[i]) > run.span_ns() => ns[i],
        _ => run.span_ns(),
    }
}

/// The picture of `runs`, as SVG text.
pub fn draw(runs: &[Run]) -> Result<String, String> {
    let lanes = |r: &Run| {
        r.events
            .iter()
            .map(|e| e.cpu + 1)
            .max()
            .unwrap_or(0)
            .max(r.cpus)
            .max(1)
    };
    let heights: Vec<u32> = runs
        .iter()
        .map(|r| PANEL_TOP + lanes(r) * LANE + PANEL_AXIS)
        .collect();
    let height = heights.iter().sum::<u32>() + LEGEND + 10;
    // One scale for every panel, from each run's first event: the longest run, up to its
    // tail ([`window`]).
    let t_max = runs.iter().map(window).max().unwrap_or(0).max(1) as f64 / 1000.0 * 1.03;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut rest = root.clone();
        for (run, h) in runs.iter().zip(&heights) {
            let (panel, below) = rest.split_vertically(*h);
            panel_of(&root, &panel, run, lanes(run), t_max)?;
            rest = below;
        }
        legend(&rest, runs)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn panel_of<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    area: &DrawingArea<SVGBackend<'a>, Shift>,
    run: &Run,
    lanes: u32,
    t_max: f64,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let rest: Vec<String> = run
        .header
        .iter()
        .filter(|(k, _)| !["sync", "forced", "tsc_hz", "cpus"].contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let title = format!("{}   ({})", run.label(), rest.join(" "));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18).into_font().style(FontStyle::Bold))
        .margin_left(6)
        .margin_right(16)
        .x_label_area_size(PANEL_AXIS - 16)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0f64..t_max, 0f64..lanes as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(12)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("µs from the run's first event")
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    // Lane c spans y in [lanes - c - 1, lanes - c]: CPU 0 on top.
    let top = |cpu: u32| (lanes - cpu) as f64;
    let us = |ns: u64| ns as f64 / 1000.0;
    for cpu in 0..lanes {
        if cpu % 2 == 1 {
            chart
                .draw_series([Rectangle::new(
                    [(0.0, top(cpu) - 1.0), (t_max, top(cpu))],
                    RGBColor(246, 246, 246).filled(),
                )])
                .map_err(err)?;
        }
        let (x, y) = chart.backend_coord(&(0.0, top(cpu) - 0.5));
        root.draw(&Text::new(
            format!("cpu {cpu}"),
            (x - 8, y),
            (FONT, 16)
                .into_font()
                .into_text_style(root)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(err)?;
    }
    let t = Timeline::of(&run.events);
    // What lies past the scale is left out, and named at the panel's top right.
    let last_ns = (t_max * 1000.0) as u64;
    let drawn = |i: usize| run.ns(run.events[i].tsc) <= last_ns;
    let end_ns = |s: &super::timeline::Slice| {
        s.end
            .map_or(run.span_ns(), |e| run.ns(run.events[e].tsc))
            .min(last_ns)
    };
    let left_out: Vec<usize> = (0..run.events.len()).filter(|&i| !drawn(i)).collect();
    if let Some(&first) = left_out.first() {
        let mut names: Vec<(&str, usize)> = Vec::new();
        for &i in &left_out {
            let name = run.events[i].kind.name();
            match names.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => names.push((name, 1)),
            }
        }
        let what: Vec<String> = names
            .iter()
            .map(|(n, c)| {
                if *c > 1 {
                    format!("{c}× {n}")
                } else {
                    n.to_string()
                }
            })
            .collect();
        let note = format!(
            "not drawn: from {:.0} µs, {}",
            run.ns(run.events[first].tsc) as f64 / 1000.0,
            what.join(", ")
        );
        // Right-aligned on the axis description's row (that one is centred).
        let (x, y) = chart.backend_coord(&(t_max, 0.0));
        root.draw(&Text::new(
            note,
            (x, y + PANEL_AXIS as i32 - 18),
            (FONT, 14)
                .into_font()
                .color(&RGBColor(90, 90, 90))
                .into_text_style(root)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(err)?;
    }
    // Waits first, shaded over the whole lane, so that what runs meanwhile shows on top.
    for s in t.slices.iter().filter(|s| drawn(s.begin)) {
        let (color, wait) = slice_style(s.name);
        if wait {
            let (x0, x1) = (us(run.ns(run.events[s.begin].tsc)), us(end_ns(s)));
            let y = top(s.cpu);
            chart
                .draw_series([
                    Rectangle::new([(x0, y - 0.97), (x1, y - 0.03)], color.mix(0.16).filled()),
                    Rectangle::new([(x0, y - 0.97), (x1, y - 0.03)], color.mix(0.6).stroke_width(1)),
                ])
                .map_err(err)?;
        }
    }
    // A sync says what was decided, right of its box in the lane's lower part.
    for s in t.slices.iter().filter(|s| s.name == "sync" && drawn(s.begin)) {
        let (color, _) = slice_style(s.name);
        let (px, py) = chart.backend_coord(&(us(end_ns(s)), top(s.cpu) - 0.8));
        root.draw(&Text::new(
            format!("sync={}", run.events[s.begin].name_of("decision")),
            (px + 4, py),
            (FONT, 14)
                .into_font()
                .color(&color)
                .into_text_style(root)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    // Slice names go on after the instants' ticks, which would cross them.
    let mut labels = Vec::new();
    for s in t
        .slices
        .iter()
        .filter(|s| !slice_style(s.name).1 && drawn(s.begin))
    {
        let (color, _) = slice_style(s.name);
        let (x0, x1) = (us(run.ns(run.events[s.begin].tsc)), us(end_ns(s)));
        let inset = 0.22 + 0.1 * s.depth.min(2) as f64;
        let y = top(s.cpu);
        chart
            .draw_series([
                Rectangle::new([(x0, y - 1.0 + inset), (x1, y - inset)], color.mix(0.85).filled()),
                Rectangle::new([(x0, y - 1.0 + inset), (x1, y - inset)], color.stroke_width(1)),
            ])
            .map_err(err)?;
        // Its name inside, where it fits (about 7 px a letter at 14 px, which plotters
        // writes as 11.3 px).
        let (px0, py) = chart.backend_coord(&(x0, y - 0.5));
        let (px1, _) = chart.backend_coord(&(x1, y - 0.5));
        if px1 - px0 > 7 * s.name.len() as i32 + 6 {
            labels.push((s.name, ((px0 + px1) / 2, py)));
        }
    }
    for &i in t.instants.iter().filter(|&&i| drawn(i)) {
        let ev = &run.events[i];
        let x = us(run.ns(ev.tsc));
        let y = top(ev.cpu);
        let color = instant_color(ev.kind);
        chart
            .draw_series([PathElement::new(
                vec![(x, y - 0.92), (x, y - 0.08)],
                color.stroke_width(2),
            )])
            .map_err(err)?;
        let (px, py) = chart.backend_coord(&(x, y - 0.08));
        root.draw(&Polygon::new(
            vec![(px - 4, py), (px + 4, py), (px, py + 6)],
            color.filled(),
        ))
        .map_err(err)?;
    }
    for (name, at) in labels {
        root.draw(&Text::new(
            name,
            at,
            (FONT, 14)
                .into_font()
                .color(&WHITE)
                .into_text_style(root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
    }
    for a in t.arrows.iter().filter(|a| drawn(a.run)) {
        let (send, run_ev) = (&run.events[a.send], &run.events[a.run]);
        let color = ipi_color(send.name_of("reason"));
        let from = chart.backend_coord(&(us(run.ns(send.tsc)), top(send.cpu) - 0.5));
        let to = chart.backend_coord(&(us(run.ns(run_ev.tsc)), top(run_ev.cpu) - 0.5));
        arrow(root, from, to, color).map_err(err)?;
    }
    Ok(())
}

/// An arrow from `from` to `to` (pixels), its head at `to`.
fn arrow<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    from: (i32, i32),
    to: (i32, i32),
    color: RGBColor,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let (hl, hw) = (9.0, 4.5);
    let base = (to.0 as f64 - ux * hl, to.1 as f64 - uy * hl);
    let p = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
    root.draw(&PathElement::new(
        vec![from, p(base.0, base.1)],
        color.stroke_width(2),
    ))?;
    root.draw(&Polygon::new(
        vec![
            to,
            p(base.0 - uy * hw, base.1 + ux * hw),
            p(base.0 + uy * hw, base.1 - ux * hw),
        ],
        color.filled(),
    ))?;
    root.draw(&Circle::new(from, 3, color.filled()))
}

/// The legend: the slices, the instants present and the IPIs, in rows.
fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>, runs: &[Run]) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let style = (FONT, 15)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (mut x, mut y) = (LABELS as i32, 16);
    let mut item = |draw: &dyn Fn(i32, i32) -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
                    label: &str|
     -> Result<(), String> {
        let w = 30 + 8 * label.chars().count() as i32;
        if x + w > WIDTH as i32 - 10 {
            (x, y) = (LABELS as i32, y + 22);
        }
        draw(x, y).map_err(err)?;
        area.draw(&Text::new(label.to_string(), (x + 24, y), style.clone()))
            .map_err(err)?;
        x += w + 12;
        Ok(())
    };
    for name in SLICES {
        let (color, wait) = slice_style(name);
        let label = if wait {
            format!("{name} (waiting)")
        } else {
            name.to_string()
        };
        item(
            &|x, y| {
                let fill = if wait {
                    color.mix(0.16).filled()
                } else {
                    color.mix(0.85).filled()
                };
                area.draw(&Rectangle::new([(x, y - 6), (x + 18, y + 6)], fill))?;
                area.draw(&Rectangle::new(
                    [(x, y - 6), (x + 18, y + 6)],
                    color.stroke_width(1),
                ))
            },
            &label,
        )?;
    }
    let mut kinds: Vec<Kind> = runs
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.kind))
        .filter(|k| k.spec().phase == ::trace::event::Phase::Instant)
        .collect();
    kinds.sort_by_key(|k| *k as u8);
    kinds.dedup();
    for k in kinds {
        let color = instant_color(k);
        item(
            &|x, y| {
                area.draw(&PathElement::new(
                    vec![(x + 9, y - 8), (x + 9, y + 8)],
                    color.stroke_width(2),
                ))?;
                area.draw(&Polygon::new(
                    vec![(x + 5, y + 8), (x + 13, y + 8), (x + 9, y + 14)],
                    color.filled(),
                ))
            },
            k.name(),
        )?;
    }
    for reason in ["flush", "sync"] {
        let color = ipi_color(reason);
        item(
            &|x, y| arrow(area, (x, y), (x + 18, y), color),
            &format!("IPI ({reason}): send -> handler"),
        )?;
    }
    Ok(())
}

/// Writes the picture of `runs` as `path`.
pub fn write(runs: &[Run], path: &std::path::Path) -> Result<(), String> {
    let svg = draw(runs)?;
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
