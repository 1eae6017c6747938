//! One shootdown round as its initiator sees it (issue 24, `bench=shootdown`): the
//! `shootdown:` lines, two kinds, both written by [`Display`] and read by
//! [`Shootdown::parse`]:
//!
//! `shootdown: smp=<n> pages=<p> targets=<k> mode=<serial|concurrent|early>
//! cycles_median=<c> ratio_to_serial=<r> ipis_per_round=<i> early_acks_per_round=<e>
//! iters=<m>` ([`FlushRound`]): the median TSC cycles of one `flush_tlb_mm_range` of `p`
//! pages with `k` other CPUs running the address space, in one [`ShootdownMode`]; `r` is that
//! median over the serial one of the same boot, pages and targets (three decimals), and
//! the two counts are per round (two decimals): the flush IPIs the initiator counted and
//! the early acknowledgements the responders counted.
//!
//! `shootdown: smp=<n> targets=<k> mode=roundtrip cycles_median=<c> iters=<m>`
//! ([`RoundTrip`]): the median cycles of an empty cross call to the same `k` CPUs, the
//! floor no flush round can beat.
//!
//! What a round must count is [`FlushRound::check`]'s: `k` flush IPIs in every mode,
//! `k` early acknowledgements in `early`, none in the others.

use core::fmt::{self, Display};

use crate::PerOp;
use crate::line::{ParseError, field, read_fields};

/// The lines' first word.
pub const SHOOTDOWN_PREFIX: &str = "shootdown:";

/// The flush sizes measured, in pages of 4 KiB: one, the most a ranged flush takes
/// (mm's `FLUSH_CEILING`), and a whole PTE table's worth (a full flush, being above it).
pub const SHOOTDOWN_PAGES: [u64; 3] = [1, 33, 512];

/// Measured rounds per configuration unless `bench.iters=` says otherwise.
pub const SHOOTDOWN_DEFAULT_ITERS: usize = 200;

/// The fields of a flush round's line after its first word, in order.
pub const ROUND_FIELDS: [&str; 9] = [
    "smp",
    "pages",
    "targets",
    "mode",
    "cycles_median",
    "ratio_to_serial",
    "ipis_per_round",
    "early_acks_per_round",
    "iters",
];

/// The fields of a round trip's line after its first word, in order.
pub const ROUNDTRIP_FIELDS: [&str; 5] = ["smp", "targets", "mode", "cycles_median", "iters"];

/// The `mode=` word of a round trip's line.
pub const ROUNDTRIP: &str = "roundtrip";

named! {
    /// How a shootdown round runs (`mm::round::RoundMode`'s three settings).
    pub enum ShootdownMode {
        /// Send, wait for every target, then flush locally.
        Serial = "serial",
        /// Send, flush locally while the targets work, then wait.
        Concurrent = "concurrent",
        /// Concurrent, and each target acknowledges on entering its handler.
        Early = "early",
    }
}

/// One configuration's flush rounds (`mode=serial|concurrent|early`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlushRound {
    /// CPUs online.
    pub smp: usize,
    /// Pages flushed (4 KiB stride).
    pub pages: u64,
    /// Other CPUs running the address space (the round's targets).
    pub targets: usize,
    /// How the round ran.
    pub mode: ShootdownMode,
    /// Median TSC cycles of one round on the initiator.
    pub cycles_median: u64,
    /// `cycles_median` over the serial mode's, same boot, pages and targets.
    pub ratio_to_serial: f64,
    /// Flush IPIs per round.
    pub ipis_per_round: PerOp,
    /// Early acknowledgements per round.
    pub early_acks_per_round: PerOp,
    /// Measured rounds.
    pub iters: usize,
}

/// One configuration's empty cross calls (`mode=roundtrip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrip {
    /// CPUs online.
    pub smp: usize,
    /// CPUs called.
    pub targets: usize,
    /// Median TSC cycles of one call, sent to answered.
    pub cycles_median: u64,
    /// Measured calls.
    pub iters: usize,
}

