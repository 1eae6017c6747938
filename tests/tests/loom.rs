//! Runs mm's exhaustive loom check of the switch_mm / flush / lazy / release protocol
//! (`mm/tests/tlb_protocol_loom.rs`) as part of `cargo test`. It needs `--cfg loom`,
//! which must not reach the kernel build (see `mm/Cargo.toml`), so it is a cargo of its
//! own, in its own target directory.

use std::path::Path;
use std::process::Command;

#[test]
fn loom_checks_the_tlb_protocol_and_its_weakened_twins_fail() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["test", "-p", "mm", "--test", "tlb_protocol_loom"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target").join("loom"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the loom check failed");
    // The weakened twins are `should_panic` tests: they pass only by failing the check.
    let passed = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.ends_with(" ok"))
        .count();
    assert!(passed >= 15, "only {passed} loom tests ran");
}
