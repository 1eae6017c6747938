//! Drives one run of the in-kernel tests in one QEMU configuration.
//!
//! The kernel cannot unwind, so a panicking test ends its boot with the `Resume` verdict
//! and a line `harness: resume start=S passed=P failed=F`; this driver boots again with
//! those values as boot options until the kernel reaches its final `N passed, N failed`.

use std::path::Path;

use crate::image;
use crate::qemu::{self, QemuConfig, Verdict};

/// Which in-kernel tests to run, as `cargo test -- <filters>` selects them.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Substrings; a test runs if its name contains any (all tests when empty).
    pub filters: Vec<String>,
    /// Filters must equal the whole name.
    pub exact: bool,
    /// Tests whose name contains any of these are skipped.
    pub skips: Vec<String>,
}

impl Selection {
    /// The selection as kernel boot options.
    pub fn boot_args(&self) -> String {
        let mut words = vec!["test=on".to_string()];
        words.extend(self.filters.iter().map(|f| format!("test.filter={f}")));
        words.extend(self.skips.iter().map(|s| format!("test.skip={s}")));
        if self.exact {
            words.push("test.exact=on".into());
        }
        words.join(" ")
    }
}

/// Result of the in-kernel tests in one configuration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failed: usize,
    /// Names of failed tests.
    pub failures: Vec<String>,
    /// How many boots the run took (1 + panicking tests that were not last).
    pub boots: usize,
}

fn field(line: &str, key: &str) -> Option<usize> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Parses a `N passed, N failed` line.
pub fn parse_summary(line: &str) -> Option<(usize, usize)> {
    let (p, f) = line.trim().split_once(" passed, ")?;
    Some((p.parse().ok()?, f.strip_suffix(" failed")?.parse().ok()?))
}

/// Runs the selected in-kernel tests under `cfg`, echoing kernel output through `on_line`.
/// `extra_args` are further boot options (e.g. `apic=xapic`).
pub fn run(
    cfg: &QemuConfig,
    selection: &Selection,
    extra_args: &str,
    work_dir: &Path,
    mut on_line: impl FnMut(&str),
) -> Result<TestReport, String> {
    let kernel = image::kernel_elf();
    let mut report = TestReport::default();
    let mut resume = String::new();
    loop {
        report.boots += 1;
        let img = work_dir.join(format!(
            "{}-smp{}-boot{}.img",
            cfg.firmware, cfg.smp, report.boots
        ));
        let args = format!("{} {extra_args} {resume}", selection.boot_args());
        image::build(&kernel, cfg.firmware, args.trim(), &img)?;
        let outcome = qemu::run(cfg, &img, &mut on_line)?;
        let _ = std::fs::remove_file(&img);
        for line in &outcome.lines {
            if let Some(name) = line
                .strip_prefix("test ")
                .and_then(|l| l.strip_suffix(" ... FAILED"))
            {
                report.failures.push(name.to_string());
            }
        }
        match outcome.verdict {
            Verdict::Resume => {
                let line = outcome
                    .lines
                    .iter()
                    .rev()
                    .find(|l| l.starts_with("harness: resume "))
                    .ok_or("kernel asked to resume but printed no `harness: resume` line")?;
                let (Some(s), Some(p), Some(f)) =
                    (field(line, "start"), field(line, "passed"), field(line, "failed"))
                else {
                    return Err(format!("malformed resume line: {line}"));
                };
                resume = format!("test.start={s} test.passed={p} test.failed={f}");
            }
            Verdict::Success | Verdict::Failure => {
                let summary = outcome.lines.iter().rev().find_map(|l| parse_summary(l));
                let Some((p, f)) = summary else {
                    let last = outcome.lines.last().map_or("nothing", |s| s.as_str());
                    return Err(format!(
                        "kernel ended ({:?}) without a test summary; it last printed: {last:?}",
                        outcome.verdict
                    ));
                };
                report.passed = p;
                report.failed = f;
                return Ok(report);
            }
            Verdict::NoVerdict(status, stderr) => {
                let last = outcome.lines.iter().rev().find(|l| !l.trim().is_empty());
                return Err(format!(
                    "QEMU ended without a verdict (status {status:?}; a triple fault ends it with 0){}; the kernel last printed: {:?}",
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!("; QEMU said: {stderr}")
                    },
                    last.map_or("nothing", |s| s.as_str())
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_parse() {
        assert_eq!(parse_summary("12 passed, 0 failed"), Some((12, 0)));
        assert_eq!(parse_summary("  3 passed, 2 failed "), Some((3, 2)));
        assert_eq!(parse_summary("test x ... ok"), None);
    }

    #[test]
    fn selection_becomes_boot_options() {
        let s = Selection {
            filters: vec!["gather".into()],
            exact: true,
            skips: vec!["slow".into()],
        };
        assert_eq!(
            s.boot_args(),
            "test=on test.filter=gather test.skip=slow test.exact=on"
        );
        assert_eq!(Selection::default().boot_args(), "test=on");
    }

    #[test]
    fn resume_fields_parse() {
        let l = "harness: resume start=4 passed=3 failed=1";
        assert_eq!(
            (field(l, "start"), field(l, "passed"), field(l, "failed")),
            (Some(4), Some(3), Some(1))
        );
    }
}
