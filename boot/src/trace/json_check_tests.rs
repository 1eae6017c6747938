use super::*;
use serde_json::json;

fn doc(events: Value) -> Value {
    json!({"traceEvents": events, "displayTimeUnit": "ns"})
}

fn ev(ph: &str, name: &str, ts: f64, tid: i64) -> Value {
    json!({"ph": ph, "name": name, "ts": ts, "pid": 1, "tid": tid, "cat": "tlb"})
}

fn flow(ph: &str, ts: f64, tid: i64, id: u64) -> Value {
    json!({"ph": ph, "name": "ipi flush", "ts": ts, "pid": 1, "tid": tid, "cat": "ipi", "id": id, "bp": "e"})
}

/// A small good trace: a send in a wait on thread 1, the handler on thread 2.
fn good() -> Vec<Value> {
    vec![
        json!({"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "run"}}),
        json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "cpu 0"}}),
        ev("B", "ipi_wait", 1.0, 1),
        flow("s", 1.001, 1, 7),
        ev("B", "ipi_handler", 2.0, 2),
        flow("f", 2.001, 2, 7),
        ev("E", "ipi_handler", 3.0, 2),
        ev("E", "ipi_wait", 4.0, 1),
        json!({"ph": "i", "s": "t", "name": "table_freed", "ts": 5.0, "pid": 1, "tid": 1}),
    ]
}

fn problems(events: Vec<Value>) -> String {
    match check(&doc(Value::Array(events))) {
        Ok(s) => panic!("passed: {s:?}"),
        Err(bad) => bad.join("\n"),
    }
}

#[test]
fn a_good_trace_passes_with_its_counts() {
    let sum = check(&doc(Value::Array(good()))).unwrap();
    assert_eq!(
        sum,
        Summary {
            events: 9,
            processes: 1,
            threads: 1,
            slices: 2,
            instants: 1,
            flows: 1
        }
    );
}

#[test]
fn each_broken_rule_is_caught_and_said() {
    let mut e = good();
    e.remove(6); // the handler's E
    assert!(problems(e).contains("never closed"));
    let mut e = good();
    e[8]["ts"] = 3.0.into(); // the instant, before thread 1's E at 4
    assert!(problems(e).contains("before the thread's previous event"));
    let mut e = good();
    e[7]["name"] = "flush".into();
    assert!(problems(e).contains("do not nest"));
    let mut e = good();
    e.remove(5); // the flow's end
    assert!(problems(e).contains("1 starts and 0 ends"));
    let mut e = good();
    e[5]["name"] = "ipi sync".into(); // an end of another flow
    assert!(problems(e).contains("name=ipi flush id=7: 1 starts and 0 ends"));
    let mut e = good();
    e[5]["ts"] = 3.5.into(); // the flow's end after its handler's E
    e.swap(5, 6);
    assert!(problems(e).contains("outside any slice"));
    let mut e = good();
    e[2].as_object_mut().unwrap().remove("ts");
    assert!(problems(e).contains("ts must be a number"));
    let mut e = good();
    e[8].as_object_mut().unwrap().remove("s");
    assert!(problems(e).contains("without scope"));
    let mut e = good();
    e[4]["tid"] = "two".into();
    assert!(problems(e).contains("pid and tid must be integers"));
    let bad = check(&json!({"traceEvents": [], "displayTimeUnit": "s"})).unwrap_err();
    assert!(bad[0].contains("displayTimeUnit"), "{bad:?}");
    assert!(check(&json!([])).is_err(), "the object form, not the bare array");
}
