#[test]
fn clock_lines_are_checked_against_the_host_and_qemu() {
    let line = |tsc: u64, lapic: u64| {
        vec![format!(
            "timer: tsc_hz={tsc} invariant_tsc=no lapic_per_ms={lapic} tick_hz=100"
        )]
    };
    let host = 2_596_000_000;
    assert!(super::check_clocks(&line(2_595_502_272, 62_490), host).is_ok());
    // What the old calibration printed once each (UEFI -smp 64, a loaded host).
    assert!(super::check_clocks(&line(5_629_386, 354), host).is_err());
    assert!(super::check_clocks(&line(14_550_879_894, 350_860), host).is_err());
    assert!(super::check_clocks(&line(2_595_749_444, 283_719), host).is_err());
    assert!(super::check_clocks(&[], host).is_ok());
}

#[test]
fn the_host_tsc_rate_is_measured() {
    assert!(super::host_tsc_hz() > 100_000_000);
}

use super::*;

#[test]
fn summary_lines_parse() {
    assert_eq!(parse_summary("12 passed, 0 failed"), Some((12, 0, 0)));
    assert_eq!(parse_summary("  3 passed, 2 failed "), Some((3, 2, 0)));
    assert_eq!(parse_summary("3 passed, 0 failed, 4 ignored"), Some((3, 0, 4)));
    assert_eq!(parse_summary("test x ... ok"), None);
}

#[test]
fn selection_becomes_boot_options() {
    let s = Selection {
        filters: vec!["gather".into()],
        exact: true,
        skips: vec!["slow".into()],
    };
    assert_eq!(
        s.boot_args(),
        "test=on test.filter=gather test.skip=slow test.exact=on"
    );
    assert_eq!(Selection::default().boot_args(), "test=on");
}

#[test]
fn resume_fields_parse() {
    let l = "harness: resume start=4 passed=3 failed=1";
    assert_eq!(
        (field(l, "start"), field(l, "passed"), field(l, "failed")),
        (Some(4), Some(3), Some(1))
    );
}
