#[test]
fn warmup_is_at_most_fifty() {
    assert_eq!(
        [0, 1, 49, 50, 51, 1000].map(super::warmup),
        [0, 1, 49, 50, 50, 50]
    );
}
