//! Reads a traced boot's serial lines into runs. The kernel prints, per traced run:
//!
//! ```text
//! trace-run: op=collapse scen=C pages=512 sync=skip forced=false walkers=0 tsc_hz=.. cpus=4
//! trace-event: cpu=0 tsc=.. event=.. k=v...   (each CPU's events oldest first, CPU after CPU)
//! trace-lost: cpu=2 overwritten=7 torn=0       (only for a ring that lost events)
//! trace-run-end
//! ```
//!
//! The events of a run are not in time order as they come; [`Run::events`] has them merged
//! by TSC ([`trace::order::merge`]).

use std::collections::BTreeMap;

use ::trace::Record;
use ::trace::line::{self, LOST};

/// The prefix of a run's first line.
pub const RUN: &str = "trace-run:";
/// A run's last line.
pub const RUN_END: &str = "trace-run-end";

/// One traced run: what it was, and its events in time order.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The words of its `trace-run:` line, in order (`op`, `scen`, ..., `tsc_hz`, `cpus`).
    pub header: Vec<(String, String)>,
    /// The TSC's rate, from the header.
    pub tsc_hz: u64,
    /// The CPUs the kernel ran, from the header.
    pub cpus: u32,
    /// Every event, merged by TSC.
    pub events: Vec<Record>,
    /// The text of each event with a text argument (the watchdog's), by (cpu, tsc).
    pub texts: BTreeMap<(u32, u64), String>,
    /// (cpu, overwritten, torn) for each ring that lost events.
    pub lost: Vec<(u32, u64, u64)>,
    /// Lines inside the run that did not parse.
    pub unreadable: Vec<String>,
    /// Whether its `trace-run-end` came.
    pub complete: bool,
}

impl Run {
    /// A word of its header (`""` if missing).
    pub fn get(&self, key: &str) -> &str {
        self.header
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Short name of the run: the sync and who chose it, `sync=skip (key)` or
    /// `sync=broadcast (forced)`; the header's words if it names no sync.
    pub fn label(&self) -> String {
        match self.get("sync") {
            "" => self.describe(),
            s => format!(
                "sync={s} ({})",
                if self.get("forced") == "true" {
                    "forced"
                } else {
                    "key"
                }
            ),
        }
    }

    /// The header's words but the clock's and CPU count (`op=collapse scen=C ...`).
    pub fn describe(&self) -> String {
        self.header
            .iter()
            .filter(|(k, _)| k != "tsc_hz" && k != "cpus")
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The TSC of its first event (0 without events).
    pub fn t0(&self) -> u64 {
        self.events.first().map_or(0, |e| e.tsc)
    }

    /// Nanoseconds from the run's first event to TSC stamp `tsc`.
    pub fn ns(&self, tsc: u64) -> u64 {
        let hz = self.tsc_hz.max(1) as u128;
        (tsc.saturating_sub(self.t0()) as u128 * 1_000_000_000 / hz) as u64
    }

    /// The run's length in nanoseconds (first event to last).
    pub fn span_ns(&self) -> u64 {
        self.events.last().map_or(0, |e| self.ns(e.tsc))
    }

    /// The text of `rec`'s text argument, if it has one.
    pub fn text(&self, rec: &Record) -> Option<&str> {
        self.texts.get(&(rec.cpu, rec.tsc)).map(|s| s.as_str())
    }
}

/// Takes a boot's lines one by one and keeps the runs.
#[derive(Debug, Default)]
pub struct Collector {
    /// The runs so far (the last one may still be open).
    pub runs: Vec<Run>,
    per_cpu: Vec<Vec<Record>>,
    open: bool,
}

impl Collector {
    /// Takes one serial line.
    pub fn line(&mut self, l: &str) {
        let l = l.trim_end();
        if let Some(at) = l.find(RUN) {
            self.close();
            self.runs.push(header(&l[at + RUN.len()..]));
            self.per_cpu.clear();
            self.open = true;
        } else if !self.open {
        } else if l.contains(RUN_END) {
            self.close();
            if let Some(r) = self.runs.last_mut() {
                r.complete = true;
            }
        } else if l.contains(line::EVENT) {
            let run = self.runs.last_mut().expect("open run");
            match line::parse(l) {
                Some(p) => {
                    let cpu = p.rec.cpu as usize;
                    if self.per_cpu.len() <= cpu {
                        self.per_cpu.resize(cpu + 1, Vec::new());
                    }
                    if let Some(t) = p.text {
                        run.texts.insert((p.rec.cpu, p.rec.tsc), t);
                    }
                    self.per_cpu[cpu].push(p.rec);
                }
                None => run.unreadable.push(l.to_string()),
            }
        } else if l.contains(LOST) {
            let run = self.runs.last_mut().expect("open run");
            match line::parse_lost(l) {
                Some(lost) => run.lost.push(lost),
                None => run.unreadable.push(l.to_string()),
            }
        }
    }

    /// Whether `l` is a line of a run (what `trace.log` keeps).
    pub fn keeps(l: &str) -> bool {
        [RUN, RUN_END, line::EVENT, LOST].iter().any(|p| l.contains(p))
    }

    /// Merges the open run's events, if a run is open.
    fn close(&mut self) {
        if self.open {
            if let Some(r) = self.runs.last_mut() {
                r.events = ::trace::order::merge(&self.per_cpu);
            }
            self.open = false;
        }
    }

    /// The runs, the last one merged even if its end never came.
    pub fn finish(mut self) -> Vec<Run> {
        self.close();
        self.runs
    }
}

/// A run from the words of its `trace-run:` line.
fn header(words: &str) -> Run {
    let header: Vec<(String, String)> = words
        .split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w.to_string(), String::new()),
        })
        .collect();
    let mut run = Run {
        header,
        ..Default::default()
    };
    run.tsc_hz = run.get("tsc_hz").parse().unwrap_or(0);
    run.cpus = run.get("cpus").parse().unwrap_or(0);
    run
}

#[cfg(test)]
#[path = "collect_tests.rs"]
mod tests;
