//! `cargo run -- trace --op OP --scen S --smp N [--mode M] [--sync FORM] [--out DIR]`:
//! boots the benchmark for one operation in one scenario, one iteration, with tracing on
//! (`bench=tlb bench.ops=OP bench.scen=S bench.iters=1 trace=tlb tlb.sync=FORM` and the
//! mode's options). The kernel traces the last op of each configuration it measures (for
//! the native backend: the sync as the key decides it, then forced to FORM) and prints
//! each as a run of `trace-event:` lines ([`collect`]). The command prints each run's
//! events in time order and the verdict of the ordering check ([`listing`]), and writes
//! `trace.json` ([`json`], for Perfetto and chrome://tracing), `trace.svg` ([`svg`]) and
//! `trace.log` (the runs' lines, which `--from` reads back to draw again without a boot).
//! [`timeline`] pairs the events into slices and IPI arrows for both; [`json_check`]
//! checks a written JSON against the trace-event format (the tests use it).

pub mod collect;
pub mod json;
pub mod json_check;
pub mod listing;
pub mod svg;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::{self, Firmware};
use crate::qemu::{self, QemuConfig, Verdict};
use collect::{Collector, Run};

/// The plan's words, as the benchmark names them.
pub use bench_spec::{Backend, Op, Scenario, Sync};

/// `--op`: one of [`bench_spec::Op`].
fn parse_op(s: &str) -> Result<bench_spec::Op, String> {
    bench_spec::Op::parse(s).ok_or(format!("'{s}' is not one of {}", bench_spec::Op::LIST))
}

/// `--scen`: one of [`bench_spec::Scenario`].
fn parse_scen(s: &str) -> Result<bench_spec::Scenario, String> {
    bench_spec::Scenario::parse(s).ok_or(format!("'{s}' is not one of {}", bench_spec::Scenario::LIST))
}

/// `--mode`: one of [`bench_spec::Backend`].
fn parse_mode(s: &str) -> Result<bench_spec::Backend, String> {
    bench_spec::Backend::parse(s).ok_or(format!("'{s}' is not one of {}", bench_spec::Backend::LIST))
}

/// `--sync`: a forced sync form (not `skip`, which only the key decides).
fn parse_sync(s: &str) -> Result<bench_spec::Sync, String> {
    bench_spec::Sync::parse(s)
        .filter(|&f| f != bench_spec::Sync::Skip)
        .ok_or(format!("'{s}' is not one of broadcast,targeted,wait"))
}

fn parse_idle(s: &str) -> Result<bench_spec::Idle, String> {
    bench_spec::Idle::parse(s).ok_or(format!("'{s}' is not one of {}", bench_spec::Idle::LIST))
}

