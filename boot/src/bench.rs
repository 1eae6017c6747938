//! `cargo run -- bench`: boots the kernel's `bench=tlb` matrix per CPU count and backend
//! (and, with `--os linux`, the same operations in a Linux guest, see [`crate::linux`]),
//! prints the `gatherOS smp=...` / `linux smp=...` lines as a table (and each boot's
//! `walk-cost:` and `unlink-to-free:` lines after it), writes them to CSV,
//! compares with a baseline CSV and draws one SVG per operation and scenario (time
//! against CPU count). A boot or configuration that fails does not lose the others:
//! [`run`] keeps every line that was measured and lists the failures ([`Report`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::image::{self, Firmware};
use crate::qemu::{self, QemuConfig, Verdict};

/// Fields of a kernel benchmark line, in order (the specification's).
pub use bench_spec::FIELDS;

/// Fields the host adds: the kernel's first word, and which Linux kernel printed the
/// line (its release, from `linux-bench: kernel=`; for gatherOS empty, or the build's
/// flavour where a run compares two: `bench --trace-cost`).
const HOST: &[&str] = &["os", "kernel"];

/// The fields identifying a configuration (for baselines).
const KEY: &[&str] = &[
    "os", "kernel", "smp", "scen", "pages", "tables", "op", "backend", "sync", "walkers", "idle",
];

/// The idle policy of gatherOS lines written before they said (issue 23): idle CPUs kept
/// the address space they held lazily.
const EARLIER_IDLE: bench_spec::Idle = bench_spec::Idle::Never;

/// Fields of [`FIELDS`] that results written before them lack, with the value they
/// meant there (issue 21 added the walkers; before it nothing walked).
const ADDED: &[(&str, &str)] = &[("walkers", "0")];

/// One configuration's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Record(pub BTreeMap<String, String>);

impl Record {
    /// Parses a `gatherOS smp=...` or `linux smp=...` line ([`bench_spec::Line::parse`];
    /// the `os` field is the first word); None unless it is one (`collapsed=` is filled
    /// in as `iters/iters` when missing).
    pub fn parse(line: &str) -> Option<Record> {
        let parsed = match bench_spec::Line::parse(line) {
            Ok(l) => l,
            Err(_) => bench_spec::Line::parse(&upgraded(line)?).ok()?,
        };
        Some(Record::from(&parsed))
    }

    /// Fills the fields older lines and files lack: `collapsed` (all iterations
    /// succeeded), `kernel` (unknown: empty), `os` (gatherOS), the [`ADDED`] ones and a
    /// gatherOS line's `idle` ([`EARLIER_IDLE`]; Linux lines have none); and
    /// writes an earlier `sync=ipi` as what it was, `broadcast`
    /// ([`bench_spec::Sync::parse_legacy`]).
    fn fill_defaults(&mut self) {
        let iters = self.get("iters").to_string();
        let sync = bench_spec::Sync::parse_legacy(self.get("sync"));
        let m = &mut self.0;
        if let Some(sync) = sync {
            m.insert("sync".into(), sync.name().into());
        }
        for (k, v) in ADDED {
            m.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
        m.entry("collapsed".into())
            .or_insert_with(|| format!("{iters}/{iters}"));
        m.entry("kernel".into()).or_default();
        m.entry("os".into()).or_insert_with(|| "gatherOS".into());
        if m["os"] == bench_spec::Os::GatherOS.name() {
            m.entry("idle".into())
                .or_insert_with(|| EARLIER_IDLE.name().into());
        }
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |s| s.as_str())
    }

    /// A field's value as a number (NaN if it is none).
    pub fn num(&self, key: &str) -> f64 {
        self.get(key).parse().unwrap_or(f64::NAN)
    }

    fn key(&self) -> String {
        self.key_except(&[])
    }

