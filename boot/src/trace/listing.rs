//! The `trace` command's text: per run a header line, then one line per event in time
//! order (`trace: cpu=<n> t_ns=<offset> event=<name> key=value...`, nanoseconds from the
//! run's first event), the events each CPU's ring lost, and the verdict of the ordering
//! check ([`::trace::order::check`]) on the run.

use std::fmt::Write;

use ::trace::line::Args;
use ::trace::order;

use super::collect::Run;

/// A run's listing, and whether its order check passed.
pub fn listing(run: &Run) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace: run {} ({}): {} events on {} CPUs over {} ns{}",
        run.label(),
        run.describe(),
        run.events.len(),
        run.cpus,
        run.span_ns(),
        if run.complete { "" } else { " (its end never came)" }
    );
    for ev in &run.events {
        let _ = writeln!(
            out,
            "trace: cpu={} t_ns={} event={} {}",
            ev.cpu,
            run.ns(ev.tsc),
            ev.kind.name(),
            Args {
                rec: ev,
                text: run.text(ev)
            }
        );
    }
    for &(cpu, over, torn) in &run.lost {
        if over > 0 {
            let _ = writeln!(out, "trace: cpu {cpu} lost {over} events (ring full)");
        }
        if torn > 0 {
            let _ = writeln!(
                out,
                "trace: cpu {cpu} lost {torn} events (torn: not whole when read, or never written)"
            );
        }
    }
    for l in &run.unreadable {
        let _ = writeln!(out, "trace: unreadable line: {l}");
    }
    let lost: u64 = run.lost.iter().map(|&(_, over, torn)| over + torn).sum();
    let ok = match order::check(&run.events) {
        // A check of a trace with holes proves nothing: not a pass.
        Ok(_) if lost > 0 => {
            let _ = writeln!(
                out,
                "trace: order not checked: {lost} events lost (the rings above), the trace has holes"
            );
            false
        }
        Ok(c) => {
            let _ = writeln!(
                out,
                "trace: order ok: {} direct frees, {} batched frees, {} lazy skips checked",
                c.direct_frees, c.batched_frees, c.lazy_skips
            );
            true
        }
        Err(violations) => {
            for v in &violations {
                let _ = writeln!(out, "trace: order VIOLATED: {v}");
            }
            false
        }
    };
    (out, ok)
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
