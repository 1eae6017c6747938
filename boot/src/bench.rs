//! `cargo run -- bench`: boots the kernel's `bench=tlb` matrix per CPU count and backend
//! (and, with `--os linux`, the same operations in a Linux guest, see [`crate::linux`]),
//! prints the `gatherOS smp=...` / `linux smp=...` lines as a table, writes them to CSV,
//! compares with a baseline CSV and draws one SVG per operation and scenario (time
//! against CPU count).

use std::collections::BTreeMap;
use std::path::Path;

use crate::image::{self, Firmware};
use crate::qemu::{self, QemuConfig, Verdict};

/// Fields of a kernel benchmark line, in order.
pub const FIELDS: &[&str] = &[
    "smp",
    "scen",
    "pages",
    "tables",
    "op",
    "backend",
    "sync",
    "ns_median",
    "ns_p99",
    "tlb_ipis_per_op",
    "cal_ipis_per_op",
    "sync_ipis_per_op",
    "tsc_median",
    "tsc_p99",
    "iters",
    "pt_freed_kb",
    "apic",
    "levels",
];

/// The fields identifying a configuration (for baselines).
const KEY: &[&str] = &["os", "smp", "scen", "pages", "tables", "op", "backend", "sync"];

/// Which kernels print benchmark lines, by the word each line starts with.
pub const OSES: &[&str] = &["gatherOS", "linux"];

/// One configuration's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Record(pub BTreeMap<String, String>);

impl Record {
    /// Parses a `gatherOS smp=...` or `linux smp=...` line (the `os` field is the first
    /// word); None unless every field is present, in order.
    pub fn parse(line: &str) -> Option<Record> {
        let (os, rest) = line.split_once(' ')?;
        if !OSES.contains(&os) {
            return None;
        }
        let pairs: Vec<(&str, &str)> = rest
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        if pairs.len() != FIELDS.len() || pairs.iter().zip(FIELDS).any(|((k, _), f)| k != f) {
            return None;
        }
        Some(Record(
            pairs
                .into_iter()
                .chain([("os", os)])
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |s| s.as_str())
    }

    fn num(&self, key: &str) -> f64 {
        self.get(key).parse().unwrap_or(f64::NAN)
    }

    fn key(&self) -> String {
        KEY.iter().map(|k| self.get(k)).collect::<Vec<_>>().join(" ")
    }
}

/// What to measure (the `bench` command's options).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchPlan {
    /// CPU counts.
    #[arg(long, value_delimiter = ',', default_values_t = [2u32, 4, 8], value_parser = crate::qemu::parse_smp)]
    pub smp: Vec<u32>,
    /// Backends: native (sync as decided, and forced) and pv.
    #[arg(long, value_delimiter = ',', default_values_t = ["native".to_string(), "pv".to_string()], value_parser = ["native", "pv"])]
    pub modes: Vec<String>,
    /// Operations (comma-separated): unmap, unmap-nobatch, collapse, unshare.
    #[arg(long, default_value = "unmap,unmap-nobatch,collapse,unshare")]
    pub ops: String,
    /// Scenarios (comma-separated): A (spinning tasks), B (idle), C (lazy).
    #[arg(long, default_value = "A,B,C")]
    pub scenarios: String,
    /// Measured iterations per configuration (50 more are discarded first).
    #[arg(long, default_value_t = 1000)]
    pub iters: usize,
    /// How scenario A's tasks wait: halt (hlt between interrupts) or busy (spin). Both
    /// keep the address space loaded, not lazy; busy takes host cores from CPU 0 under TCG.
    #[arg(long, default_value = "halt", value_parser = ["halt", "busy"])]
    pub spin: String,
    /// Kernels to measure: gatheros, and linux (the same operations in a Linux guest
    /// under the same QEMU settings; the Linux guest's scenario A always spins busy).
    #[arg(long, value_delimiter = ',', default_values_t = ["gatheros".to_string()], value_parser = ["gatheros", "linux"])]
    pub os: Vec<String>,
    /// The Linux guest's kernel (bzImage). Default: Debian's linux-image-amd64
    /// (bookworm-backports), fetched once with apt-get into target/linux-guest.
    #[arg(long)]
    pub linux_kernel: Option<std::path::PathBuf>,
    /// Per-boot timeout in seconds.
    #[arg(long = "timeout", default_value_t = 7200)]
    pub timeout_secs: u64,
}