/// What to trace (the `trace` command's options).
#[derive(Debug, Clone, clap::Args)]
pub struct TracePlan {
    /// The operation: unmap, unmap-nobatch, collapse, unshare.
    #[arg(long, value_parser = parse_op)]
    pub op: bench_spec::Op,
    /// The scenario: A (spinning tasks), B (idle), C (lazy).
    #[arg(long, value_parser = parse_scen)]
    pub scen: bench_spec::Scenario,
    /// Number of CPUs.
    #[arg(long, default_value = "4", value_parser = crate::qemu::parse_smp)]
    pub smp: u32,
    /// The backend: native, pv, invlpgb (as the benchmark's `--modes`).
    #[arg(long, default_value = "native", value_parser = parse_mode)]
    pub mode: bench_spec::Backend,
    /// The sync form of the forced run (the key's run beside it shows its own decision):
    /// broadcast (Linux's IPI to every other CPU), targeted, wait.
    #[arg(long, default_value = "broadcast", value_parser = parse_sync)]
    pub sync: bench_spec::Sync,
    /// What idle CPUs do with the address space they hold lazily (`idle.leave_mm=`):
    /// `never` by default, Linux's lazy TLB, so that scenario C's idle CPUs take the flush
    /// IPI; `always` (or `deep`) shows them let go and take none.
    #[arg(long, default_value = "never", value_parser = parse_idle)]
    pub idle: bench_spec::Idle,
    /// Output directory for trace.json and trace.svg.
    #[arg(long, default_value = "trace-out")]
    pub out: PathBuf,
    /// Boot nothing: read the runs from a `trace.log` an earlier run wrote (to redraw).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Kill the boot after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

impl TracePlan {
    /// The kernel's boot options for this plan.
    pub fn boot_args(&self) -> String {
        format!(
            "bench=tlb bench.ops={} bench.scen={} bench.iters=1 trace=tlb tlb.sync={} idle.leave_mm={} {}",
            self.op,
            self.scen,
            self.sync,
            self.idle,
            crate::bench::mode_args(self.mode.name())
        )
    }
}

/// What a traced boot gave.
#[derive(Debug)]
pub struct Traced {
    /// The runs, in the order the kernel printed them.
    pub runs: Vec<Run>,
    /// The listing of every run ([`listing::listing`]).
    pub listing: String,
    /// Whether every run passed the ordering check, and the boot succeeded with at least
    /// one run.
    pub ok: bool,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// How the boot ended, with its last lines (for a failure message).
    pub boot: String,
}

/// Boots the plan (or reads `--from`), lists its runs, and writes `trace.json`,
/// `trace.svg` and `trace.log` (the runs' lines) into `plan.out`. Errors are for what stops it before it has runs to show (no image, no
/// QEMU, a boot that traced nothing).
pub fn run(plan: &TracePlan) -> Result<Traced, String> {
    let (lines, boot, booted) = match &plan.from {
        Some(log) => {
            let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
            (
                text.lines().map(String::from).collect(),
                format!("read from {}", log.display()),
                true,
            )
        }
        None => boot(plan)?,
    };
    let mut collector = Collector::default();
    for l in &lines {
        collector.line(l);
    }
    let runs = collector.finish();
    if runs.is_empty() {
        return Err(format!("no trace runs ({}); it ended: {boot}", plan.boot_args()));
    }
    let mut listing = String::new();
    let mut ok = booted;
    for run in &runs {
        let (text, passed) = listing::listing(run);
        listing += &text;
        ok &= passed && run.complete;
    }
    if !booted {
        listing += &format!("trace: the boot failed: {boot}");
    }
    let mut files = write(&runs, &plan.out)?;
    // The runs' lines as the kernel printed them, for `--from`.
    let log = plan.out.join("trace.log");
    let kept: Vec<&String> = lines.iter().filter(|l| Collector::keeps(l)).collect();
    let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, text).map_err(|e| format!("{}: {e}", log.display()))?;
    files.push(log);
    Ok(Traced {
        runs,
        listing,
        ok,
        files,
        boot,
    })
}

/// Boots the plan: the serial lines, how the boot ended, and whether it succeeded.
fn boot(plan: &TracePlan) -> Result<(Vec<String>, String, bool), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let img = dir.path().join("trace.img");
    let args = plan.boot_args();
    image::build(&image::kernel_elf(), Firmware::Bios, &args, &img)?;
    let cfg = QemuConfig {
        smp: plan.smp,
        timeout: Duration::from_secs(plan.timeout),
        silence: Some(Duration::from_secs(plan.timeout.min(300))),
        ..Default::default()
    };
    eprintln!("trace: booting -smp {} with \"{args}\"", plan.smp);
    let mut lines = Vec::new();
    let outcome = qemu::run(&cfg, &img, |l| lines.push(l.to_string()));
    Ok(match outcome {
        Ok(o) => (lines, o.describe(), o.verdict == Verdict::Success),
        Err(e) => (lines, e, false),
    })
}

/// Writes `trace.json` and `trace.svg` of `runs` into `dir` (created if missing).
pub fn write(runs: &[Run], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (j, s) = (dir.join("trace.json"), dir.join("trace.svg"));
    json::write(runs, &j)?;
    svg::write(runs, &s)?;
    Ok(vec![j, s])
}

#[cfg(test)]
#[path = "sample_tests.rs"]
mod sample;
