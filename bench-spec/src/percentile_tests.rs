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
