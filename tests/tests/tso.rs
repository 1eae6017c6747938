//! Runs the x86-TSO check of mm's walk markers and its fence-removed twins
//! (`mm/tests/walk_marker_tso.rs`, on the checker in `tso/`) as part of `cargo test`. It
//! needs `--cfg tso`, which must not reach the kernel build (see `mm/Cargo.toml`), so it
//! is a cargo of its own, in its own target directory (a debug build: mm's dev profile
//! is optimised already, and the checker's time goes to thread hand-overs).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// mm's protocol as written (8 models, the pruning cross-check, Release/Acquire as
/// plain `mov`s) and the fence-removed twins (10); every one must pass (a twin passes
/// when the check fails the code without its fence). The checker's own litmus tests are
/// `tso/tests/litmus.rs` (`cargo test -p tso`).
const TESTS: usize = 20;

#[test]
fn tso_checks_the_walk_markers_and_their_fence_removed_twins_fail() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let start = Instant::now();
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["test", "-p", "mm", "--test", "walk_marker_tso"])
        .env("RUSTFLAGS", "--cfg tso")
        .env("CARGO_TARGET_DIR", root.join("target").join("tso"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    println!("the TSO check took {:.1?} (build included)", start.elapsed());
    // (The deeper models, 3 CPUs walking twice and the pruning cross-check with two
    // walks, are `#[ignore]`d.)
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.contains(" ... ") && !l.ends_with(" ignored"))
        .collect();
    let failed: Vec<&str> = results.iter().copied().filter(|l| !l.ends_with(" ok")).collect();
    let passed = results.len() - failed.len();
    assert!(
        out.status.success() && failed.is_empty(),
        "the TSO check failed ({}): {} of {} tests passed; not passing: {failed:#?}; last \
         lines of its output: {:#?}",
        out.status,
        passed,
        results.len(),
        stderr.lines().rev().take(15).collect::<Vec<_>>()
    );
    assert_eq!(
        passed, TESTS,
        "the TSO check ran {passed} tests, {TESTS} expected: {results:#?}"
    );
}
