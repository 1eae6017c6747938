//! What the idle policies cost and save (issue 23, `cargo run -- bench --idle ...`): for
//! every gatherOS scenario C configuration measured both under `never` (idle CPUs keep
//! the address space lazily, as Linux's do) and under another policy, that policy's flush
//! IPIs per op beside `never`'s, its op time and whole-cycle time over `never`'s, and
//! what its tasks paid on waking (catch-up flushes, and idle leaves: each a CR3 load
//! when a task comes back).

use crate::bench::Record;
use bench_spec::Idle;

/// What makes two lines the same measurement, apart from the idle policy.
const SAME: &[&str] = &[
    "os", "kernel", "smp", "scen", "pages", "tables", "op", "backend", "sync", "walkers",
];

/// One `idle:` line per scenario C record whose policy is not `never` and that has a
/// `never` twin: `idle: <configuration> idle=<policy> tlb_ipis_per_op=<its>/<never's>
/// op_over_never=.. cycle_over_never=.. catchups_per_op=.. idle_left_per_op=..`
/// (`cycle_over_never=` only where both lines timed the cycle).
pub fn idle_costs(records: &[Record]) -> String {
    let never = Idle::Never.name();
    let mut out = String::new();
    for r in records
        .iter()
        .filter(|r| r.get("scen") == "C" && !r.get("idle").is_empty() && r.get("idle") != never)
    {
        let Some(base) = records
            .iter()
            .find(|n| n.get("idle") == never && SAME.iter().all(|k| n.get(k) == r.get(k)))
        else {
            continue;
        };
        let config: Vec<String> = SAME
            .iter()
            .filter(|k| !r.get(k).is_empty())
            .map(|k| format!("{k}={}", r.get(k)))
            .collect();
        let ratio = |k: &str| r.num(k) / base.num(k);
        let cycle = ratio("cycle_ns_median");
        out += &format!(
            "idle: {} idle={} tlb_ipis_per_op={}/{} op_over_never={:.2}{} catchups_per_op={} idle_left_per_op={}\n",
            config.join(" "),
            r.get("idle"),
            r.get("tlb_ipis_per_op"),
            base.get("tlb_ipis_per_op"),
            ratio("ns_median"),
            if cycle.is_finite() {
                format!(" cycle_over_never={cycle:.2}")
            } else {
                String::new()
            },
            r.get("catchups_per_op"),
            r.get("idle_left_per_op"),
        );
    }
    out
}

#[cfg(test)]
#[path = "bench_idle_tests.rs"]
mod tests;
