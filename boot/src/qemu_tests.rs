use super::*;

#[test]
fn smp_is_checked_against_the_limit() {
    assert_eq!(parse_smp("4"), Ok(4));
    assert!(parse_smp("0").unwrap_err().contains("between 1 and 288"));
    assert!(parse_smp("289").is_err());
    assert!(parse_smp("four").unwrap_err().contains("not a CPU count"));
}

#[test]
fn memory_sizes_are_checked() {
    assert_eq!(parse_mem("512M").unwrap(), "512M");
    assert_eq!(parse_mem("1024").unwrap(), "1024");
    assert!(parse_mem("lots").is_err());
    assert!(parse_mem("5MM").is_err());
    assert!(parse_mem("G").is_err());
}

#[test]
fn exit_status_maps_to_verdicts() {
    assert_eq!(Verdict::from_status(Some(33), String::new()), Verdict::Success);
    assert_eq!(Verdict::from_status(Some(35), String::new()), Verdict::Failure);
    assert_eq!(Verdict::from_status(Some(37), String::new()), Verdict::Resume);
    // A triple fault under -no-reboot ends QEMU with 0: that is no success.
    assert!(matches!(
        Verdict::from_status(Some(0), String::new()),
        Verdict::NoVerdict(..)
    ));
}

#[test]
fn a_description_quotes_the_failures_and_a_bounded_tail() {
    let lines: Vec<String> = (0..100)
        .map(|i| format!("line {i}"))
        .chain(["panic: cpu=1 at x.rs:1:1: boom".to_string(), String::new()])
        .collect();
    let d = describe("Failure", &lines);
    assert!(d.starts_with("ended: Failure; 102 lines of output\n"), "{d}");
    assert!(d.contains("what failed:\n  | panic: cpu=1"), "{d}");
    assert!(
        d.contains("(76 earlier lines not shown)") && d.contains("  | line 76\n"),
        "{d}"
    );
    assert!(!d.contains("  | line 75\n"), "{d}");
    assert_eq!(d.lines().count(), 5 + TAIL_LINES, "{d}");
    assert_eq!(tail(&[]), "  (no output)\n");
}

#[test]
fn a_silent_qemu_is_killed_and_its_last_lines_quoted() {
    // A shell stands in for QEMU: two lines, then nothing.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo one; echo two; exec sleep 30"]);
    let cfg = QemuConfig {
        silence: Some(Duration::from_secs(2)),
        timeout: Duration::from_secs(20),
        ..QemuConfig::default()
    };
    let t = Instant::now();
    let err = run_command(cmd, &cfg, |_| {}).unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "killed at the silence bound"
    );
    assert!(err.starts_with("QEMU printed nothing for 2 s"), "{err}");
    assert!(
        err.contains("last printed: \"two\"") && err.contains("  | one\n  | two\n"),
        "{err}"
    );
}

#[test]
fn command_line_has_the_fixed_machine() {
    let cfg = QemuConfig::default();
    let a = args(&cfg, Path::new("x.img")).unwrap().join(" ");
    assert!(a.contains("-machine q35 -accel tcg -cpu max -smp 4 -m 512M"));
    assert!(a.contains("isa-debug-exit,iobase=0xf4"));
    assert!(a.contains("-serial stdio"));
    assert!(!a.contains("-S"));
    let usb = QemuConfig {
        usb: true,
        ..QemuConfig::default()
    };
    let a = args(&usb, Path::new("x.img")).unwrap().join(" ");
    assert!(a.contains("-device qemu-xhci") && a.contains("usb-storage,drive=stick"));
    assert!(
        !a.contains("-drive format=raw,file=x.img"),
        "no IDE disk when booting from USB"
    );
}
