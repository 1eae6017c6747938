#[test]
fn the_probe_answers_within_its_timeout() {
    let start = std::time::Instant::now();
    let r = super::probe();
    eprintln!("kvm probe: {r:?}");
    assert!(start.elapsed() < super::PROBE_TIMEOUT + std::time::Duration::from_secs(2));
}
