use super::*;

#[test]
fn set_clear_iterate_across_words() {
    let mut m = CpuMask::new();
    for c in [0, 63, 64, 287, 511] {
        m.set(c);
    }
    assert_eq!(m.iter().collect::<Vec<_>>(), [0, 63, 64, 287, 511]);
    assert_eq!(m.count(), 5);
    m.clear(64);
    assert!(!m.contains(64) && m.contains(63));
    assert_eq!(
        CpuMask::first(3)
            .and_not(&[1].into_iter().collect())
            .iter()
            .collect::<Vec<_>>(),
        [0, 2]
    );
}

#[test]
fn atomic_mask_snapshots() {
    let a = AtomicCpuMask::new();
    a.set(5);
    a.set(300);
    a.clear(5);
    assert_eq!(a.load().iter().collect::<Vec<_>>(), [300]);
    assert!(a.contains(300));
}