    /// The fields that identify its configuration ([`KEY`]) but those in `ignore`, as
    /// one string (records of one configuration have the same).
    pub fn key_except(&self, ignore: &[&str]) -> String {
        KEY.iter()
            .filter(|k| !ignore.contains(k))
            .map(|k| self.get(k))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A line written before issue 21 (`sync=ipi`, no `walkers=`) as it reads now
/// (`sync=broadcast walkers=0`: a sync that was sent was the broadcast, and nothing
/// walked); None if it is not such a line.
fn upgraded(line: &str) -> Option<String> {
    if line.contains(" walkers=") {
        return None;
    }
    let mut out = Vec::new();
    for word in line.split_ascii_whitespace() {
        match word.strip_prefix("sync=") {
            Some(sync) => {
                let sync = bench_spec::Sync::parse_legacy(sync)?;
                out.push(format!("sync={}", sync.name()));
                out.push("walkers=0".to_string());
            }
            None => out.push(word.to_string()),
        }
    }
    Some(out.join(" "))
}

impl From<&bench_spec::Line> for Record {
    /// The line's fields as it writes them, its first word as `os`.
    fn from(line: &bench_spec::Line) -> Record {
        let mut m = BTreeMap::new();
        m.insert("os".to_string(), line.os.name().to_string());
        let _ = line.for_each_field(|k, v| {
            m.insert(k.to_string(), v.to_string());
            Ok::<(), ()>(())
        });
        let mut r = Record(m);
        r.fill_defaults();
        r
    }
}

/// `--ops`: comma-separated operations, each one of [`bench_spec::Op`].
fn parse_ops(s: &str) -> Result<String, String> {
    parse_list(s, bench_spec::Op::parse, bench_spec::Op::LIST)
}

/// `--scenarios`: comma-separated scenarios, each one of [`bench_spec::Scenario`].
fn parse_scenarios(s: &str) -> Result<String, String> {
    parse_list(s, bench_spec::Scenario::parse, bench_spec::Scenario::LIST)
}

/// `--syncs`: comma-separated sync forms (not `skip`, which is the static key's).
fn parse_syncs(s: &str) -> Result<String, String> {
    let form = |w: &str| bench_spec::Sync::parse(w).filter(|&f| f != bench_spec::Sync::Skip);
    parse_list(s, form, "broadcast,targeted,wait")
}

/// `--walkers`: comma-separated `0` (none) and `all` (every other CPU, scenario A).
fn parse_walkers(s: &str) -> Result<String, String> {
    parse_list(s, bench_spec::Walkers::parse, bench_spec::Walkers::LIST)
}

/// `--idle`: comma-separated idle policies, each one of [`bench_spec::Idle`].
fn parse_idles(s: &str) -> Result<String, String> {
    parse_list(s, bench_spec::Idle::parse, bench_spec::Idle::LIST)
}

/// `s` if every comma-separated word of it is a name `parse` knows (of `all`).
fn parse_list<T>(s: &str, parse: fn(&str) -> Option<T>, all: &str) -> Result<String, String> {
    match s.split(',').find(|w| parse(w).is_none()) {
        Some(w) => Err(format!("'{w}' is not one of {all}")),
        None => Ok(s.to_string()),
    }
}

/// What to measure (the `bench` command's options).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchPlan {
    /// CPU counts.
    #[arg(long, value_delimiter = ',', default_values_t = [2u32, 4, 8], value_parser = crate::qemu::parse_smp)]
    pub smp: Vec<u32>,
    /// Backends: native (sync as decided, and forced), pv, and invlpgb (the decision
    /// forced with `setcpuid=invlpgb`; QEMU cannot run the instruction, the kernel's
    /// emulation stands in).
    #[arg(long, value_delimiter = ',', default_values_t = ["native".to_string(), "pv".to_string()], value_parser = ["native", "pv", "invlpgb"])]
    pub modes: Vec<String>,
    /// Sync forms (comma-separated), each measured in every boot: broadcast (Linux's
    /// IPI to every other CPU), targeted (IPIs to the CPUs walking), wait (no IPI).
    #[arg(long, default_value = "broadcast", value_parser = parse_syncs)]
    pub syncs: String,
    /// Walkers (comma-separated): 0, and all (scenario A once more with its tasks
    /// walking the address space lock-free: `walkers=` N-1). Busy walkers take the host
    /// cores from CPU 0 under TCG (as `--spin busy` does): not in the default run.
    #[arg(long, default_value = "0", value_parser = parse_walkers)]
    pub walkers: String,
    /// Idle policies (comma-separated: never, deep, always) scenario C is measured with,
    /// each over the whole cycle (the tasks woken, run and asleep, then the op:
    /// `cycle_ns_median=`). Default: the kernel's `idle.leave_mm=` default. A and B are
    /// measured once, with that.
    #[arg(long, value_parser = parse_idles)]
    pub idle: Option<String>,
    /// Operations (comma-separated): unmap, unmap-nobatch, collapse, unshare.
    #[arg(long, default_value = bench_spec::Op::LIST, value_parser = parse_ops)]
    pub ops: String,
    /// Scenarios (comma-separated): A (spinning tasks), B (idle), C (lazy).
    #[arg(long, default_value = bench_spec::Scenario::LIST, value_parser = parse_scenarios)]
    pub scenarios: String,
    /// Measured iterations per configuration (as many more, at most 50, are discarded
    /// first). Default: 1000; with --shootdown, 200 rounds.
    #[arg(long)]
    pub iters: Option<usize>,
    /// How scenario A's tasks wait: halt (hlt between interrupts) or busy (spin). Both
    /// keep the address space loaded, not lazy; busy takes host cores from CPU 0 under TCG.
    #[arg(long, default_value = "halt", value_parser = ["halt", "busy"])]
    pub spin: String,
    /// Kernels to measure: gatheros, and linux (the same operations in a Linux guest
    /// under the same QEMU settings; the Linux guest's scenario A always spins busy).
    #[arg(long, value_delimiter = ',', default_values_t = ["gatheros".to_string()], value_parser = ["gatheros", "linux"])]
    pub os: Vec<String>,
    /// The Linux guest's kernels (comma-separated; each is booted at every CPU count):
    /// a bzImage, a Debian kernel package (.deb), `default` (Debian's
    /// linux-image-amd64, bookworm-backports where set up) or `newest` (the newest
    /// linux-binary-unsigned-*-amd64 of the next Debian release's backports, whose apt
    /// source is added as `setup` adds bookworm-backports). Fetched once with apt-get
    /// into target/linux-guest. Default: `default`.
    #[arg(long, value_delimiter = ',')]
    pub linux_kernel: Vec<String>,
    /// Extra words for the Linux guest's command line (e.g. `lb.fail=collapse:C`, which
    /// makes that configuration fail, to see the rest kept).
    #[arg(long, default_value = "")]
    pub linux_args: String,
    /// Per-boot timeout in seconds (the whole boot).
    #[arg(long = "timeout", default_value_t = 7200)]
    pub timeout_secs: u64,
    /// Kill a boot that has printed no line for this many seconds: progress-based, so a
    /// slow guest on a busy host goes on while a hung one is ended (and described).
    #[arg(long = "silence", default_value_t = 600)]
    pub silence_secs: u64,
}

impl BenchPlan {
    /// The measured iterations of the matrix (`--iters`, or [`bench_spec::DEFAULT_ITERS`]).
    pub fn matrix_iters(&self) -> usize {
        self.iters.unwrap_or(bench_spec::DEFAULT_ITERS)
    }
}

/// The boot options that select backend `mode` (native, pv, invlpgb): `tlb.backend=`, or
/// for INVLPGB the decision forced by the CPUID override (the backend then emulates the
/// instruction, which QEMU's TCG does not run).
pub fn mode_args(mode: &str) -> String {
    match mode {
        "invlpgb" => "setcpuid=invlpgb".to_string(),
        m => format!("tlb.backend={m}"),
    }
}

/// One boot of the plan: a gatherOS image or the Linux guest.
#[derive(Debug, Clone)]
pub struct Boot {
    /// What the progress bar and the failures call it (`gatherOS smp=4 native`).
    pub label: String,
    cfg: QemuConfig,
    image: std::path::PathBuf,
    /// The `kernel` its records carry until the guest names its own (`linux-bench:
    /// kernel=`): empty for the gatherOS of this tool, the flavour for another build of it.
    tag: String,
}

/// Something that failed in a run: a whole boot, or one configuration of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The boot (`gatherOS smp=4 native`, `linux smp=4 <kernel>`).
    pub boot: String,
    /// What failed and why: the guest's `config-failed` words, or the boot's last line.
    pub reason: String,
}

