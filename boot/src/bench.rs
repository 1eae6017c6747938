//! `cargo run -- bench`: boots the kernel's `bench=tlb` matrix per CPU count and backend,
//! prints the `gatherOS smp=...` lines as a table, writes them to CSV, compares with a
//! baseline CSV and draws one SVG per operation and scenario (time against CPU count).

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
const KEY: &[&str] = &["smp", "scen", "pages", "tables", "op", "backend", "sync"];

/// One configuration's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Record(pub BTreeMap<String, String>);

impl Record {
    /// Parses a `gatherOS smp=...` line; None unless every field is present, in order.
    pub fn parse(line: &str) -> Option<Record> {
        let rest = line.strip_prefix("gatherOS ")?;
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

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// CPU counts (one boot each per backend).
    pub smp: Vec<u32>,
    /// Backends: `native` (sync as decided and forced) and/or `pv`.
    pub modes: Vec<String>,
    /// Kernel `bench.ops`.
    pub ops: String,
    /// Kernel `bench.scen`.
    pub scenarios: String,
    /// Measured iterations.
    pub iters: usize,
    /// Kernel `bench.spin`: `halt` or `busy`.
    pub spin: String,
    /// Per-boot timeout.
    pub timeout_secs: u64,
}

/// Boots every (CPU count, backend) of the plan and returns the records.
pub fn run(plan: &BenchPlan) -> Result<Vec<Record>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let boots = plan.smp.len() * plan.modes.len();
    let bar = indicatif::ProgressBar::new(boots as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} boots, {msg}")
            .map_err(|e| e.to_string())?,
    );
    let mut records = Vec::new();
    for &smp in &plan.smp {
        for mode in &plan.modes {
            let args = format!(
                "bench=tlb bench.iters={} bench.ops={} bench.scen={} bench.spin={} tlb.backend={mode}",
                plan.iters, plan.ops, plan.scenarios, plan.spin
            );
            let img = dir.path().join(format!("bench-{smp}-{mode}.img"));
            image::build(&image::kernel_elf(), Firmware::Bios, &args, &img)?;
            let cfg = QemuConfig {
                smp,
                timeout: std::time::Duration::from_secs(plan.timeout_secs),
                ..Default::default()
            };
            let mut done = 0;
            let mut total = 0;
            let outcome = qemu::run(&cfg, &img, |l| {
                if let Some(n) = l.strip_prefix("bench: configurations=") {
                    total = n
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                if let Some(r) = Record::parse(l) {
                    done += 1;
                    bar.set_message(format!(
                        "smp={smp} {mode}: {done}/{total} configurations ({} {} scen {})",
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
                    .find(|l| l.starts_with("panic:"))
                    .or(outcome.lines.last())
                    .cloned()
                    .unwrap_or_default();
                return Err(format!(
                    "bench boot smp={smp} {mode} failed ({:?}); last line: {last}",
                    outcome.verdict
                ));
            }
            bar.inc(1);
        }
    }
    bar.finish_with_message("done");
    Ok(records)
}

/// The records as an aligned text table.
pub fn table(records: &[Record]) -> String {
    // Every field but the raw cycle counts and the constant ones.
    let skip = ["tsc_median", "tsc_p99", "iters", "apic", "levels"];
    let cols: Vec<&str> = FIELDS.iter().copied().filter(|f| !skip.contains(f)).collect();
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

/// Writes the records as CSV (header: [`FIELDS`]).
pub fn write_csv(records: &[Record], path: &Path) -> Result<(), String> {
    let mut s = FIELDS.join(",") + "\n";
    for r in records {
        s += &(FIELDS.iter().map(|f| r.get(f)).collect::<Vec<_>>().join(",") + "\n");
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
    if header != FIELDS {
        return Err(format!("{}: not a gatherOS benchmark CSV", path.display()));
    }
    Ok(lines
        .map(|l| {
            Record(
                header
                    .iter()
                    .zip(l.split(','))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
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
                .entry(format!("{} sync={}", r.get("backend"), r.get("sync")))
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
    }

    #[test]
    fn csv_round_trips_and_baseline_ratios() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record::parse(LINE).unwrap();
        let path = dir.path().join("b.csv");
        write_csv(std::slice::from_ref(&r), &path).unwrap();
        let back = read_csv(&path).unwrap();
        assert_eq!(back, vec![r.clone()]);
        let faster = Record::parse(&LINE.replace("ns_median=100", "ns_median=50")).unwrap();
        assert!(compare(&[faster], &back).contains("ratio=0.500"));
        assert!(table(&back).contains("unmap"));
        assert_eq!(plot(&back, dir.path()).unwrap().len(), 1);
    }
}
