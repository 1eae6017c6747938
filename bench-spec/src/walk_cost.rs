//! The walker's own price: the `walk-cost:` line, one per boot.
//!
//! `walk-cost: smp=<n> backend=<backend> marker_cycles=<m> plain_cycles=<p> ratio=<m/p>
//! samples=<s> walks_per_sample=<w>`: the median TSC cycles per lock-free walk with the
//! walk marker published (the walker's path) and without it (an entry point kept for
//! this measurement only), measured alternately on one CPU in one boot. Each sample is
//! `walks_per_sample` walks of one mapped page timed together, divided by their number;
//! the medians are over `samples` samples each. `ratio` is written with three decimals
//! and is not read back (it follows from the two medians).

use core::fmt::{self, Display};

use crate::Backend;
use crate::line::{ParseError, field, read_fields};

/// The line's first word.
pub const WALK_COST_PREFIX: &str = "walk-cost:";

/// The fields of a `walk-cost:` line after its first word, in order.
pub const WALK_COST_FIELDS: [&str; 7] = [
    "smp",
    "backend",
    "marker_cycles",
    "plain_cycles",
    "ratio",
    "samples",
    "walks_per_sample",
];

/// The medians of one boot's walk-cost measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkCost {
    /// CPUs online.
    pub smp: usize,
    /// The remote-flush backend of the boot.
    pub backend: Backend,
    /// Median cycles per walk, marker published.
    pub marker_cycles: u64,
    /// Median cycles per walk, no marker.
    pub plain_cycles: u64,
    /// Samples per kind.
    pub samples: usize,
    /// Walks timed together in one sample.
    pub walks_per_sample: usize,
}

/// A ratio with three decimals (`x` over `y`; 0 when `y` is).
struct Ratio(u64, u64);

impl Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = if self.1 == 0 {
            0.0
        } else {
            self.0 as f64 / self.1 as f64
        };
        write!(f, "{r:.3}")
    }
}

impl WalkCost {
    /// Marker over plain, the price of the marker as a factor (1.03 is 3% more).
    pub fn ratio(&self) -> f64 {
        self.marker_cycles as f64 / self.plain_cycles.max(1) as f64
    }

    /// Reads a line as [`Display`] writes it.
    pub fn parse(text: &str) -> Result<WalkCost, ParseError> {
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some(WALK_COST_PREFIX) {
            return Err(ParseError::NotALine);
        }
        let [smp, backend, marker, plain, ratio, samples, walks] = read_fields(words, &WALK_COST_FIELDS)?;
        let _: f64 = field("ratio", ratio)?;
        Ok(WalkCost {
            smp: field("smp", smp)?,
            backend: field("backend", backend)?,
            marker_cycles: field("marker_cycles", marker)?,
            plain_cycles: field("plain_cycles", plain)?,
            samples: field("samples", samples)?,
            walks_per_sample: field("walks_per_sample", walks)?,
        })
    }
}

impl Display for WalkCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{WALK_COST_PREFIX} smp={} backend={} marker_cycles={} plain_cycles={} ratio={} samples={} walks_per_sample={}",
            self.smp,
            self.backend,
            self.marker_cycles,
            self.plain_cycles,
            Ratio(self.marker_cycles, self.plain_cycles),
            self.samples,
            self.walks_per_sample
        )
    }
}

#[cfg(test)]
#[path = "walk_cost_tests.rs"]
mod tests;