/// What a run produced: every line measured, and what failed.
#[derive(Debug, Default)]
pub struct Report {
    /// One record per configuration measured, in the order they were printed.
    pub records: Vec<Record>,
    /// Boots and configurations that failed.
    pub failures: Vec<Failure>,
    /// How each boot ended, and its last lines ([`qemu::describe`]), in boot order.
    pub boots: Vec<(String, String)>,
    /// Each gatherOS boot's `walk-cost:` line.
    pub walk_costs: Vec<bench_spec::WalkCost>,
    /// Each gatherOS boot's `unlink-to-free:` lines.
    pub unlink_to_free: Vec<bench_spec::UnlinkToFree>,
    /// Each `bench=shootdown` boot's `shootdown:` lines ([`crate::bench_shootdown`]).
    pub shootdowns: Vec<bench_spec::Shootdown>,
}

impl Report {
    /// Whether nothing failed (the `bench` command's exit status is 0 only then).
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Everything a failing check should show: the configurations measured, the
    /// failures, and each boot's ending and last lines.
    pub fn describe(&self) -> String {
        let measured: Vec<String> = self
            .records
            .iter()
            .map(|r| {
                [
                    "os", "smp", "op", "scen", "pages", "tables", "sync", "walkers", "idle",
                ]
                .iter()
                .map(|k| r.get(k))
                .collect::<Vec<_>>()
                .join(" ")
            })
            .collect();
        let mut out = format!("{} records: [{}]\n", measured.len(), measured.join("; "));
        out += &format!("{} failures:\n{}", self.failures.len(), failures(self));
        for (boot, how) in &self.boots {
            out += &format!("boot {boot}: {how}");
        }
        out
    }
}

