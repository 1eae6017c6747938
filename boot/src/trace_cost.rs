//! `cargo run -- bench --trace-cost`: what tracing compiled in but switched off costs.
//! The kernel this tool carries (`trace` feature on, no `trace=tlb`: each event site a
//! 5-byte NOP) is measured against the same kernel built without the feature (every site
//! compiled out, [`crate::untraced`]), in one run, on the same plan.
//!
//! The run: for each CPU count and backend of the plan, `rounds` pairs of boots,
//! alternating the two kernels (traced, untraced, traced, untraced, ...), so that a drift
//! of the host's load falls on both alike. The comparison: per configuration, each
//! kernel's median over its boots of the boot's median time per op, and their ratio
//! `traced_over_untraced` (above 1: the NOPs cost time), then the median, least and
//! greatest ratio over the configurations; and the same from each round's pair of boots
//! (`paired`: the median over rounds of the ratio of the two boots that ran one after the
//! other, which a drift of the load slower than a round leaves out). The noise it is to be read against: the same
//! ratio between the traced kernel and itself, its boots of the odd rounds (first, third,
//! ...) over those of the even ones (`null`; it needs two rounds or more). Tracing off changes nothing the kernel does,
//! so every boot of a configuration must count the same IPIs per op in both kernels: a
//! difference is a failure of the run. The records keep their kernel in the CSV's
//! `kernel` column ([`TRACED`], [`UNTRACED`]).

use std::collections::BTreeMap;

use crate::bench::{self, BenchPlan, Record, Report};
use crate::kernel_footprint::Footprint;

/// The `kernel` of records from the kernel with tracing compiled in and off.
pub const TRACED: &str = "trace-off";
/// The `kernel` of records from the kernel built without tracing.
pub const UNTRACED: &str = "untraced";

/// The per-op IPI counts of a record, which tracing must not change.
pub const IPI_FIELDS: [&str; 3] = ["tlb_ipis_per_op", "cal_ipis_per_op", "sync_ipis_per_op"];

/// What a run measured, and the two kernels' counts.
pub struct Run {
    /// Every boot's records (and failures), in boot order.
    pub report: Report,
    /// The kernel with tracing compiled in.
    pub traced: Footprint,
    /// The kernel without it.
    pub untraced: Footprint,
}

/// Builds the untraced kernel and boots both kernels `rounds` times each per CPU count
/// and backend of `plan`, alternating. Errors are for what stops the run before a boot.
pub fn run(plan: &BenchPlan, rounds: usize) -> Result<Run, String> {
    if plan.os.iter().any(|o| o != "gatheros") {
        return Err("bench --trace-cost measures gatherOS only (no --os linux)".into());
    }
    if rounds == 0 {
        return Err("bench --trace-cost: --rounds must be at least 1".into());
    }
    let traced_elf = crate::image::kernel_elf();
    let untraced_elf = crate::untraced::kernel_elf()?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut boots = Vec::new();
    for &smp in &plan.smp {
        for mode in &plan.modes {
            let a = bench::gatheros_boot(plan, smp, mode, &traced_elf, TRACED, dir.path())?;
            let b = bench::gatheros_boot(plan, smp, mode, &untraced_elf, UNTRACED, dir.path())?;
            for _ in 0..rounds {
                boots.push(a.clone());
                boots.push(b.clone());
            }
        }
    }
    Ok(Run {
        report: bench::run_boots(&boots)?,
        traced: Footprint::of(&traced_elf)?,
        untraced: Footprint::of(&untraced_elf)?,
    })
}

/// One configuration measured in both kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The configuration (`smp=4 scen=A ... walkers=0`).
    pub config: String,
    /// The traced kernel's median over its boots of each boot's median ns per op.
    pub traced_ns: f64,
    /// The same for the untraced kernel.
    pub untraced_ns: f64,
    /// `traced_ns / untraced_ns`.
    pub ratio: f64,
    /// The median over rounds of each round's ratio (its traced boot's median over its
    /// untraced boot's, booted one after the other): a drift of the host's load slower
    /// than a round cancels out of it.
    pub paired: f64,
    /// Boots of each kernel that measured it (traced, untraced).
    pub boots: (usize, usize),
    /// The traced kernel against itself: the median of its boots of the odd rounds
    /// (first, third, ...) over that of the even ones; NaN with fewer than two boots.
    pub null: f64,
}

