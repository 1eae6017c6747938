//! The orders the protocol requires, checked on a recorded trace (every CPU's events
//! merged by TSC, [`merge`]). Each rule reads only events, so a check of a run is a check
//! of what the machine did, not of what its counters say:
//!
//! 1. **Flushed before freed** (`flush-before-free`): a table freed after being unlinked
//!    (an `entry_clear` naming it) was first flushed: the unlinking CPU began a flush of
//!    its address space after the unlink and before the free, and every CPU that flush had to run its
//!    handler on ran it (`flush_run`, that generation or a later one) before the free:
//!    with the native backend every target; with the paravirt one the targets it
//!    interrupted (the others were preempted vCPUs, flushed by the host on resume); with
//!    INVLPGB none (the hardware flushes, no handler runs anywhere).
//! 2. **Synced before freed** (`sync-before-free`): a table freed at once had, on the
//!    freeing CPU, a complete table-free sync (`sync_end`) after that flush began and
//!    before the free; a sync skipped on the flush's receipt requires the receipt to be of
//!    that flush (its generation) and that flush to have been the native IPI broadcast
//!    including lazy CPUs. A table freed with a batch had
//!    the grace period (or walk period) it was queued for complete (`gp_done`) before.
//! 3. **Lazy CPUs catch up** (`lazy-catchup`): a CPU that a flush skipped because it held
//!    the address space lazily comes back to it (`lazy_exit`, or a `switch_mm` to it)
//!    current to at least that flush's generation.
//! 4. **No early acknowledgement of freed tables** (`early-ack-of-tables`): a responder
//!    acknowledges before flushing (`early_ack`) only a flush that frees no table: one
//!    whose `flush_begin` left lazy CPUs out (mm's `flush.rs`, rule 8: a flush that frees
//!    or unshares tables includes them, and the flusher frees the table right after the
//!    acknowledgements).
//!
//! Events on different CPUs are ordered by their TSC stamps: the kernel reads one
//! synchronised TSC (invariant TSC on hardware; under QEMU TCG every vCPU's TSC derives
//! from the same virtual clock). A handler of a flush that frees tables is stamped before
//! it acknowledges (such flushes are never acknowledged early: mm's `flush.rs`, rule 8),
//! and the flusher's free after it saw the acknowledgement, so a correct run never shows
//! a free stamped before the handler it waited for.

extern crate alloc;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::event::{BACKENDS, Kind, LAZY_POLICY, Record, SYNC_DECISIONS, index_of};

/// A broken order: the rule, the event that breaks it, and what was missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name (`flush-before-free`, `sync-before-free`, `lazy-catchup`).
    pub rule: &'static str,
    /// The event at which the order is broken (the free, the return).
    pub at: Record,
    /// What the trace shows instead.
    pub what: String,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}: cpu {} at tsc {} ({}): {}",
            self.rule,
            self.at.cpu,
            self.at.tsc,
            self.at.kind.name(),
            self.what
        )
    }
}

/// What a check looked at (so that a test can say it checked something).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// Tables freed at once whose order was checked.
    pub direct_frees: usize,
    /// Tables freed with a batch whose order was checked.
    pub batched_frees: usize,
    /// Lazy CPUs skipped by a flush whose return was checked (or which never came back).
    pub lazy_skips: usize,
}

/// Merges per-CPU event lists into one, ordered by TSC (ties: by CPU, then by position).
pub fn merge(per_cpu: &[Vec<Record>]) -> Vec<Record> {
    let mut all: Vec<(u64, u32, usize, Record)> = per_cpu
        .iter()
        .flat_map(|evs| evs.iter().enumerate().map(|(i, r)| (r.tsc, r.cpu, i, *r)))
        .collect();
    all.sort_by_key(|&(tsc, cpu, i, _)| (tsc, cpu, i));
    all.into_iter().map(|(_, _, _, r)| r).collect()
}

