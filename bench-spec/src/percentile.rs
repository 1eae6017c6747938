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
mod tests {
    use super::percentile;

    #[test]
    fn edges() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 0), Some(7));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 100), Some(7));
        assert_eq!(percentile(&[1, 2], 50), Some(1), "rounded down, not interpolated");
        assert_eq!(percentile(&[1, 2], 100), Some(2));
        assert_eq!(percentile(&[1, 2, 3], 101), None);
    }

    #[test]
    fn median_and_p99_of_a_thousand() {
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(percentile(&v, 50), Some(499));
        assert_eq!(percentile(&v, 99), Some(989));
        assert_eq!(percentile(&v, 0), Some(0));
        assert_eq!(percentile(&v, 100), Some(999));
    }
}