/// The median of `v` (the mean of the middle two for an even count); NaN if empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One record per configuration of `kernel`'s records (first-seen order), carrying the
/// median of their `ns_median`s, with those `ns_median`s in boot order.
fn per_config(records: &[Record], kernel: &str) -> Vec<(Record, Vec<f64>)> {
    let mut groups: Vec<(String, Vec<&Record>)> = Vec::new();
    for r in records.iter().filter(|r| r.get("kernel") == kernel) {
        let key = r.key_except(&["kernel"]);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rs)) => rs.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
        .into_iter()
        .map(|(_, rs)| {
            let ns: Vec<f64> = rs.iter().map(|r| r.num("ns_median")).collect();
            let mut first = rs[0].clone();
            first
                .0
                .insert("ns_median".into(), format!("{}", median(ns.clone())));
            (first, ns)
        })
        .collect()
}

/// The configuration's words, as the bench lines write them.
fn config_words(r: &Record) -> String {
    [
        "smp", "scen", "pages", "tables", "op", "backend", "sync", "walkers",
    ]
    .iter()
    .map(|k| format!("{k}={}", r.get(k)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Every configuration measured by both kernels, in the traced kernel's order (the
/// ratio by [`bench::ratios`], as `--baseline` takes it, the kernel aside).
pub fn pairs(records: &[Record]) -> Vec<Pair> {
    let traced = per_config(records, TRACED);
    let untraced = per_config(records, UNTRACED);
    let t: Vec<Record> = traced.iter().map(|(r, ..)| r.clone()).collect();
    let u: Vec<Record> = untraced.iter().map(|(r, ..)| r.clone()).collect();
    let boots = |list: &[(Record, Vec<f64>)], r: &Record| -> Vec<f64> {
        list.iter()
            .find(|(x, _)| x.key_except(&["kernel"]) == r.key_except(&["kernel"]))
            .map_or(Vec::new(), |(_, ns)| ns.clone())
    };
    bench::ratios(&t, &u, &["kernel"])
        .into_iter()
        .map(|(tr, ur, ratio)| {
            let (tn, un) = (boots(&traced, tr), boots(&untraced, ur));
            let half = |skip| tn.iter().skip(skip).step_by(2).copied().collect();
            let null = if tn.len() < 2 {
                f64::NAN
            } else {
                median(half(0)) / median(half(1))
            };
            // The n-th boot of one kernel and the n-th of the other ran next to each other.
            let paired = median(tn.iter().zip(&un).map(|(t, u)| t / u).collect());
            Pair {
                config: config_words(tr),
                traced_ns: tr.num("ns_median"),
                untraced_ns: ur.num("ns_median"),
                ratio,
                paired,
                boots: (tn.len(), un.len()),
                null,
            }
        })
        .collect()
}

/// The ratios over all configurations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Configurations compared.
    pub configs: usize,
    /// Their median ratio.
    pub median: f64,
    /// The least.
    pub min: f64,
    /// The greatest.
    pub max: f64,
}

/// The summary of `pairs`' ratios; None if there are none.
pub fn summary(pairs: &[Pair]) -> Option<Summary> {
    summary_of(pairs.iter().map(|p| p.ratio).collect())
}

/// The summary of `pairs`' [`Pair::paired`] ratios; None if there are none.
pub fn paired_summary(pairs: &[Pair]) -> Option<Summary> {
    summary_of(pairs.iter().map(|p| p.paired).collect())
}

/// The summary of `pairs`' [`Pair::null`] ratios; None if there are none.
pub fn null_summary(pairs: &[Pair]) -> Option<Summary> {
    summary_of(pairs.iter().map(|p| p.null).filter(|n| !n.is_nan()).collect())
}

fn summary_of(r: Vec<f64>) -> Option<Summary> {
    (!r.is_empty()).then(|| Summary {
        configs: r.len(),
        median: median(r.clone()),
        min: r.iter().copied().fold(f64::INFINITY, f64::min),
        max: r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// The configurations whose two kernels count different IPIs per op ([`IPI_FIELDS`]): the
/// median over each kernel's boots differs (one boot's count may differ from the others'
/// in either kernel: a scenario C CPU still finishing its task when the flush reads the
/// lazy flags takes an IPI once in a while, whatever the build; the median says what a
/// kernel does), each with the counts each kernel's boots gave.
pub fn ipi_differences(records: &[Record]) -> Vec<String> {
    let medians = |boots: &[String]| -> Vec<f64> {
        (0..IPI_FIELDS.len())
            .map(|f| {
                median(
                    boots
                        .iter()
                        .filter_map(|b| b.split('/').nth(f)?.parse::<f64>().ok())
                        .collect(),
                )
            })
            .collect()
    };
    let ipis = |r: &Record| IPI_FIELDS.map(|f| r.get(f).to_string()).join("/");
    let mut seen: BTreeMap<String, (String, Vec<String>, Vec<String>)> = BTreeMap::new();
    for r in records {
        let e = seen
            .entry(r.key_except(&["kernel"]))
            .or_insert_with(|| (config_words(r), Vec::new(), Vec::new()));
        match r.get("kernel") {
            TRACED => e.1.push(ipis(r)),
            UNTRACED => e.2.push(ipis(r)),
            _ => {}
        }
    }
    seen.into_values()
        .filter(|(_, t, u)| {
            !t.is_empty()
                && !u.is_empty()
                && medians(t)
                    .iter()
                    .zip(medians(u))
                    .any(|(a, b)| (a - b).abs() > 0.005)
        })
        .map(|(config, t, u)| {
            format!(
                "{config}: tlb/cal/sync IPIs per op {TRACED}=[{}] {UNTRACED}=[{}]",
                t.join(" "),
                u.join(" ")
            )
        })
        .collect()
}

/// The comparison as lines: one `trace-cost:` line per configuration, the summary, and
/// the IPI check. Returns the text and whether the IPI counts agreed.
pub fn render(records: &[Record]) -> (String, bool) {
    let pairs = pairs(records);
    let mut out = String::new();
    for p in &pairs {
        out += &format!(
            "trace-cost: {} {TRACED}_ns={:.0} {UNTRACED}_ns={:.0} traced_over_untraced={:.3} paired={:.3} boots={}+{} null={:.3}\n",
            p.config, p.traced_ns, p.untraced_ns, p.ratio, p.paired, p.boots.0, p.boots.1, p.null
        );
    }
    if let Some(s) = summary(&pairs) {
        out += &format!(
            "trace-cost-summary: configs={} traced_over_untraced median={:.3} min={:.3} max={:.3}\n",
            s.configs, s.median, s.min, s.max
        );
    }
    if let Some(s) = paired_summary(&pairs) {
        out += &format!(
            "trace-cost-paired: configs={} traced_over_untraced_per_round median={:.3} min={:.3} max={:.3}\n",
            s.configs, s.median, s.min, s.max
        );
    }
    if let Some(s) = null_summary(&pairs) {
        out += &format!(
            "trace-cost-null: configs={} traced_odd_over_even_rounds median={:.3} min={:.3} max={:.3}\n",
            s.configs, s.median, s.min, s.max
        );
    }
    let diffs = ipi_differences(records);
    if diffs.is_empty() {
        out += &format!(
            "trace-cost-ipis: the same in both kernels (median over each kernel's boots; {} configurations)\n",
            pairs.len()
        );
    }
    for d in &diffs {
        out += &format!("trace-cost-ipis: DIFFER {d}\n");
    }
    (out, diffs.is_empty())
}

/// The counts that do not depend on time: `.text` bytes and static-key sites of each.
pub fn render_footprints(traced: &Footprint, untraced: &Footprint) -> String {
    let diff = traced.text_bytes as i64 - untraced.text_bytes as i64;
    format!(
        "trace-cost-elf: text_bytes {TRACED}={} {UNTRACED}={} diff={diff:+} ({:+.2}%) static_key_sites {TRACED}={} {UNTRACED}={} trace_key_sites {TRACED}={} {UNTRACED}={}\n",
        traced.text_bytes,
        untraced.text_bytes,
        100.0 * diff as f64 / untraced.text_bytes as f64,
        traced.static_key_sites,
        untraced.static_key_sites,
        traced.trace_sites,
        untraced.trace_sites,
    )
}

#[cfg(test)]
#[path = "trace_cost_tests.rs"]
mod tests;
