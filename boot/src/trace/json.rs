//! `trace.json`: the runs in the Chrome trace-event format (the JSON object form:
//! `{"traceEvents": [...], "displayTimeUnit": "ns"}`), which Perfetto's UI
//! (ui.perfetto.dev, "Open trace file") and chrome://tracing open as it is.
//!
//! - one process per run (`pid` = run number from 1), named by the run (`process_name`);
//! - one thread per CPU, named `cpu N` (`thread_name`); its `tid` is N + 1, because
//!   Perfetto's importer has merged thread 0 with thread 1 (fixed upstream in 2025; older
//!   UIs still do);
//! - slices ([`super::timeline`]) as `B`/`E` pairs named by the slice (`gather`, `flush`,
//!   `sync`, `ipi_wait`, `ipi_handler`), instants as `i` with `"s":"t"`, the event's
//!   arguments as `args`; `ts` in microseconds from the run's first event;
//! - each IPI as a flow: `"ph":"s"` on the sender in its `ipi_wait` slice, and
//!   `"ph":"f","bp":"e"` on the target in its `ipi_handler` slice, one id per
//!   (send, target). A flow point binds to the slice that encloses it, so each is placed
//!   1 ns after the Begin of its slice (never past the thread's next event): at the same
//!   timestamp an importer that sorts by time alone may see it before the slice opens.

use serde_json::{Map, Value, json};

use ::trace::Record;
use ::trace::event::Fmt;
use ::trace::line::Args;

use super::collect::Run;
use super::timeline::Timeline;

/// The category of the TLB events.
pub const CAT: &str = "tlb";
/// The category of the IPI flows.
pub const FLOW_CAT: &str = "ipi";

/// A thread's event before it is placed: nanoseconds, whether it is a flow point to nudge
/// into its slice, and the JSON.
struct Item {
    ns: u64,
    flow: bool,
    json: Value,
}

/// The trace-event document for `runs`.
pub fn document(runs: &[Run]) -> Value {
    let mut events = Vec::new();
    let mut next_flow = 1u64;
    for (r, run) in runs.iter().enumerate() {
        let pid = r as u64 + 1;
        events.push(json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
            "args": {"name": format!("{}: {}", run.label(), run.describe())}}));
        events.push(
            json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
            "args": {"sort_index": pid}}),
        );
        let cpus = run
            .events
            .iter()
            .map(|e| e.cpu + 1)
            .max()
            .unwrap_or(0)
            .max(run.cpus);
        for cpu in 0..cpus {
            events.push(
                json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": cpu + 1,
                "args": {"name": format!("cpu {cpu}")}}),
            );
            events.push(
                json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": cpu + 1,
                "args": {"sort_index": cpu}}),
            );
        }
        events.extend(run_events(run, pid, &mut next_flow));
    }
    json!({"traceEvents": events, "displayTimeUnit": "ns"})
}

