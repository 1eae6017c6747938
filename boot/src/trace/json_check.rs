//! Checks a JSON value against the Chrome trace-event format as the `trace` command uses
//! it (the JSON object form), so that a test can say Perfetto's UI and chrome://tracing
//! will read it: the object has `traceEvents` (an array) and a valid `displayTimeUnit`;
//! every event has the fields its phase requires (`ph`; `pid` and `tid` as integers;
//! `name` but on `E`; `ts` as a number >= 0 but on metadata `M`; `s` on an instant;
//! `id` and `cat` on a flow, `bp` = `e` if given; `args` an object if given); per
//! thread, `ts` never decreases, every `E` closes an open `B` (of its name, if it has
//! one) and every `B` is closed; every flow start `s` has exactly one end `f` of the same
//! `id`, `cat` and `name` (Perfetto's importer tells v1 flows apart by all three) and
//! each lies inside an open slice of its thread (what it binds to).

use std::collections::BTreeMap;

use serde_json::Value;

/// What a document that passed holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events (metadata included).
    pub events: usize,
    /// Processes named by `process_name`.
    pub processes: usize,
    /// Threads named by `thread_name`.
    pub threads: usize,
    /// `B`/`E` pairs.
    pub slices: usize,
    /// Instants.
    pub instants: usize,
    /// Flows (`s` with its `f`).
    pub flows: usize,
}

/// Checks `doc`; every problem found (with the event's index), or what it holds.
pub fn check(doc: &Value) -> Result<Summary, Vec<String>> {
    let mut bad = Vec::new();
    let mut sum = Summary::default();
    match doc.get("displayTimeUnit").and_then(Value::as_str) {
        Some("ms" | "ns") => {}
        other => bad.push(format!("displayTimeUnit is {other:?}, not \"ms\" or \"ns\"")),
    }
    let Some(events) = doc.get("traceEvents").and_then(Value::as_array) else {
        bad.push("no traceEvents array".into());
        return Err(bad);
    };
    sum.events = events.len();
    // Per (pid, tid): last ts, open slices (name), and flow points seen.
    let mut last_ts: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    let mut open: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    // Per (cat, id): (starts, ends).
    let mut flows: BTreeMap<(String, String, String), (usize, usize)> = BTreeMap::new();
    for (i, ev) in events.iter().enumerate() {
        let mut fail = |what: String| bad.push(format!("event {i} ({ev}): {what}"));
        let Some(ph) = ev.get("ph").and_then(Value::as_str) else {
            fail("no ph".into());
            continue;
        };
        let (Some(pid), Some(tid)) = (
            ev.get("pid").and_then(Value::as_i64),
            ev.get("tid").and_then(Value::as_i64),
        ) else {
            fail("pid and tid must be integers".into());
            continue;
        };
        let name = ev.get("name").and_then(Value::as_str);
        if name.is_none() && ph != "E" {
            fail("no name".into());
        }
        if ev.get("args").is_some_and(|a| !a.is_object()) {
            fail("args is not an object".into());
        }
        if ph == "M" {
            match name {
                Some("process_name") => sum.processes += 1,
                Some("thread_name") => sum.threads += 1,
                Some("process_sort_index" | "thread_sort_index") => {}
                other => fail(format!("metadata {other:?} is not one the format defines here")),
            }
            let arg = ev.get("args").and_then(|a| {
                a.get(if name == Some("process_name") || name == Some("thread_name") {
                    "name"
                } else {
                    "sort_index"
                })
            });
            if arg.is_none() {
                fail("metadata without its argument".into());
            }
            continue;
        }
        let Some(ts) = ev.get("ts").and_then(Value::as_f64).filter(|t| *t >= 0.0) else {
            fail("ts must be a number >= 0".into());
            continue;
        };
        let thread = (pid, tid);
        let prev = last_ts.insert(thread, ts).unwrap_or(0.0);
        if ts < prev {
            fail(format!("ts {ts} is before the thread's previous event at {prev}"));
        }
        let stack = open.entry(thread).or_default();
        match ph {
            "B" => stack.push(name.unwrap_or_default().to_string()),
            "E" => match stack.pop() {
                None => fail("E with no open B on its thread".into()),
                Some(b) if name.is_some_and(|n| n != b) => fail(format!(
                    "E named {name:?} closes B named {b:?}: slices do not nest"
                )),
                Some(_) => sum.slices += 1,
            },
            "i" | "I" => {
                sum.instants += 1;
                if !matches!(ev.get("s").and_then(Value::as_str), Some("t" | "p" | "g")) {
                    fail("instant without scope s = t, p or g".into());
                }
            }
            "s" | "f" => {
                let cat = ev.get("cat").and_then(Value::as_str);
                let id = ev.get("id").map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                });
                let (Some(cat), Some(id)) = (cat, id) else {
                    fail("flow without cat and id".into());
                    continue;
                };
                if ph == "f" && ev.get("bp").is_some_and(|b| b != "e") {
                    fail("flow end bp other than \"e\"".into());
                }
                if stack.is_empty() {
                    fail("flow point outside any slice of its thread: it binds to nothing".into());
                }
                let key = (cat.to_string(), name.unwrap_or_default().to_string(), id);
                let e = flows.entry(key).or_default();
                if ph == "s" {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            other => fail(format!("phase {other:?} is not one this tool writes")),
        }
    }
    for (thread, stack) in &open {
        if !stack.is_empty() {
            bad.push(format!("thread {thread:?}: slices never closed: {stack:?}"));
        }
    }
    for ((cat, name, id), (s, f)) in &flows {
        if (*s, *f) != (1, 1) {
            bad.push(format!(
                "flow cat={cat} name={name} id={id}: {s} starts and {f} ends, not one each"
            ));
        } else {
            sum.flows += 1;
        }
    }
    if bad.is_empty() { Ok(sum) } else { Err(bad) }
}

/// Reads the JSON file at `path` and [`check`]s it.
pub fn check_file(path: &std::path::Path) -> Result<Summary, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| vec![format!("{}: not JSON: {e}", path.display())])?;
    check(&doc)
}

#[cfg(test)]
#[path = "json_check_tests.rs"]
mod tests;