/// A `shootdown:` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shootdown {
    /// A flush round's line.
    Round(FlushRound),
    /// A round trip's line.
    RoundTrip(RoundTrip),
}

/// A ratio with three decimals (`x` over `y`; 0 when `y` is).
pub fn ratio(x: u64, y: u64) -> f64 {
    if y == 0 { 0.0 } else { x as f64 / y as f64 }
}

impl FlushRound {
    /// Whether the round counted what it must: `targets` flush IPIs per round in every
    /// mode, `targets` early acknowledgements per round in `early` and none in the
    /// others. The error says what it got.
    pub fn check(&self) -> Result<(), CountMismatch> {
        let k = self.targets as f64;
        let acks = if self.mode == ShootdownMode::Early { k } else { 0.0 };
        if self.ipis_per_round.0 != k {
            return Err(CountMismatch {
                what: "ipis_per_round",
                got: self.ipis_per_round.0,
                expected: k,
            });
        }
        if self.early_acks_per_round.0 != acks {
            return Err(CountMismatch {
                what: "early_acks_per_round",
                got: self.early_acks_per_round.0,
                expected: acks,
            });
        }
        Ok(())
    }
}

/// A count a flush round got wrong ([`FlushRound::check`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountMismatch {
    /// The field.
    pub what: &'static str,
    /// What the round counted, per round.
    pub got: f64,
    /// What it must count.
    pub expected: f64,
}

impl Display for CountMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} but expected {}", self.what, self.got, self.expected)
    }
}

impl Shootdown {
    /// Reads a line as [`Display`] writes it.
    pub fn parse(text: &str) -> Result<Shootdown, ParseError> {
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some(SHOOTDOWN_PREFIX) {
            return Err(ParseError::NotALine);
        }
        // The mode is the third field of a round trip's line, the fourth of a round's.
        if words.clone().nth(2) == Some("mode=roundtrip") {
            let [smp, targets, _, cycles, iters] = read_fields(words, &ROUNDTRIP_FIELDS)?;
            return Ok(Shootdown::RoundTrip(RoundTrip {
                smp: field("smp", smp)?,
                targets: field("targets", targets)?,
                cycles_median: field("cycles_median", cycles)?,
                iters: field("iters", iters)?,
            }));
        }
        let [smp, pages, targets, mode, cycles, ratio, ipis, acks, iters] =
            read_fields(words, &ROUND_FIELDS)?;
        Ok(Shootdown::Round(FlushRound {
            smp: field("smp", smp)?,
            pages: field("pages", pages)?,
            targets: field("targets", targets)?,
            mode: field("mode", mode)?,
            cycles_median: field("cycles_median", cycles)?,
            ratio_to_serial: Some(field::<f64>("ratio_to_serial", ratio)?)
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or(ParseError::BadValue("ratio_to_serial"))?,
            ipis_per_round: field("ipis_per_round", ipis)?,
            early_acks_per_round: field("early_acks_per_round", acks)?,
            iters: field("iters", iters)?,
        }))
    }
}

impl Display for FlushRound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SHOOTDOWN_PREFIX} smp={} pages={} targets={} mode={} cycles_median={} ratio_to_serial={:.3} ipis_per_round={} early_acks_per_round={} iters={}",
            self.smp,
            self.pages,
            self.targets,
            self.mode,
            self.cycles_median,
            self.ratio_to_serial,
            self.ipis_per_round,
            self.early_acks_per_round,
            self.iters
        )
    }
}

impl Display for RoundTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SHOOTDOWN_PREFIX} smp={} targets={} mode={ROUNDTRIP} cycles_median={} iters={}",
            self.smp, self.targets, self.cycles_median, self.iters
        )
    }
}

impl Display for Shootdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shootdown::Round(r) => r.fmt(f),
            Shootdown::RoundTrip(t) => t.fmt(f),
        }
    }
}

#[cfg(test)]
#[path = "shootdown_tests.rs"]
mod tests;