/// One run's events, in time order (each thread's in its own order).
fn run_events(run: &Run, pid: u64, next_flow: &mut u64) -> Vec<Value> {
    let t = Timeline::of(&run.events);
    let ids: Vec<u64> = t
        .arrows
        .iter()
        .map(|_| {
            *next_flow += 1;
            *next_flow - 1
        })
        .collect();
    let mut threads: Vec<Vec<Item>> = Vec::new();
    let mut push = |cpu: u32, ns: u64, flow: bool, mut json: Value| {
        let tid = cpu as usize + 1;
        if threads.len() <= tid {
            threads.resize_with(tid + 1, Vec::new);
        }
        json["pid"] = pid.into();
        json["tid"] = tid.into();
        threads[tid].push(Item { ns, flow, json });
    };
    for (i, ev) in run.events.iter().enumerate() {
        let ns = run.ns(ev.tsc);
        let spec = ev.kind.spec();
        if t.instants.contains(&i) {
            push(
                ev.cpu,
                ns,
                false,
                json!({"name": spec.name, "cat": CAT, "ph": "i", "s": "t",
                "args": args(run, ev)}),
            );
        } else if t.lone_ends.contains(&i) {
            let mut a = args(run, ev);
            a["note"] = "the begin of this slice was not recorded".into();
            push(
                ev.cpu,
                ns,
                false,
                json!({"name": spec.name, "cat": CAT, "ph": "i", "s": "t", "args": a}),
            );
        } else if let Some(s) = t.slice_begun_at(i) {
            let mut a = args(run, ev);
            a["event"] = spec.name.into();
            push(
                ev.cpu,
                ns,
                false,
                json!({"name": s.name, "cat": CAT, "ph": "B", "args": a}),
            );
            for (k, arrow) in t.arrows.iter().enumerate() {
                let flow =
                    json!({"name": format!("ipi {}", ev.name_of("reason")), "cat": FLOW_CAT, "id": ids[k]});
                if arrow.send == i {
                    let mut f = flow.clone();
                    f["ph"] = "s".into();
                    push(ev.cpu, ns, true, f);
                }
                if arrow.run == i {
                    let mut f = flow;
                    f["ph"] = "f".into();
                    f["bp"] = "e".into();
                    push(ev.cpu, ns, true, f);
                }
            }
        } else {
            // An End: it closes its slice, after any slices it cuts (innermost first).
            let mut closed: Vec<_> = t.slices.iter().filter(|s| s.end == Some(i)).collect();
            closed.sort_by_key(|s| std::cmp::Reverse(s.depth));
            for s in closed {
                let mut a = if s.cut {
                    Value::Object(Map::new())
                } else {
                    args(run, ev)
                };
                a["event"] = if s.cut {
                    "cut: its end was not recorded"
                } else {
                    spec.name
                }
                .into();
                push(
                    ev.cpu,
                    ns,
                    false,
                    json!({"name": s.name, "cat": CAT, "ph": "E", "args": a}),
                );
            }
        }
    }
    // Slices still open when the trace ended close at its last event.
    let last = run.span_ns();
    let mut open: Vec<_> = t.slices.iter().filter(|s| s.end.is_none()).collect();
    open.sort_by_key(|s| (s.cpu, std::cmp::Reverse(s.depth)));
    for s in open {
        push(
            s.cpu,
            last,
            false,
            json!({"name": s.name, "cat": CAT, "ph": "E",
            "args": {"event": "open when the trace ended"}}),
        );
    }
    let mut out: Vec<(u64, Value)> = Vec::new();
    for thread in &mut threads {
        for k in 0..thread.len() {
            if thread[k].flow {
                let next = thread[k + 1..]
                    .iter()
                    .find(|it| !it.flow)
                    .map_or(u64::MAX, |it| it.ns);
                thread[k].ns = (thread[k].ns + 1).min(next);
            }
        }
        out.extend(thread.drain(..).map(|it| {
            let mut j = it.json;
            j["ts"] = micros(it.ns).into();
            (it.ns, j)
        }));
    }
    // Stable: a thread's events at one time keep their order.
    out.sort_by_key(|(ns, _)| *ns);
    out.into_iter().map(|(_, j)| j).collect()
}

/// Microseconds (the format's unit) from nanoseconds.
fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// An event's arguments as a JSON object (decimal ones as numbers, the rest as printed).
fn args(run: &Run, ev: &Record) -> Value {
    let spec = ev.kind.spec();
    let text = Args {
        rec: ev,
        text: run.text(ev),
    }
    .to_string();
    let mut m = Map::new();
    for word in text.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else {
            continue;
        };
        let dec = spec.args.iter().any(|(n, f)| *n == k && *f == Fmt::Dec);
        let value = match v.parse::<u64>() {
            Ok(n) if dec => Value::from(n),
            _ => Value::from(v),
        };
        m.insert(k.to_string(), value);
    }
    Value::Object(m)
}

/// Writes `runs` as `path` (pretty-printed: one key per line, for diffs and people).
pub fn write(runs: &[Run], path: &std::path::Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&document(runs)).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