/// Reads one boot's serial lines as they come: its records (tagged with the Linux
/// kernel's release) and the configurations the guest reports as failed.
#[derive(Debug, Default)]
pub struct BootLog {
    /// The records so far.
    pub records: Vec<Record>,
    /// The `config-failed` reports so far (`op=.. scen=.. ... errno=.. reason=..`).
    pub failed: Vec<String>,
    /// Result lines this host could not read: failures of the run, but (unlike the
    /// guest's own `config-failed` reports) no explanation of a failed boot.
    pub unreadable: Vec<String>,
    /// The guest kernel's console, where it is kept apart from the result lines (the
    /// Linux guest's second serial port), for the description of a failed boot.
    pub console: Vec<String>,
    /// The `walk-cost:` lines so far.
    pub walk_costs: Vec<bench_spec::WalkCost>,
    /// The `unlink-to-free:` lines so far.
    pub unlink_to_free: Vec<bench_spec::UnlinkToFree>,
    /// The `shootdown:` lines so far.
    pub shootdowns: Vec<bench_spec::Shootdown>,
    kernel: String,
    done: bool,
}

impl BootLog {
    /// Takes one line; returns the record it carried, if any.
    pub fn line(&mut self, l: &str) -> Option<&Record> {
        if let Some(rest) = l.strip_prefix("linux-bench: kernel=") {
            self.kernel = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(rest) = l.strip_prefix("linux-bench: config-failed ") {
            self.failed.push(rest.trim().to_string());
        } else if l.trim() == "bench: done" {
            self.done = true;
        } else if l.starts_with(bench_spec::WALK_COST_PREFIX) {
            match bench_spec::WalkCost::parse(l) {
                Ok(c) => self.walk_costs.push(c),
                Err(e) => self
                    .unreadable
                    .push(format!("unreadable walk-cost line ({e}): {}", l.trim())),
            }
        } else if l.starts_with(bench_spec::UNLINK_TO_FREE_PREFIX) {
            match bench_spec::UnlinkToFree::parse(l) {
                Ok(u) => self.unlink_to_free.push(u),
                Err(e) => self
                    .unreadable
                    .push(format!("unreadable unlink-to-free line ({e}): {}", l.trim())),
            }
        } else if l.starts_with(bench_spec::SHOOTDOWN_PREFIX) {
            match bench_spec::Shootdown::parse(l) {
                Ok(s) => self.shootdowns.push(s),
                Err(e) => self
                    .unreadable
                    .push(format!("unreadable shootdown line ({e}): {}", l.trim())),
            }
        } else if let Some(rest) = l.strip_prefix("error: bench-shootdown: ") {
            // A round that counted wrong (the kernel's check, after the lines), or their count.
            self.failed.push(rest.trim().to_string());
        } else if let Some(mut r) = Record::parse(l) {
            r.0.insert("kernel".into(), self.kernel.clone());
            self.records.push(r);
            return self.records.last();
        } else if l.starts_with("gatherOS smp=") || l.starts_with("linux smp=") {
            // Meant as a result line but not one (a guest's printk inside it, a value
            // the spec does not know): a failure, not a silently missing record.
            let why = bench_spec::Line::parse(l)
                .err()
                .map_or(String::new(), |e| e.to_string());
            self.unreadable
                .push(format!("unreadable result line ({why}): {}", l.trim()));
        }
        None
    }

    /// Ends the boot labelled `boot` with QEMU's outcome (`Err`: it did not run to the
    /// end, e.g. a timeout) and adds its records and failures to `report`. The boot
    /// itself is listed as failed unless it succeeded, or ran to the end with failed
    /// configurations that explain its verdict.
    pub fn finish(self, boot: &str, outcome: Result<qemu::Outcome, String>, report: &mut Report) {
        let mut how = match &outcome {
            Ok(o) => o.describe(),
            Err(e) => format!("{e}\n"),
        };
        if !self.console.is_empty() {
            how += &format!("its kernel console:\n{}", qemu::tail(&self.console));
        }
        report.boots.push((boot.to_string(), how));
        let console_last = self
            .console
            .iter()
            .rev()
            .find(|l| l.contains("panic") || l.contains("error") || l.contains("BUG"))
            .or(self.console.iter().rev().find(|l| !l.trim().is_empty()))
            .map(|l| format!("; kernel console: {}", l.trim()))
            .unwrap_or_default();
        report.records.extend(self.records);
        report.walk_costs.extend(self.walk_costs);
        report.unlink_to_free.extend(self.unlink_to_free);
        report.shootdowns.extend(self.shootdowns);
        let explained = self.done && !self.failed.is_empty();
        report.failures.extend(
            self.failed
                .into_iter()
                .chain(self.unreadable)
                .map(|reason| Failure {
                    boot: boot.to_string(),
                    reason,
                }),
        );
        let reason = match outcome {
            Ok(o) if o.verdict == Verdict::Success || explained => return,
            Ok(o) => {
                let last = o
                    .lines
                    .iter()
                    .rev()
                    .find(|l| l.starts_with("panic:") || l.contains("error"))
                    .or(o.lines.last())
                    .cloned()
                    .unwrap_or_default();
                format!("boot failed ({:?}); last line: {last}{console_last}", o.verdict)
            }
            Err(e) => format!("{}{console_last}", e.lines().next().unwrap_or("")),
        };
        report.failures.push(Failure {
            boot: boot.to_string(),
            reason,
        });
    }
}

/// Boots every (CPU count, backend) of the plan, and every Linux kernel of it, and
/// returns what was measured and what failed. Errors are for what stops the run before
/// it boots anything (a kernel that cannot be had, an image that cannot be built).
pub fn run(plan: &BenchPlan) -> Result<Report, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let gatheros = plan.os.iter().any(|o| o == "gatheros");
    let mut linux = Vec::new();
    if plan.os.iter().any(|o| o == "linux") {
        let initrd = dir.path().join("linux-bench.cpio");
        crate::linux::initramfs(&crate::linux::program()?, &initrd)?;
        let specs = if plan.linux_kernel.is_empty() {
            vec!["default".to_string()]
        } else {
            plan.linux_kernel.clone()
        };
        for spec in &specs {
            let (kernel, name) = crate::linux::kernel(spec)?;
            let append = crate::linux::cmdline(plan.matrix_iters(), &plan.ops, &plan.scenarios);
            let append = format!("{append} {}", plan.linux_args).trim_end().to_string();
            let direct = qemu::DirectBoot {
                kernel,
                initrd: initrd.clone(),
                append,
            };
            linux.push((name, direct));
        }
    }
    let mut boots = Vec::new();
    for &smp in &plan.smp {
        let base = qemu_config(plan, smp);
        for mode in plan.modes.iter().filter(|_| gatheros) {
            boots.push(gatheros_boot(
                plan,
                smp,
                mode,
                &image::kernel_elf(),
                "",
                dir.path(),
            )?);
        }
        for (i, (name, d)) in linux.iter().enumerate() {
            boots.push(Boot {
                label: format!("linux smp={smp} {name}"),
                cfg: QemuConfig {
                    direct: Some(d.clone()),
                    console_log: Some(dir.path().join(format!("linux-{smp}-{i}-console.log"))),
                    ..base.clone()
                },
                image: d.initrd.clone(),
                tag: String::new(),
            });
        }
    }
    run_boots(&boots)
}

