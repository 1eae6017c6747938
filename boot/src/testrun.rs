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
    /// Tests this configuration cannot run (their declared needs), reported as ignored.
    pub ignored: usize,
    /// Names of failed tests.
    pub failures: Vec<String>,
    /// How many boots the run took (1 + panicking tests that were not last).
    pub boots: usize,
}

fn field(line: &str, key: &str) -> Option<usize> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// QEMU's LAPIC timer counts at 1 GHz, divided by 16 as the kernel sets it up: the rate
/// a correct calibration finds under TCG.
pub const TCG_LAPIC_PER_MS: u64 = 62_500;

/// The host's TSC rate, measured over 100 ms (under TCG the guest reads the host's TSC).
pub fn host_tsc_hz() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // Each end is an Instant bracketed by two TSC reads; a preempted end makes its
        // bracket wide and the estimate low, so the highest of three is kept.
        let at = || {
            // SAFETY: RDTSC has no side effects and exists on every x86_64 CPU.
            let a = unsafe { core::arch::x86_64::_rdtsc() };
            let now = std::time::Instant::now();
            // SAFETY: as above.
            let b = unsafe { core::arch::x86_64::_rdtsc() };
            (a + (b - a) / 2, now)
        };
        (0..3)
            .map(|_| {
                let (t0, i0) = at();
                std::thread::sleep(std::time::Duration::from_millis(100));
                let (t1, i1) = at();
                ((t1 - t0) as u128 * 1_000_000_000 / (i1 - i0).as_nanos().max(1)) as u64
            })
            .max()
            .unwrap_or(0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Checks the kernel's `timer: tsc_hz=.. lapic_per_ms=..` line from a TCG boot against
/// the host's TSC rate (within 10%) and QEMU's LAPIC rate (within 5%): a calibration that
/// a descheduled vCPU disturbed makes every timeout in the kernel wrong.
pub fn check_clocks(lines: &[String], host_tsc_hz: u64) -> Result<(), String> {
    let Some(line) = lines.iter().find(|l| l.starts_with("timer: tsc_hz=")) else {
        return Ok(()); // a boot that ended before the timers (its own failure says why)
    };
    let tsc = field(line, "tsc_hz").unwrap_or(0) as u64;
    let lapic = field(line, "lapic_per_ms").unwrap_or(0) as u64;
    let off = |got: u64, want: u64, pct: u64| got.abs_diff(want) * 100 > want * pct;
    if host_tsc_hz > 0 && off(tsc, host_tsc_hz, 10) {
        return Err(format!(
            "clock calibration: {line:?}: tsc_hz is not within 10% of the host's {host_tsc_hz}"
        ));
    }
    if off(lapic, TCG_LAPIC_PER_MS, 5) {
        return Err(format!(
            "clock calibration: {line:?}: lapic_per_ms is not within 5% of QEMU's {TCG_LAPIC_PER_MS}"
        ));
    }
    Ok(())
}

/// Parses a `N passed, N failed` line (with `, N ignored` when some were).
pub fn parse_summary(line: &str) -> Option<(usize, usize, usize)> {
    let (p, rest) = line.trim().split_once(" passed, ")?;
    let (f, ignored) = match rest.split_once(" failed, ") {
        Some((f, i)) => (f, i.strip_suffix(" ignored")?.parse().ok()?),
        None => (rest.strip_suffix(" failed")?, 0),
    };
    Some((p.parse().ok()?, f.parse().ok()?, ignored))
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
    let host_tsc = if cfg.accel == qemu::Accel::Tcg {
        host_tsc_hz()
    } else {
        0
    };
    let mut clock_errors = Vec::new();
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
        if cfg.accel == qemu::Accel::Tcg
            && let Err(e) = check_clocks(&outcome.lines, host_tsc)
        {
            on_line(&e);
            clock_errors.push(e);
        }
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
                    .ok_or_else(|| {
                        format!(
                            "kernel asked to resume but printed no `harness: resume` line\n{}",
                            outcome.describe()
                        )
                    })?;
                let (Some(s), Some(p), Some(f)) =
                    (field(line, "start"), field(line, "passed"), field(line, "failed"))
                else {
                    return Err(format!("malformed resume line: {line}\n{}", outcome.describe()));
                };
                let i = field(line, "ignored").unwrap_or(0);
                resume = format!("test.start={s} test.passed={p} test.failed={f} test.ignored={i}");
            }
            Verdict::Success | Verdict::Failure => {
                let summary = outcome.lines.iter().rev().find_map(|l| parse_summary(l));
                let Some((p, f, i)) = summary else {
                    let last = outcome.lines.last().map_or("nothing", |s| s.as_str());
                    return Err(format!(
                        "kernel ended ({:?}) without a test summary; it last printed: {last:?}\n{}",
                        outcome.verdict,
                        outcome.describe()
                    ));
                };
                report.passed = p;
                report.ignored = i;
                report.failed = f + clock_errors.len();
                report.failures.extend(clock_errors);
                return Ok(report);
            }
            Verdict::NoVerdict(status, ref stderr) => {
                let last = outcome.lines.iter().rev().find(|l| !l.trim().is_empty());
                return Err(format!(
                    "QEMU ended without a verdict (status {status:?}; a triple fault ends it with 0){}; the kernel last printed: {:?}\n{}",
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!("; QEMU said: {stderr}")
                    },
                    last.map_or("nothing", |s| s.as_str()),
                    outcome.describe()
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "testrun_tests.rs"]
mod tests;
