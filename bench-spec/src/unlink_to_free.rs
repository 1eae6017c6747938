//! How long a batched page table waits before it is reusable: the `unlink-to-free:`
//! line, one per sync form and walker count of a boot.
//!
//! `unlink-to-free: smp=<n> backend=<backend> sync=<form> walkers=<k> period=<ticks|walks>
//! batches=<b> median_cycles=.. p99_cycles=.. median_ns=..`: a one-table unmap, then the
//! freer polled until the batch is freed, `batches` times; each sample is the freer's
//! own count of TSC cycles from the batch's first unlink to its free
//! (`unlink_to_free_cycles` on `mmu-gather-stats:`, one batch per sample), and the
//! figures are their median and 99th percentile ([`crate::percentile`]). With
//! `broadcast` a batch waits for a tick grace period (every other CPU takes a timer tick,
//! `period=ticks`); with `targeted` and `wait` for a walk period (every CPU inside a walk
//! at the snapshot leaves it, `period=walks`). `period` follows from `sync` and is
//! checked when read.

use core::fmt::{self, Display};

use crate::line::{ParseError, field, read_fields};
use crate::{Backend, Sync};

/// The line's first word.
pub const UNLINK_TO_FREE_PREFIX: &str = "unlink-to-free:";

/// The fields of an `unlink-to-free:` line after its first word, in order.
pub const UNLINK_TO_FREE_FIELDS: [&str; 9] = [
    "smp",
    "backend",
    "sync",
    "walkers",
    "period",
    "batches",
    "median_cycles",
    "p99_cycles",
    "median_ns",
];

/// The unlink-to-free times of one sync form with one walker count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkToFree {
    /// CPUs online.
    pub smp: usize,
    /// The remote-flush backend of the boot.
    pub backend: Backend,
    /// The sync form (never [`Sync::Skip`]: batched tables always wait).
    pub sync: Sync,
    /// Other CPUs walking the address space meanwhile.
    pub walkers: usize,
    /// Batches measured (one per sample).
    pub batches: usize,
    /// Median cycles from unlink to free.
    pub median_cycles: u64,
    /// 99th percentile, cycles.
    pub p99_cycles: u64,
    /// The median in ns.
    pub median_ns: u64,
}

/// What a batch waits for under `sync`: `ticks` (a grace period) or `walks` (a walk
/// period).
pub fn period(sync: Sync) -> &'static str {
    match sync {
        Sync::Broadcast | Sync::Skip => "ticks",
        Sync::Targeted | Sync::Wait => "walks",
    }
}

impl UnlinkToFree {
    /// Reads a line as [`Display`] writes it.
    pub fn parse(text: &str) -> Result<UnlinkToFree, ParseError> {
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some(UNLINK_TO_FREE_PREFIX) {
            return Err(ParseError::NotALine);
        }
        let [smp, backend, sync, walkers, per, batches, median, p99, ns] =
            read_fields(words, &UNLINK_TO_FREE_FIELDS)?;
        let sync: Sync = field("sync", sync)?;
        if sync == Sync::Skip {
            return Err(ParseError::BadValue("sync"));
        }
        if per != period(sync) {
            return Err(ParseError::BadValue("period"));
        }
        Ok(UnlinkToFree {
            smp: field("smp", smp)?,
            backend: field("backend", backend)?,
            sync,
            walkers: field("walkers", walkers)?,
            batches: field("batches", batches)?,
            median_cycles: field("median_cycles", median)?,
            p99_cycles: field("p99_cycles", p99)?,
            median_ns: field("median_ns", ns)?,
        })
    }
}

impl Display for UnlinkToFree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{UNLINK_TO_FREE_PREFIX} smp={} backend={} sync={} walkers={} period={} batches={} median_cycles={} p99_cycles={} median_ns={}",
            self.smp,
            self.backend,
            self.sync,
            self.walkers,
            period(self.sync),
            self.batches,
            self.median_cycles,
            self.p99_cycles,
            self.median_ns
        )
    }
}

#[cfg(test)]
#[path = "unlink_to_free_tests.rs"]
mod tests;