/// One boot of the plan: a gatherOS image or the Linux guest.
struct Boot {
    label: String,
    cfg: QemuConfig,
    image: std::path::PathBuf,
}

/// Boots every (CPU count, backend) of the plan and returns the records.
pub fn run(plan: &BenchPlan) -> Result<Vec<Record>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let gatheros = plan.os.iter().any(|o| o == "gatheros");
    let linux = if plan.os.iter().any(|o| o == "linux") {
        let kernel = crate::linux::kernel(plan.linux_kernel.as_deref())?;
        let initrd = dir.path().join("linux-bench.cpio");
        crate::linux::initramfs(&crate::linux::program()?, &initrd)?;
        Some(qemu::DirectBoot {
            kernel,
            initrd,
            append: crate::linux::cmdline(plan.iters, &plan.ops, &plan.scenarios),
        })
    } else {
        None
    };
    let mut boots = Vec::new();
    for &smp in &plan.smp {
        let base = QemuConfig {
            smp,
            timeout: std::time::Duration::from_secs(plan.timeout_secs),
            ..Default::default()
        };
        for mode in plan.modes.iter().filter(|_| gatheros) {
            let args = format!(
                "bench=tlb bench.iters={} bench.ops={} bench.scen={} bench.spin={} tlb.backend={mode}",
                plan.iters, plan.ops, plan.scenarios, plan.spin
            );
            let image = dir.path().join(format!("bench-{smp}-{mode}.img"));
            image::build(&image::kernel_elf(), Firmware::Bios, &args, &image)?;
            boots.push(Boot {
                label: format!("gatherOS smp={smp} {mode}"),
                cfg: base.clone(),
                image,
            });
        }
        if let Some(d) = &linux {
            boots.push(Boot {
                label: format!("linux smp={smp}"),
                cfg: QemuConfig {
                    direct: Some(d.clone()),
                    ..base.clone()
                },
                image: d.initrd.clone(),
            });
        }
    }
    let bar = indicatif::ProgressBar::new(boots.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} boots, {msg}")
            .map_err(|e| e.to_string())?,
    );
    let mut records = Vec::new();
    for b in &boots {
        let (mut done, mut total) = (0, 0);
        bar.set_message(format!("{}: booting", b.label));
        let outcome = qemu::run(&b.cfg, &b.image, |l| {
            if let Some(n) = l.strip_prefix("bench: configurations=") {
                total = n
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
            if l.starts_with("linux-bench: error") || l.starts_with("linux-bench: skip") {
                bar.println(l);
            }
            if let Some(r) = Record::parse(l) {
                done += 1;
                bar.set_message(format!(
                    "{}: {done}/{total} configurations ({} {} scen {})",
                    b.label,
                    r.get("op"),
                    r.get("sync"),
                    r.get("scen")
                ));
                records.push(r);
            }
        })?;
        if outcome.verdict != Verdict::Success {
            let last = outcome
                .lines
                .iter()
                .rev()
                .find(|l| l.starts_with("panic:") || l.contains("error"))
                .or(outcome.lines.last())
                .cloned()
                .unwrap_or_default();
            return Err(format!(
                "bench boot {} failed ({:?}); last line: {last}",
                b.label, outcome.verdict
            ));
        }
        bar.inc(1);
    }
    bar.finish_with_message("done");
    Ok(records)
}

/// The records as an aligned text table.
pub fn table(records: &[Record]) -> String {
    // Every field but the raw cycle counts and the constant ones.
    let skip = ["tsc_median", "tsc_p99", "iters", "apic", "levels"];
    let cols: Vec<&str> = ["os"]
        .into_iter()
        .chain(FIELDS.iter().copied().filter(|f| !skip.contains(f)))
        .collect();
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
    ["os"].into_iter().chain(FIELDS.iter().copied()).collect()
}

/// Writes the records as CSV (header: `os`, then [`FIELDS`]).
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
    // Earlier files have no `os` column: gatherOS only.
    let old_format = header == FIELDS;
    if header != csv_columns() && !old_format {
        return Err(format!("{}: not a gatherOS benchmark CSV", path.display()));
    }
    Ok(lines
        .map(|l| {
            let mut r: BTreeMap<String, String> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if old_format {
                r.insert("os".into(), "gatherOS".into());
            }
            Record(r)
        })
        .collect())
}

