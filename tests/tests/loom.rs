//! Runs mm's loom check of its own switch_mm / flush / lazy / release code, and the
//! weakened twins of its orderings (`mm/tests/tlb_protocol_loom.rs`), as part of `cargo
//! test`. It needs `--cfg loom`, which must not reach the kernel build (see
//! `mm/Cargo.toml`), so it is a cargo of its own, in its own target directory; a release
//! build, since loom explores some 190 000 executions.

use std::path::Path;
use std::process::Command;

/// The models of mm's code as written (9) and the weakened twins (8); every one must
/// pass (a twin passes when the weakened code fails the check).
const TESTS: usize = 17;

#[test]
fn loom_checks_the_tlb_protocol_and_its_weakened_twins_fail() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["test", "--release", "-p", "mm", "--test", "tlb_protocol_loom"])
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