/// The QEMU settings of the plan's boots at `smp` CPUs.
fn qemu_config(plan: &BenchPlan, smp: u32) -> QemuConfig {
    QemuConfig {
        smp,
        timeout: std::time::Duration::from_secs(plan.timeout_secs),
        silence: Some(std::time::Duration::from_secs(plan.silence_secs)),
        ..Default::default()
    }
}

/// The plan's gatherOS boot at `smp` CPUs with backend `mode` of the kernel ELF
/// `kernel`, its image written into `dir`; its records carry `tag` as their `kernel`
/// (and its label and image name end in it).
pub(crate) fn gatheros_boot(
    plan: &BenchPlan,
    smp: u32,
    mode: &str,
    kernel: &Path,
    tag: &str,
    dir: &Path,
) -> Result<Boot, String> {
    let backend = mode_args(mode);
    let idle = plan
        .idle
        .as_ref()
        .map_or(String::new(), |i| format!(" bench.idle={i}"));
    let args = format!(
        "bench=tlb bench.iters={} bench.ops={} bench.scen={} bench.spin={} bench.syncs={} bench.walkers={}{idle} {backend}",
        plan.matrix_iters(),
        plan.ops,
        plan.scenarios,
        plan.spin,
        plan.syncs,
        plan.walkers
    );
    let suffix = if tag.is_empty() {
        String::new()
    } else {
        format!("-{tag}")
    };
    let image = dir.join(format!("bench-{smp}-{mode}{suffix}.img"));
    let label = format!("gatherOS smp={smp} {mode} {tag}").trim_end().to_string();
    Boot::gatheros(label, qemu_config(plan, smp), kernel, &args, image, tag)
}

