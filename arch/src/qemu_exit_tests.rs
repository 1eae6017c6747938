use super::*;

#[test]
fn qemu_status_matches_runner_expectation() {
    assert_eq!(ExitCode::Success.qemu_status(), 33);
    assert_eq!(ExitCode::Failure.qemu_status(), 35);
    assert_eq!(ExitCode::Resume.qemu_status(), 37);
}
