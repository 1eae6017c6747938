//! `cargo run -- bench --shootdown` (issue 24): boots the kernel's `bench=shootdown` once
//! per CPU count and reads its `shootdown:` lines ([`bench_spec::Shootdown`]): per CPU
//! count, flush size and target count, the initiator's median cycles of one flush round
//! in serial, concurrent and early mode, their ratios to serial, and the empty cross
//! call to the same CPUs (the floor). Prints them as a table ([`table`]), checks that
//! every configuration is there and counted what it must ([`check`]), and writes them to
//! `shootdown.csv` ([`write_csv`]; a file of its own, not `bench.csv`, whose columns are
//! the matrix's).

use std::collections::BTreeMap;
use std::path::Path;

use bench_spec::{FlushRound, ROUND_FIELDS, SHOOTDOWN_PAGES, Shootdown, ShootdownMode};

use crate::bench::{self, BenchPlan, Boot, Report};
use crate::qemu::QemuConfig;

/// What to measure: the `bench` command's options that `--shootdown` uses.
#[derive(Debug, Clone)]
pub struct ShootdownPlan {
    /// CPU counts, one boot each.
    pub smp: Vec<u32>,
    /// Measured rounds per configuration.
    pub iters: usize,
    /// Per-boot timeout in seconds.
    pub timeout_secs: u64,
    /// Kill a boot silent this many seconds.
    pub silence_secs: u64,
}

impl ShootdownPlan {
    /// The plan's CPU counts, timeouts and `--iters` (default
    /// [`bench_spec::SHOOTDOWN_DEFAULT_ITERS`]).
    pub fn of(plan: &BenchPlan) -> ShootdownPlan {
        ShootdownPlan {
            smp: plan.smp.clone(),
            iters: plan.iters.unwrap_or(bench_spec::SHOOTDOWN_DEFAULT_ITERS),
            timeout_secs: plan.timeout_secs,
            silence_secs: plan.silence_secs,
        }
    }
}

/// The boot options of a `bench=shootdown` boot of `iters` rounds.
pub fn args(iters: usize) -> String {
    format!("bench=shootdown bench.iters={iters}")
}

/// Boots `bench=shootdown` at each CPU count of `plan` in turn. The report's
/// `shootdowns` are the lines; its failures, the boots that failed and the rounds the
/// kernel found counting wrong. Errors are for what stops the run before a boot.
pub fn run(plan: &ShootdownPlan) -> Result<Report, String> {
    if plan.iters == 0 {
        return Err("bench --shootdown: --iters must be at least 1".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let boots = plan
        .smp
        .iter()
        .map(|&smp| {
            let cfg = QemuConfig {
                smp,
                timeout: std::time::Duration::from_secs(plan.timeout_secs),
                silence: Some(std::time::Duration::from_secs(plan.silence_secs)),
                ..Default::default()
            };
            Boot::gatheros(
                format!("gatherOS smp={smp} shootdown"),
                cfg,
                &crate::image::kernel_elf(),
                &args(plan.iters),
                dir.path().join(format!("shootdown-{smp}.img")),
                "",
            )
        })
        .collect::<Result<Vec<_>, String>>()?;
    bench::run_boots(&boots)
}

/// What is wrong with the lines of boots at `smp` CPUs each: a (pages, targets, mode) or
/// round trip missing or twice, a line of another CPU count, a round that did not count
/// `targets` flush IPIs, or early acknowledgements outside early mode (one message each;
/// empty if nothing is).
pub fn check(lines: &[Shootdown], smp: &[u32]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for l in lines {
        let key = match l {
            Shootdown::Round(r) => {
                if let Err(e) = r.check() {
                    wrong.push(format!(
                        "smp={} pages={} targets={} mode={}: {e}",
                        r.smp, r.pages, r.targets, r.mode
                    ));
                }
                format!(
                    "smp={} pages={} targets={} mode={}",
                    r.smp, r.pages, r.targets, r.mode
                )
            }
            Shootdown::RoundTrip(t) => format!(
                "smp={} targets={} mode={}",
                t.smp,
                t.targets,
                bench_spec::ROUNDTRIP
            ),
        };
        *seen.entry(key).or_default() += 1;
    }
    let mut expected = Vec::new();
    for &n in smp {
        for k in 1..n {
            for p in SHOOTDOWN_PAGES {
                for m in ShootdownMode::ALL {
                    expected.push(format!("smp={n} pages={p} targets={k} mode={m}"));
                }
            }
            expected.push(format!("smp={n} targets={k} mode={}", bench_spec::ROUNDTRIP));
        }
    }
    for e in &expected {
        match seen.get(e).copied().unwrap_or(0) {
            1 => {}
            0 => wrong.push(format!("{e}: missing")),
            c => wrong.push(format!("{e}: {c} lines")),
        }
    }
    for k in seen.keys().filter(|k| !expected.contains(k)) {
        wrong.push(format!("{k}: not measured in this run"));
    }
    wrong
}

/// The lines as an aligned table: per CPU count, pages and targets, the three modes'
/// median cycles, concurrent and early over serial, and the round trip to the same CPUs.
pub fn table(lines: &[Shootdown]) -> String {
    let mut rounds: BTreeMap<(usize, u64, usize), [Option<&FlushRound>; 3]> = BTreeMap::new();
    let mut trips: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for l in lines {
        match l {
            Shootdown::Round(r) => {
                let m = ShootdownMode::ALL.iter().position(|&m| m == r.mode).unwrap_or(0);
                rounds.entry((r.smp, r.pages, r.targets)).or_default()[m] = Some(r);
            }
            Shootdown::RoundTrip(t) => {
                trips.insert((t.smp, t.targets), t.cycles_median);
            }
        }
    }
    let head = [
        "smp",
        "pages",
        "targets",
        "serial",
        "concurrent",
        "early",
        "concurrent/serial",
        "early/serial",
        "roundtrip",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
    for (&(smp, pages, targets), modes) in &rounds {
        let cycles = |m: usize| modes[m].map_or("-".into(), |r| r.cycles_median.to_string());
        let ratio = |m: usize| modes[m].map_or("-".into(), |r| format!("{:.3}", r.ratio_to_serial));
        rows.push(vec![
            smp.to_string(),
            pages.to_string(),
            targets.to_string(),
            cycles(0),
            cycles(1),
            cycles(2),
            ratio(1),
            ratio(2),
            trips.get(&(smp, targets)).map_or("-".into(), |c| c.to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                + "\n"
        })
        .collect()
}

/// The lines as CSV: the header [`ROUND_FIELDS`], one row per line as it was printed
/// (a round trip's row leaves `pages`, `ratio_to_serial` and the counts empty).
pub fn csv(lines: &[Shootdown]) -> String {
    let mut out = ROUND_FIELDS.join(",") + "\n";
    for l in lines {
        // The line's own words (`k=v`), so that the CSV holds what the spec wrote.
        let text = l.to_string();
        let fields: BTreeMap<&str, &str> = text
            .split_ascii_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let row: Vec<&str> = ROUND_FIELDS
            .iter()
            .map(|f| fields.get(f).copied().unwrap_or(""))
            .collect();
        out += &(row.join(",") + "\n");
    }
    out
}

/// Writes [`csv`] of the lines to `path`.
pub fn write_csv(lines: &[Shootdown], path: &Path) -> Result<(), String> {
    std::fs::write(path, csv(lines)).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[path = "bench_shootdown_tests.rs"]
mod tests;
