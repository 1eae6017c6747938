//! Runs mm's loom checks of its own code, and the weakened twins of its orderings, as
//! part of `cargo test`: the switch_mm / flush / lazy / release protocol
//! (`mm/tests/tlb_protocol_loom.rs`) and the walk-marker protocol
//! (`mm/tests/walk_marker_loom.rs`). It needs `--cfg loom`, which must not reach the kernel build (see
//! `mm/Cargo.toml`), so it is a cargo of its own, in its own target directory; a release
//! build, since loom explores some 420 000 executions.

use std::path::Path;
use std::process::Command;

/// The models of mm's code as written and the weakened twins: tlb_protocol_loom 12 and
/// 12, walk_marker_loom 3 and 5, plus its W1 finding (1) and the models with W1 Release
/// (3). Every one must pass (a twin passes when the weakened code fails the check).
const TESTS: usize = 36;

#[test]
fn loom_checks_the_tlb_and_walk_marker_protocols_and_their_weakened_twins_fail() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "test",
            "--release",
            "--no-fail-fast",
            "-p",
            "mm",
            "--test",
            "tlb_protocol_loom",
            "--test",
            "walk_marker_loom",
        ])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target").join("loom"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    // (The survey of sites whose weaker ordering is also correct is `#[ignore]`d.)
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.contains(" ... ") && !l.ends_with(" ignored"))
        .collect();
    let failed: Vec<&str> = results.iter().copied().filter(|l| !l.ends_with(" ok")).collect();
    let passed = results.len() - failed.len();
    assert!(
        out.status.success() && failed.is_empty(),
        "the loom check failed ({}): {} of {} tests passed; not passing: {failed:#?}; last lines \
         of its output: {:#?}",
        out.status,
        passed,
        results.len(),
        stderr.lines().rev().take(15).collect::<Vec<_>>()
    );
    assert_eq!(
        passed, TESTS,
        "the loom check ran {passed} tests, {TESTS} expected: {results:#?}"
    );
}