/// Checks every rule on `events` (merged, [`merge`]); the first violation of each free or
/// return, in trace order.
pub fn check(events: &[Record]) -> Result<Checked, Vec<Violation>> {
    let mut checked = Checked::default();
    let mut bad = Vec::new();
    for (k, ev) in events.iter().enumerate() {
        match ev.kind {
            Kind::TableFreed => {
                let v = check_free(events, k, &mut checked);
                bad.extend(v);
            }
            Kind::FlushBegin => bad.extend(check_lazy(events, k, &mut checked)),
            Kind::EarlyAck => bad.extend(check_early_ack(events, k)),
            _ => {}
        }
    }
    if bad.is_empty() { Ok(checked) } else { Err(bad) }
}

fn is(ev: &Record, kind: Kind) -> bool {
    ev.kind == kind
}

/// Rules 1 and 2 for the free at `events[k]`.
fn check_free(events: &[Record], k: usize, checked: &mut Checked) -> Option<Violation> {
    let free = events[k];
    let table = free.arg("table");
    let batch = free.arg("batch");
    let fail = |rule, what: String| Some(Violation { rule, at: free, what });
    // The unlink: the last entry_clear naming this table before the free.
    let Some(u) = events[..k]
        .iter()
        .rposition(|e| is(e, Kind::EntryClear) && e.arg("table") == table)
    else {
        // Unlinked before the trace began: nothing to check it against.
        return None;
    };
    let (mm, unlinker) = (events[u].arg("mm"), events[u].cpu);
    // The flush after the unlink: the first flush of mm that the unlinking CPU begins after
    // it (the unlinker flushes what it cleared; another CPU's flush of the same mm, from a
    // gather of its own, is not the one this free relies on).
    let Some(f) = events[u..k]
        .iter()
        .position(|e| is(e, Kind::FlushBegin) && e.arg("mm") == mm && e.cpu == unlinker)
        .map(|i| u + i)
    else {
        return fail(
            "flush-before-free",
            format!(
                "table {table:#x} of mm {mm} was unlinked (cpu {}) and freed with no flush of mm {mm} between",
                events[u].cpu
            ),
        );
    };
    let flush = events[f];
    let flush_gen = flush.arg("gen");
    let must_run = match BACKENDS.get(flush.arg("backend") as usize) {
        Some(&"native") => flush.arg("targets"),
        Some(&"pv") => events[f..k]
            .iter()
            .find(|e| is(e, Kind::FlushEnd) && e.cpu == flush.cpu && e.arg("gen") == flush_gen)
            .map_or(flush.arg("targets"), |end| end.arg("interrupted")),
        _ => 0,
    };
    for c in (0..64).filter(|&c| must_run & (1 << c) != 0) {
        let ran = events[f..k].iter().any(|e| {
            is(e, Kind::FlushRun) && e.cpu as usize == c && e.arg("mm") == mm && e.arg("gen") >= flush_gen
        });
        if !ran {
            return fail(
                "flush-before-free",
                format!(
                    "table {table:#x} of mm {mm} freed before cpu {c}, a target of flush gen {flush_gen}, ran the flush handler"
                ),
            );
        }
    }
    if batch == 0 {
        checked.direct_frees += 1;
        let synced = events[f..k]
            .iter()
            .rposition(|e| is(e, Kind::SyncEnd) && e.cpu == free.cpu && e.arg("mm") == mm);
        let Some(s) = synced.map(|i| f + i) else {
            return fail(
                "sync-before-free",
                format!(
                    "table {table:#x} of mm {mm} freed with no table-free sync after flush gen {flush_gen} began"
                ),
            );
        };
        let decided = events[f..s]
            .iter()
            .rev()
            .find(|e| is(e, Kind::SyncBegin) && e.cpu == free.cpu && e.arg("mm") == mm);
        if events[s].arg("decision") == index_of(SYNC_DECISIONS, "skip") {
            if let Some(d) = decided
                && d.arg("gen") != flush_gen
            {
                return fail(
                    "sync-before-free",
                    format!(
                        "the sync for table {table:#x} was skipped on the receipt of flush gen {}, not of gen {flush_gen}, the flush after its unlink",
                        d.arg("gen")
                    ),
                );
            }
            let native = flush.arg("backend") == index_of(BACKENDS, "native");
            let lazy_in = flush.arg("lazy_cpus") == index_of(LAZY_POLICY, "included");
            if !native || !lazy_in {
                return fail(
                    "sync-before-free",
                    format!(
                        "the sync for table {table:#x} was skipped on flush gen {flush_gen}, which was backend={} lazy_cpus={}: only a native broadcast including lazy CPUs excuses it",
                        flush.name_of("backend"),
                        flush.name_of("lazy_cpus")
                    ),
                );
            }
        }
    } else {
        checked.batched_frees += 1;
        let Some(q) = events[u..k]
            .iter()
            .rposition(|e| is(e, Kind::BatchQueued) && e.arg("batch") == batch)
            .map(|i| u + i)
        else {
            return fail(
                "sync-before-free",
                format!(
                    "table {table:#x} freed with batch {batch:#x}, which was never queued after its unlink"
                ),
            );
        };
        let seq = events[q].arg("seq");
        if !events[q..k]
            .iter()
            .any(|e| is(e, Kind::GpDone) && e.arg("seq") >= seq)
        {
            return fail(
                "sync-before-free",
                format!("table {table:#x} freed with batch {batch:#x} before grace period {seq} completed"),
            );
        }
    }
    None
}

