//! The QEMU integration tests live in `tests/`; this library holds what two of them share:
//! running a check that needs a `--cfg` of its own (loom, tso).

use std::path::Path;
use std::process::Command;

/// Runs `cargo test -p mm` on `tests` (test targets) with `--cfg <cfg>`, which must not
/// reach the kernel build (see `mm/Cargo.toml`), so as a cargo of its own in its own
/// target directory (`target/<cfg>`), in release mode if `release`. Panics, saying what
/// it got, unless every test ran passes and exactly `expected` of them ran (ignored ones
/// are not counted). `what` names the check in the messages.
pub fn run_cfg_check(what: &str, cfg: &str, release: bool, tests: &[&str], expected: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut args = vec!["test"];
    if release {
        args.push("--release");
    }
    args.extend(["--no-fail-fast", "-p", "mm"]);
    for t in tests {
        args.extend(["--test", t]);
    }
    let start = std::time::Instant::now();
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(&args)
        .env("RUSTFLAGS", format!("--cfg {cfg}"))
        .env("CARGO_TARGET_DIR", root.join("target").join(cfg))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    println!("the {what} took {:.1?} (build included)", start.elapsed());
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.contains(" ... ") && !l.ends_with(" ignored"))
        .collect();
    let failed: Vec<&str> = results.iter().copied().filter(|l| !l.ends_with(" ok")).collect();
    let passed = results.len() - failed.len();
    assert!(
        out.status.success() && failed.is_empty(),
        "the {what} failed ({}): {} of {} tests passed; not passing: {failed:#?}; last lines \
         of its output: {:#?}",
        out.status,
        passed,
        results.len(),
        stderr.lines().rev().take(15).collect::<Vec<_>>()
    );
    assert_eq!(
        passed, expected,
        "the {what} ran {passed} tests, {expected} expected: {results:#?}"
    );
}
