//! Runs the x86-TSO check of mm's walk markers and its fence-removed twins
//! (`mm/tests/walk_marker_tso.rs`, on the checker in `tso/`) as part of `cargo test`. It
//! needs `--cfg tso`, which must not reach the kernel build (see `mm/Cargo.toml`), so it
//! is a cargo of its own, in its own target directory (a debug build: mm's dev profile
//! is optimised already, and the checker's time goes to thread hand-overs).

/// mm's protocol as written (8 models, the pruning cross-check, Release/Acquire as
/// plain `mov`s) and the fence-removed twins (10); every one must pass (a twin passes
/// when the check fails the code without its fence). The checker's own litmus tests are
/// `tso/tests/litmus.rs` (`cargo test -p tso`).
const TESTS: usize = 20;

#[test]
fn tso_checks_the_walk_markers_and_their_fence_removed_twins_fail() {
    // (The deeper models, 3 CPUs walking twice and the pruning cross-check with two
    // walks, are `#[ignore]`d.)
    tests::run_cfg_check("TSO check", "tso", false, &["walk_marker_tso"], TESTS);
}
