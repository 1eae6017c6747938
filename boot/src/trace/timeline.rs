//! A run's events as a timeline: each CPU's slices (a Begin event paired with the End
//! that closes it), its instants, and each IPI as an arrow from the send to the handler
//! on each target. The JSON and the picture both draw this, so they pair events alike.
//!
//! Pairing, per CPU, in time order: a Begin opens a slice on top of that CPU's stack; an
//! End closes the innermost open slice of its name, and first any slices opened inside it
//! that are still open (they are cut there: the trace lost their End); an End with no
//! open slice of its name (its Begin was before the trace) stands alone. Slices still open
//! at the end run to the run's last event. So slices always nest.

use ::trace::Record;
use ::trace::event::{Kind, Phase};

/// One slice on one CPU: indices into the run's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The CPU.
    pub cpu: u32,
    /// Its name ([`::trace::event::Spec::slice`]).
    pub name: &'static str,
    /// Its Begin event.
    pub begin: usize,
    /// Its End event; None if the trace ends first.
    pub end: Option<usize>,
    /// Whether an outer slice's End closed it (its own End was not recorded).
    pub cut: bool,
    /// Slices open around it on its CPU when it began.
    pub depth: usize,
}

/// An IPI from a sender to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    /// The `ipi_send` event.
    pub send: usize,
    /// The target's `ipi_run` of the same request.
    pub run: usize,
}

/// A run's events, paired.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Every slice, in the order they began.
    pub slices: Vec<Slice>,
    /// Ends with no open slice to close (indices).
    pub lone_ends: Vec<usize>,
    /// Instants (indices).
    pub instants: Vec<usize>,
    /// IPIs whose handler was recorded, one per (send, target).
    pub arrows: Vec<Arrow>,
    /// (send, target) of IPIs whose handler is not in the trace.
    pub unanswered: Vec<(usize, u32)>,
}

impl Timeline {
    /// Pairs `events` (merged by TSC).
    pub fn of(events: &[Record]) -> Timeline {
        let mut t = Timeline::default();
        // Per CPU: indices into `t.slices` of the open ones, innermost last.
        let mut open: Vec<Vec<usize>> = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            let cpu = ev.cpu as usize;
            if open.len() <= cpu {
                open.resize(cpu + 1, Vec::new());
            }
            let spec = ev.kind.spec();
            match spec.phase {
                Phase::Instant => t.instants.push(i),
                Phase::Begin => {
                    open[cpu].push(t.slices.len());
                    t.slices.push(Slice {
                        cpu: ev.cpu,
                        name: spec.slice,
                        begin: i,
                        end: None,
                        cut: false,
                        depth: open[cpu].len() - 1,
                    });
                }
                Phase::End => {
                    let stack = &mut open[cpu];
                    match stack.iter().rposition(|&s| t.slices[s].name == spec.slice) {
                        Some(at) => {
                            for s in stack.drain(at..).rev() {
                                t.slices[s].end = Some(i);
                                t.slices[s].cut = t.slices[s].name != spec.slice;
                            }
                        }
                        None => t.lone_ends.push(i),
                    }
                }
            }
        }
        for (i, ev) in events.iter().enumerate().filter(|(_, e)| e.kind == Kind::IpiSend) {
            let id = ev.arg("id");
            for target in (0..64u32).filter(|&c| ev.has_cpu("targets", c as usize)) {
                let run = events[i..].iter().position(|e| {
                    e.kind == Kind::IpiRun
                        && e.cpu == target
                        && e.arg("id") == id
                        && e.arg("from") == ev.cpu as u64
                });
                match run {
                    Some(r) => t.arrows.push(Arrow { send: i, run: i + r }),
                    None => t.unanswered.push((i, target)),
                }
            }
        }
        t
    }

    /// The slice that `events[i]` begins, if it begins one.
    pub fn slice_begun_at(&self, i: usize) -> Option<&Slice> {
        self.slices.iter().find(|s| s.begin == i)
    }
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
