//! The coherence oracle has teeth: with one TLB mechanism broken on purpose
//! (`tlb.break=`), the oracle must report stale translations and the run must fail.
//! One boot per mechanism, at `-smp 4`, running only the oracle tests that must catch it.

use std::time::Duration;

use boot::image::Firmware;
use boot::qemu::QemuConfig;
use boot::testrun::{self, Selection};

/// Boots with `tlb.break=<mechanism>`, runs `tests`, and checks that each of them failed
/// with a `coherence:` line reporting stale reads or lazy CPUs left behind.
fn caught(mechanism: &str, tests: &[&str]) {
    boot::install::ensure().expect("QEMU");
    let dir = tempfile::tempdir().expect("temporary directory");
    let cfg = QemuConfig {
        firmware: Firmware::Bios,
        smp: 4,
        // Progress-based: a boot on a busy host is slow, not silent.
        timeout: Duration::from_secs(1800),
        silence: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    let selection = Selection {
        filters: tests
            .iter()
            .map(|t| format!("kernel::ktests::coherence::{t}"))
            .collect(),
        exact: true,
        skips: Vec::new(),
    };
    let mut lines = Vec::new();
    let report = testrun::run(
        &cfg,
        &selection,
        &format!("tlb.break={mechanism}"),
        dir.path(),
        |l| lines.push(l.to_string()),
    )
    .unwrap_or_else(|e| panic!("tlb.break={mechanism}: the broken kernel still reports its tests: {e}"));
    let got = boot::qemu::describe(&format!("{report:?}"), &lines);
    println!(
        "{}",
        lines
            .iter()
            .filter(|l| l.starts_with("coherence:"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        (report.passed, report.failed),
        (0, tests.len()),
        "tlb.break={mechanism}: every selected oracle test must fail; the boot:\n{got}"
    );
    let bad = |l: &&String| {
        l.starts_with("coherence: op=")
            && l.split_whitespace().any(|w| {
                ["stale=", "left_behind="]
                    .iter()
                    .any(|k| w.strip_prefix(k).is_some_and(|n| n != "0"))
            })
    };
    assert_eq!(
        lines.iter().filter(bad).count(),
        tests.len(),
        "tlb.break={mechanism}: each run reports what it caught; the boot:\n{got}"
    );
}

#[test]
fn coherence_oracle_catches_the_cleared_entrys_own_stride() {
    // Collapse and unshare flushing with the 2 MiB / 1 GiB stride (the old code).
    caught("stride", &["collapse_a", "unshare_a", "unshare_c"]);
}

#[test]
fn coherence_oracle_catches_lazy_cpus_skipped_despite_freed_tables() {
    // The last two free upper tables only (a 2 MiB leaf's PMD table, a 1 GiB leaf's PUD
    // table): the flush's freed-tables decision with no PTE table in the window.
    caught(
        "lazy",
        &[
            "unmap_1_free_c",
            "collapse_c",
            "teardown_c",
            "unmap_2m_free_pmd_c",
            "unmap_1g_free_c",
        ],
    );
}

#[test]
fn coherence_oracle_catches_a_missing_remote_flush() {
    caught("noflush", &["unmap_34_keep_a", "unmap_512_free_a", "collapse_a"]);
}