impl Boot {
    /// A boot of the gatherOS kernel ELF `kernel` with the boot options `args`, its BIOS
    /// image written to `image`, run with `cfg`; its records carry `tag` as their `kernel`.
    pub(crate) fn gatheros(
        label: String,
        cfg: QemuConfig,
        kernel: &Path,
        args: &str,
        image: std::path::PathBuf,
        tag: &str,
    ) -> Result<Boot, String> {
        image::build(kernel, Firmware::Bios, args, &image)?;
        Ok(Boot {
            label,
            cfg,
            image,
            tag: tag.to_string(),
        })
    }
}

/// Boots each of `boots` in turn (a progress bar on the terminal) and returns what
/// was measured and what failed.
pub(crate) fn run_boots(boots: &[Boot]) -> Result<Report, String> {
    let bar = indicatif::ProgressBar::new(boots.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} boots, {msg}")
            .map_err(|e| e.to_string())?,
    );
    let mut report = Report::default();
    for b in boots {
        let (mut done, mut total) = (0, 0);
        bar.set_message(format!("{}: booting", b.label));
        let mut log = BootLog {
            kernel: b.tag.clone(),
            ..BootLog::default()
        };
        let outcome = qemu::run(&b.cfg, &b.image, |l| {
            if let Some(n) = l.strip_prefix("bench: configurations=") {
                total = n
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
            // The guest's own notes: its kernel, skips, symbols, errors, failures.
            if l.starts_with("linux-bench: ") {
                // A hidden bar (output not a terminal) prints nothing.
                let note = format!("{}: {l}", b.label);
                if bar.is_hidden() {
                    eprintln!("{note}");
                } else {
                    bar.println(note);
                }
            }
            if let Some(r) = log.line(l) {
                done += 1;
                bar.set_message(format!(
                    "{}: {done}/{total} configurations ({} {} walkers {} scen {} idle {})",
                    b.label,
                    r.get("op"),
                    r.get("sync"),
                    r.get("walkers"),
                    r.get("scen"),
                    r.get("idle")
                ));
            }
        });
        if let Some(path) = &b.cfg.console_log {
            // The guest kernel's console (a file QEMU wrote; lossy: it is for people).
            let text = std::fs::read(path).unwrap_or_default();
            log.console = String::from_utf8_lossy(&text)
                .lines()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect();
        }
        log.finish(&b.label, outcome, &mut report);
        bar.inc(1);
    }
    bar.finish_with_message("done");
    Ok(report)
}