/// Rule 3 for the flush at `events[k]`.
fn check_lazy(events: &[Record], k: usize, checked: &mut Checked) -> Vec<Violation> {
    let flush = events[k];
    let mut bad = Vec::new();
    if flush.arg("lazy_cpus") != index_of(LAZY_POLICY, "skipped") {
        return bad;
    }
    let (mm, flush_gen) = (flush.arg("mm"), flush.arg("gen"));
    for c in (0..64).filter(|&c| flush.has_cpu("lazy", c) && !flush.has_cpu("targets", c)) {
        checked.lazy_skips += 1;
        let back = events[k..].iter().find(|e| {
            e.cpu as usize == c
                && ((is(e, Kind::LazyExit) && e.arg("mm") == mm)
                    || (is(e, Kind::SwitchMm) && e.arg("to") == mm))
        });
        let Some(back) = back else { continue };
        let now = if is(back, Kind::LazyExit) {
            back.arg("to_gen")
        } else {
            back.arg("gen")
        };
        if now < flush_gen {
            bad.push(Violation {
                rule: "lazy-catchup",
                at: *back,
                what: format!(
                    "cpu {c}, skipped as lazy by flush gen {flush_gen} of mm {mm}, is back in mm {mm} current only to gen {now}"
                ),
            });
        }
    }
    bad
}

/// Rule 4 for the early acknowledgement at `events[k]`.
fn check_early_ack(events: &[Record], k: usize) -> Option<Violation> {
    let ack = events[k];
    let (mm, flush_gen) = (ack.arg("mm"), ack.arg("gen"));
    // Its flush: the `flush_begin` of that generation of mm, on the CPU that asked.
    let flush = events[..k].iter().rev().find(|e| {
        is(e, Kind::FlushBegin)
            && e.arg("mm") == mm
            && e.arg("gen") == flush_gen
            && e.cpu as u64 == ack.arg("from")
    })?;
    (flush.arg("lazy_cpus") == index_of(LAZY_POLICY, "included")).then(|| Violation {
        rule: "early-ack-of-tables",
        at: ack,
        what: format!(
            "cpu {} acknowledged flush gen {flush_gen} of mm {mm} (cpu {}) before flushing, and that flush frees tables",
            ack.cpu, flush.cpu
        ),
    })
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
