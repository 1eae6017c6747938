//! How many iterations a configuration runs.

/// Measured iterations per configuration unless told otherwise.
pub const DEFAULT_ITERS: usize = 1000;

/// Iterations run first and discarded, for `iters` measured ones: as many, at most 50.
pub const fn warmup(iters: usize) -> usize {
    if iters < 50 { iters } else { 50 }
}

#[cfg(test)]
#[path = "iters_tests.rs"]
mod tests;