/// The failures as lines for the end of a run (`failed: <boot>: <reason>`).
pub fn failures(report: &Report) -> String {
    report
        .failures
        .iter()
        .map(|f| format!("failed: {}: {}\n", f.boot, f.reason))
        .collect()
}

/// Each boot's `walk-cost:` and `unlink-to-free:` lines, as the kernel printed them.
pub fn walk_lines(report: &Report) -> String {
    let costs = report.walk_costs.iter().map(|c| c.to_string());
    let frees = report.unlink_to_free.iter().map(|u| u.to_string());
    costs.chain(frees).map(|l| l + "\n").collect()
}

/// The records as an aligned text table.
pub fn table(records: &[Record]) -> String {
    // Every field but the raw cycle counts and the constant ones.
    let skip = ["tsc_median", "tsc_p99", "iters", "apic", "levels"];
    let cols: Vec<&str> = csv_columns().into_iter().filter(|f| !skip.contains(f)).collect();
    let widths: Vec<usize> = cols
        .iter()
        .map(|c| {
            records
                .iter()
                .map(|r| r.get(c).len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let row = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = row(cols.clone()) + "\n";
    for r in records {
        out += &(row(cols.iter().map(|c| r.get(c)).collect()) + "\n");
    }
    out
}

fn csv_columns() -> Vec<&'static str> {
    // After the fields, the optional `collapsed=<ok>/<tried>` (Linux: calls of the
    // operation that succeeded and those made; missing means all of `iters` succeeded).
    HOST.iter()
        .chain(&FIELDS)
        .chain(&bench_spec::OPTIONAL_FIELDS)
        .copied()
        .collect()
}

/// Writes the records as CSV (header: `os`, `kernel`, [`FIELDS`], `collapsed`).
pub fn write_csv(records: &[Record], path: &Path) -> Result<(), String> {
    let cols = csv_columns();
    let mut s = cols.join(",") + "\n";
    for r in records {
        s += &(cols.iter().map(|f| r.get(f)).collect::<Vec<_>>().join(",") + "\n");
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a CSV written by [`write_csv`].
pub fn read_csv(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or(format!("{}: empty", path.display()))?
        .split(',')
        .collect();
    // Earlier files lack some columns (`os`: gatherOS only; `kernel`, `collapsed`, the
    // `ADDED` fields).
    let known = csv_columns();
    let needed = FIELDS.iter().filter(|f| !ADDED.iter().any(|(a, _)| a == *f));
    if needed.clone().any(|f| !header.contains(f)) || header.iter().any(|h| !known.contains(h)) {
        return Err(format!("{}: not a gatherOS benchmark CSV", path.display()));
    }
    Ok(lines
        .map(|l| {
            let mut r = Record(
                header
                    .iter()
                    .zip(l.split(','))
                    // An empty cell is a field the line did not carry (the optional ones).
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            r.fill_defaults();
            r
        })
        .collect())
}

/// `config: ns_median new/old` for every configuration present in both.
pub fn compare(new: &[Record], old: &[Record]) -> String {
    ratios(new, old, &[])
        .into_iter()
        .map(|(r, _, ratio)| format!("baseline: {} ratio={ratio:.3}\n", r.key()))
        .collect()
}

/// Every record of `new` whose configuration, apart from the fields `ignore`, is in
/// `old`, with that old record and the median time of the new over the old's.
pub fn ratios<'a>(
    new: &'a [Record],
    old: &'a [Record],
    ignore: &[&str],
) -> Vec<(&'a Record, &'a Record, f64)> {
    let old: BTreeMap<String, &Record> = old.iter().map(|r| (r.key_except(ignore), r)).collect();
    new.iter()
        .filter_map(|r| {
            let o = old.get(&r.key_except(ignore))?;
            Some((r, *o, r.num("ns_median") / o.num("ns_median")))
        })
        .collect()
}

/// The saving: for every gatherOS native configuration measured both ways, the median
/// time with the sync forced (`broadcast`) divided by the time with it skipped (under
/// the same idle policy), and the extra IPIs per op; and for every Linux configuration,
/// Linux's median over gatherOS's forced one with idle CPUs keeping the address space as
/// Linux's do ([`EARLIER_IDLE`]).
pub fn saving(records: &[Record]) -> String {
    // What makes two lines the same configuration, apart from kernel, mode and policy.
    const CONFIG: &[&str] = &["smp", "scen", "op", "pages", "tables", "walkers"];
    let words = |r: &Record| {
        ["kernel"]
            .iter()
            .filter(|k| !r.get(k).is_empty())
            .chain(CONFIG)
            .chain(["idle"].iter().filter(|k| !r.get(k).is_empty()))
            .map(|k| format!("{k}={}", r.get(k)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let find = |like: &Record, os: &str, backend: &str, sync: &str, idle: &str| {
        records.iter().find(|r| {
            CONFIG.iter().all(|k| r.get(k) == like.get(k))
                && r.get("os") == os
                && r.get("backend") == backend
                && r.get("sync") == sync
                && r.get("idle") == idle
        })
    };
    let mut out = String::new();
    for skip in records
        .iter()
        .filter(|r| r.get("os") == "gatherOS" && r.get("sync") == "skip")
    {
        if let Some(forced) = find(skip, "gatherOS", "native", "broadcast", skip.get("idle")) {
            out += &format!(
                "saving: {} forced_over_skip={:.2} extra_ipis_per_op={:.2}\n",
                words(skip),
                forced.num("ns_median") / skip.num("ns_median"),
                forced.num("cal_ipis_per_op") - skip.num("cal_ipis_per_op"),
            );
        }
    }
    for l in records.iter().filter(|r| r.get("os") == "linux") {
        if let Some(g) = find(l, "gatherOS", "native", "broadcast", EARLIER_IDLE.name()) {
            out += &format!(
                "versus-linux: {} linux_over_gatheros_forced={:.2} linux_cal_ipis_per_op={} gatheros_cal_ipis_per_op={}\n",
                words(l),
                l.num("ns_median") / g.num("ns_median"),
                l.get("cal_ipis_per_op"),
                g.get("cal_ipis_per_op"),
            );
        }
    }
    out
}

/// Draws one SVG per (op, scenario): median ns per op against CPU count, one line per
/// (backend, sync, walkers, idle policy). Returns the files written.
pub fn plot(records: &[Record], dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    use plotters::prelude::*;
    let mut groups: BTreeMap<(String, String, String, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let k = (
            r.get("op").into(),
            r.get("scen").into(),
            r.get("pages").into(),
            r.get("tables").into(),
        );
        groups.entry(k).or_default().push(r);
    }
    let mut files = Vec::new();
    for ((op, scen, pages, tables), rs) in groups {
        let path = dir.join(format!("{op}-{scen}-p{pages}-{tables}.svg"));
        let max_smp = rs.iter().map(|r| r.num("smp")).fold(1.0, f64::max);
        let max_ns = rs.iter().map(|r| r.num("ns_median")).fold(1.0, f64::max);
        let root = SVGBackend::new(&path, (640, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{op} scen={scen} pages={pages} tables={tables}"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..max_smp + 1.0, 0f64..max_ns * 1.1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("CPUs")
            .y_desc("ns per op (median)")
            .draw()
            .map_err(|e| e.to_string())?;
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in rs {
            series
                .entry(
                    format!(
                        "{} {} {} sync={} walkers={} idle={}",
                        r.get("os"),
                        r.get("kernel"),
                        r.get("backend"),
                        r.get("sync"),
                        r.get("walkers"),
                        r.get("idle")
                    )
                    .replace("  ", " ")
                    .trim_end_matches(" idle=")
                    .to_string(),
                )
                .or_default()
                .push((r.num("smp"), r.num("ns_median")));
        }
        for (i, (name, mut pts)) in series.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
        drop(chart);
        drop(root);
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
#[path = "bench_tests.rs"]
mod tests;