/// `config: ns_median new/old` for every configuration present in both.
pub fn compare(new: &[Record], old: &[Record]) -> String {
    let old: BTreeMap<String, &Record> = old.iter().map(|r| (r.key(), r)).collect();
    let mut out = String::new();
    for r in new {
        if let Some(o) = old.get(&r.key()) {
            out += &format!(
                "baseline: {} ratio={:.3}\n",
                r.key(),
                r.num("ns_median") / o.num("ns_median")
            );
        }
    }
    out
}

/// The saving: for every gatherOS native configuration measured both ways, the median
/// time with the sync forced divided by the time with it skipped, and the extra IPIs
/// per op; and for every Linux configuration, Linux's median over gatherOS's forced one.
pub fn saving(records: &[Record]) -> String {
    // What makes two lines the same configuration, apart from kernel and mode.
    const CONFIG: &[&str] = &["smp", "scen", "op", "pages", "tables"];
    let words = |r: &Record| {
        CONFIG
            .iter()
            .map(|k| format!("{k}={}", r.get(k)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let find = |like: &Record, os: &str, backend: &str, sync: &str| {
        records.iter().find(|r| {
            CONFIG.iter().all(|k| r.get(k) == like.get(k))
                && r.get("os") == os
                && r.get("backend") == backend
                && r.get("sync") == sync
        })
    };
    let mut out = String::new();
    for skip in records
        .iter()
        .filter(|r| r.get("os") == "gatherOS" && r.get("sync") == "skip")
    {
        if let Some(forced) = find(skip, "gatherOS", "native", "ipi") {
            out += &format!(
                "saving: {} forced_over_skip={:.2} extra_ipis_per_op={:.2}\n",
                words(skip),
                forced.num("ns_median") / skip.num("ns_median"),
                forced.num("cal_ipis_per_op") - skip.num("cal_ipis_per_op"),
            );
        }
    }
    for l in records.iter().filter(|r| r.get("os") == "linux") {
        if let Some(g) = find(l, "gatherOS", "native", "ipi") {
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
/// (backend, sync). Returns the files written.
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
                .entry(format!(
                    "{} {} sync={}",
                    r.get("os"),
                    r.get("backend"),
                    r.get("sync")
                ))
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
mod tests {
    use super::*;

    const LINE: &str = "gatherOS smp=4 scen=A pages=512 tables=free op=unmap backend=native sync=skip ns_median=100 ns_p99=200 tlb_ipis_per_op=3.00 cal_ipis_per_op=3.00 sync_ipis_per_op=0.00 tsc_median=250 tsc_p99=500 iters=20 pt_freed_kb=4 apic=x2apic levels=4";

    #[test]
    fn lines_parse_only_when_complete_and_ordered() {
        let r = Record::parse(LINE).unwrap();
        assert_eq!(r.get("op"), "unmap");
        assert!(Record::parse(&LINE.replace(" levels=4", "")).is_none());
        assert!(Record::parse(&LINE.replace("scen=A pages=512", "pages=512 scen=A")).is_none());
        assert!(Record::parse("gatherOS 0.1.0: booted via bios").is_none());
        let linux = Record::parse(&LINE.replace("gatherOS ", "linux ")).unwrap();
        assert_eq!((linux.get("os"), r.get("os")), ("linux", "gatherOS"));
        assert!(Record::parse(&LINE.replace("gatherOS ", "other ")).is_none());
    }

    #[test]
    fn csv_round_trips_and_baseline_ratios() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record::parse(LINE).unwrap();
        let path = dir.path().join("b.csv");
        write_csv(std::slice::from_ref(&r), &path).unwrap();
        let back = read_csv(&path).unwrap();
        assert_eq!(back, vec![r.clone()]);
        let forced = Record::parse(
            &LINE
                .replace("sync=skip", "sync=ipi")
                .replace("ns_median=100", "ns_median=150")
                .replace("cal_ipis_per_op=3.00", "cal_ipis_per_op=6.00"),
        )
        .unwrap();
        let s = saving(&[r.clone(), forced]);
        assert!(s.contains("forced_over_skip=1.50 extra_ipis_per_op=3.00"), "{s}");
        let faster = Record::parse(&LINE.replace("ns_median=100", "ns_median=50")).unwrap();
        assert!(compare(&[faster], &back).contains("ratio=0.500"));
        assert!(table(&back).contains("unmap"));
        assert_eq!(plot(&back, dir.path()).unwrap().len(), 1);
    }
}
