//! Runs mm's loom checks of its own code, and the weakened twins of its orderings, as
//! part of `cargo test`: the switch_mm / flush / lazy / release protocol
//! (`mm/tests/tlb_protocol_loom.rs`) and the walk-marker protocol
//! (`mm/tests/walk_marker_loom.rs`). It needs `--cfg loom`, which must not reach the kernel build (see
//! `mm/Cargo.toml`), so it is a cargo of its own, in its own target directory; a release
//! build, since loom explores some 420 000 executions.

/// The models of mm's code as written and the weakened twins: tlb_protocol_loom 16 (4 of
/// them the idle leave, I1..I4) and 13 (one of them the idle leave's reordered switch_mm),
/// walk_marker_loom 6 (the three ways to wait, with two walkers and with a walk after
/// a walk) and 6 twins. Every one must pass (a twin passes when
/// the weakened code fails the check). (The survey of sites whose weaker ordering is also
/// correct is `#[ignore]`d.)
const TESTS: usize = 41;

#[test]
fn loom_checks_the_tlb_and_walk_marker_protocols_and_their_weakened_twins_fail() {
    tests::run_cfg_check(
        "loom check",
        "loom",
        true,
        &["tlb_protocol_loom", "walk_marker_loom"],
        TESTS,
    );
}
