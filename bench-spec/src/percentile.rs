//! The percentile rule for the `*_median` and `*_p99` fields.

/// The `p`-th percentile of `sorted` (ascending): the sample at index
/// `(len - 1) * p / 100`, rounded down (no interpolation). `None` when there are no
/// samples or `p` is above 100.
pub fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if p > 100 {
        return None;
    }
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[last * p / 100])
}

#[cfg(test)]
#[path = "percentile_tests.rs"]
mod tests;
