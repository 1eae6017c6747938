//! The trace as data the tests use: real operations on a real address space, with the
//! other CPUs running it (scenario A) or holding it lazily (scenario C), recorded
//! (`trace=tlb`), and the recorded events checked against the orders the protocol
//! requires ([`trace::order::check`]: flushed before freed, synced or a grace period
//! before freed, lazy CPUs caught up when they come back).
//!
//! Each test records around one run of the coherence oracle ([`oracle::run`]: build,
//! prime, operate, probe, destroy) and the `settle` that frees its batched tables, then
//! checks the order, that the rules looked at something (frees, lazy skips), a few facts
//! of the machine (who was sent which IPI, who ran it), and the oracle's own verdict.
//! A red prints the violations and the events they concern (`trace_order:` lines).
//!
//! The checker has teeth: with [`Fault::LateFlush`] (the flush handlers run only after
//! the flusher has freed the tables) it must report exactly `flush-before-free`, and with
//! [`Fault::EarlyAckTables`] (responders acknowledge a flush that frees tables before
//! flushing, which mm's `flush.rs` rule 8 forbids) `early-ack-of-tables` at each
//! acknowledgement and `flush-before-free` at the free. The shootdown round's shape is read
//! from the trace too: the flusher's own flush between its IPIs and their
//! acknowledgements (`concurrent`, `early`) or after them (`serial`).
//!
//! They need a boot with `trace=tlb` (`needs(traced())`: the key is switched on at boot
//! only; elsewhere they are reported ignored) and the native backend (the key's skip
//! and the flush handlers the order rules look for). Test-only code.

extern crate alloc;
use alloc::vec::Vec;
use mm::addr::VirtAddr;
use mm::pgtable::PAGE_SIZE;
use mm::table_free::{SyncForm, SyncMode};
use trace::Record;
use trace::event::{FLUSH_RESULTS, IPI_REASONS, Kind, LAZY_POLICY, SYNC_DECISIONS, index_of};
use trace::line::Args;
use trace::order::{Checked, Violation};

use crate::ktests::oracle::{self, Op, Outcome, Scenario, Tables};
use crate::tlb::faults::{Fault, run_late_flushes};
use crate::workload::{map_page, with_sync_form};
use crate::{sched, tlb, user_space};

/// Events printed at most for one violation.
const SHOWN: usize = 120;

/// Runs `f` with recording on, then drains the table freer (batched tables are freed
/// after a grace or walk period) and returns the events in TSC order. Fails if a ring
/// lost any.
fn recorded<R>(what: &str, f: impl FnOnce() -> R) -> (R, Vec<Record>) {
    tlb::settle();
    trace::gate::recording(true);
    let r = f();
    tlb::settle();
    trace::gate::recording(false);
    let (events, lost) = crate::tracing::merged();
    assert_eq!(
        lost,
        0,
        "trace_order: {what}: the rings lost {lost} events ({} kept)",
        events.len()
    );
    (r, events)
}

/// Prints one event (`trace_order:   cpu=.. tsc=.. event=.. k=v ...`).
fn line(r: &Record) {
    log::info!(
        "trace_order:   cpu={} tsc={} event={} {}",
        r.cpu,
        r.tsc,
        r.kind.name(),
        Args { rec: r, text: None }
    );
}

/// Prints each violation and the events before it from the unlink of the table it
/// frees (or the last [`SHOWN`]), leaf clears left out.
fn report(what: &str, events: &[Record], bad: &[Violation]) {
    for v in bad {
        log::info!("trace_order: {what}: violation: {v}");
    }
    for v in bad.iter().take(2) {
        let at = events.iter().position(|e| *e == v.at).unwrap_or(events.len() - 1);
        let from = match v.at.kind {
            Kind::TableFreed => events[..at]
                .iter()
                .rposition(|e| e.kind == Kind::EntryClear && e.arg("table") == v.at.arg("table")),
            _ => None,
        };
        let shown: Vec<&Record> = events[from.unwrap_or(0)..=at]
            .iter()
            .filter(|e| !(e.kind == Kind::EntryClear && e.arg("table") == 0))
            .collect();
        log::info!(
            "trace_order: {what}: the events up to it ({} of {}, leaf clears left out):",
            shown.len().min(SHOWN),
            shown.len()
        );
        shown[shown.len().saturating_sub(SHOWN)..]
            .iter()
            .for_each(|e| line(e));
    }
}

/// Checks the order of `events`; on a violation prints it with its events and fails.
fn checked(what: &str, events: &[Record]) -> Checked {
    match trace::order::check(events) {
        Ok(c) => {
            log::info!(
                "trace_order: {what}: events={} direct_frees={} batched_frees={} lazy_skips={}",
                events.len(),
                c.direct_frees,
                c.batched_frees,
                c.lazy_skips
            );
            c
        }
        Err(bad) => {
            report(what, events, &bad);
            panic!(
                "trace_order: {what}: {} order violations, the first: {}",
                bad.len(),
                bad[0]
            );
        }
    }
}

/// The oracle's own verdict on the run.
fn coherent(what: &str, out: Outcome) {
    assert!(
        out.stale == 0 && out.left_behind == 0,
        "trace_order: {what}: the oracle saw {} stale reads and {} lazy cpus left behind",
        out.stale,
        out.left_behind
    );
}

/// The other online CPUs as a trace mask.
fn others() -> u64 {
    (1..arch::cpus::count().min(64)).fold(0, |m, c| m | 1 << c)
}

/// Whether `e` is of `kind` and its name argument `arg` is `name` (one of `names`).
fn is(e: &Record, kind: Kind, arg: &str, names: &[&str], name: &str) -> bool {
    e.kind == kind && e.arg(arg) == index_of(names, name)
}

/// The first event of `kind` whose `arg` is `name` (one of `names`).
fn first<'a>(
    events: &'a [Record],
    kind: Kind,
    arg: &str,
    names: &[&str],
    name: &str,
) -> Option<(usize, &'a Record)> {
    events
        .iter()
        .enumerate()
        .find(|(_, e)| is(e, kind, arg, names, name))
}

/// The collapse's flush: the first flush that included lazy CPUs (it frees a table).
fn tables_flush(what: &str, events: &[Record]) -> Record {
    *first(events, Kind::FlushBegin, "lazy_cpus", LAZY_POLICY, "included")
        .unwrap_or_else(|| panic!("trace_order: {what}: no flush for freed tables was recorded"))
        .1
}

/// Records a collapse in scenario C (the oracle's run), checks its order and that its
/// flush made every lazy holder leave; returns what the check looked at and the events.
fn collapse_c(what: &str) -> (Checked, Vec<Record>) {
    let (out, events) = recorded(what, || oracle::run(Op::Collapse, Scenario::C));
    let c = checked(what, &events);
    coherent(what, out);
    assert!(
        c.direct_frees >= 1,
        "trace_order: {what}: no table freed at once: {c:?}"
    );
    // The flush reached every lazy holder, and each left the address space.
    let flush = tables_flush(what, &events);
    assert_eq!(
        flush.arg("targets"),
        others(),
        "trace_order: {what}: flush targets"
    );
    for cpu in 1..arch::cpus::count().min(64) {
        assert!(
            events.iter().any(|e| e.cpu as usize == cpu
                && is(e, Kind::FlushRun, "result", FLUSH_RESULTS, "left")
                && e.arg("gen") == flush.arg("gen")),
            "trace_order: {what}: lazy cpu {cpu} did not leave on flush gen {}",
            flush.arg("gen")
        );
    }
    // Each IPI request has its own trace id, naming its sender (`sender << 48 | n`, n >= 1):
    // the ids are what tie a handler to its send.
    let sends: Vec<&Record> = events.iter().filter(|e| e.kind == Kind::IpiSend).collect();
    for (i, send) in sends.iter().enumerate() {
        let id = send.arg("id");
        assert!(
            id & 0xffff_ffff_ffff != 0 && id >> 48 == send.cpu as u64,
            "trace_order: {what}: ipi_send on cpu {} has id {id:#x}",
            send.cpu
        );
        assert!(
            sends[..i].iter().all(|o| o.arg("id") != id),
            "trace_order: {what}: two requests have id {id:#x}"
        );
    }
    // Each target's handler runs inside its ipi_run .. ipi_ran of the flush's IPI.
    let (b, _) = first(&events, Kind::FlushBegin, "lazy_cpus", LAZY_POLICY, "included").unwrap();
    let send = events[b..]
        .iter()
        .find(|e| e.cpu == flush.cpu && is(e, Kind::IpiSend, "reason", IPI_REASONS, "flush"))
        .unwrap_or_else(|| panic!("trace_order: {what}: the flush sent no IPI"));
    for cpu in 1..arch::cpus::count().min(64) {
        let at = |kind: Kind| {
            events
                .iter()
                .position(|e| e.cpu as usize == cpu && e.kind == kind && e.arg("id") == send.arg("id"))
        };
        let handler = events.iter().position(|e| {
            e.cpu as usize == cpu && e.kind == Kind::FlushRun && e.arg("gen") == flush.arg("gen")
        });
        let (run, ran) = (at(Kind::IpiRun), at(Kind::IpiRan));
        assert!(
            run < handler && handler < ran && run.is_some(),
            "trace_order: {what}: cpu {cpu}: ipi_run at {run:?}, flush_run at {handler:?}, ipi_ran at {ran:?}"
        );
    }
    // The flush slice encloses its handlers: the flusher's flush_end of that generation
    // comes after every target ran it (it waited for their acknowledgements).
    let end = events
        .iter()
        .position(|e| e.cpu == flush.cpu && e.kind == Kind::FlushEnd && e.arg("gen") == flush.arg("gen"))
        .unwrap_or_else(|| panic!("trace_order: {what}: no flush_end of gen {}", flush.arg("gen")));
    for cpu in 1..arch::cpus::count().min(64) {
        let ran = events.iter().position(|e| {
            e.cpu as usize == cpu && e.kind == Kind::FlushRun && e.arg("gen") == flush.arg("gen")
        });
        assert!(
            ran.is_some_and(|r| r < end),
            "trace_order: {what}: flush_end of gen {} (event {end}) before cpu {cpu} ran the handler (event {ran:?})",
            flush.arg("gen")
        );
    }
    (c, events)
}

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn collapse_c_sync_skipped_by_the_key_in_order() {
        let what = "collapse-c-skip";
        assert!(
            arch::static_key::tlb_table_flush_implies_ipi_broadcast(),
            "trace_order: the native backend's key decides skip"
        );
        let (_, events) = collapse_c(what);
        let (_, sync) = first(&events, Kind::SyncBegin, "decision", SYNC_DECISIONS, "skip")
            .unwrap_or_else(|| panic!("trace_order: {what}: no sync was skipped"));
        assert_eq!(sync.cpu, 0, "trace_order: {what}: the freer's cpu decided the skip");
        // The skip sends nothing: no sync IPI at all in the run.
        if let Some((_, e)) = first(&events, Kind::IpiSend, "reason", IPI_REASONS, "sync") {
            line(e);
            panic!("trace_order: {what}: a sync IPI was sent though the key skips the sync");
        }
    }
);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn collapse_c_sync_forced_in_each_form_in_order() {
        tlb::FREER.set_mode(SyncMode::Always);
        for form in SyncForm::ALL {
            let what = alloc::format!("collapse-c-forced-{}", form.name());
            let (_, events) = with_sync_form(form, || collapse_c(&what));
            let (s, sync) = first(&events, Kind::SyncBegin, "decision", SYNC_DECISIONS, form.name())
                .unwrap_or_else(|| panic!("trace_order: {what}: no sync decided {}", form.name()));
            if form == SyncForm::Broadcast {
                // The machine's side of a broadcast: one sync IPI from the freer to every
                // other online CPU, run by each of them, then acknowledged.
                assert_eq!(sync.arg("cpus"), others(), "trace_order: {what}: sync cpus");
                let (k, send) = events[s..]
                    .iter()
                    .enumerate()
                    .find(|(_, e)| e.cpu == sync.cpu && is(e, Kind::IpiSend, "reason", IPI_REASONS, "sync"))
                    .map(|(i, e)| (s + i, *e))
                    .unwrap_or_else(|| panic!("trace_order: {what}: the forced broadcast sent no sync IPI"));
                assert_eq!(send.arg("targets"), others(), "trace_order: {what}: sync IPI targets");
                let id = send.arg("id");
                for cpu in 1..arch::cpus::count().min(64) {
                    assert!(
                        events[k..]
                            .iter()
                            .any(|e| e.cpu as usize == cpu && e.kind == Kind::IpiRun && e.arg("id") == id),
                        "trace_order: {what}: cpu {cpu} never ran sync IPI {id:#x}"
                    );
                }
                let acked = events[k..]
                    .iter()
                    .position(|e| e.cpu == send.cpu && e.kind == Kind::IpiAcked && e.arg("id") == id)
                    .map(|i| k + i)
                    .unwrap_or_else(|| panic!("trace_order: {what}: sync IPI {id:#x} never acknowledged"));
                // The sync ends only once its IPI was acknowledged (the sync slice holds it).
                let end = events[s..]
                    .iter()
                    .position(|e| e.cpu == sync.cpu && e.kind == Kind::SyncEnd)
                    .map(|i| s + i);
                assert!(
                    end.is_some_and(|e| e > acked),
                    "trace_order: {what}: sync_end (event {end:?}) before sync IPI {id:#x} was acknowledged (event {acked})"
                );
            }
        }
        tlb::FREER.set_mode(SyncMode::Decided);
    }
);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn unmap_a_batched_tables_freed_after_their_grace_period() {
        let what = "unmap-1-free-a";
        let op = Op::Unmap {
            pages: 1,
            tables: Tables::Free,
            batch: true,
        };
        let (out, events) = recorded(what, || oracle::run(op, Scenario::A));
        let c = checked(what, &events);
        coherent(what, out);
        assert!(c.batched_frees >= 3, "trace_order: {what}: PTE, PMD and PUD tables batched: {c:?}");
        assert!(
            events.iter().any(|e| e.kind == Kind::GpDone),
            "trace_order: {what}: no grace period completed"
        );
    }
);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn unmap_nobatch_c_tables_freed_at_once_in_order() {
        let what = "unmap-nobatch-1-c";
        let op = Op::Unmap {
            pages: 1,
            tables: Tables::Free,
            batch: false,
        };
        let (out, events) = recorded(what, || oracle::run(op, Scenario::C));
        let c = checked(what, &events);
        coherent(what, out);
        assert!(c.direct_frees >= 3, "trace_order: {what}: PTE, PMD and PUD tables freed at once: {c:?}");
    }
);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn unshare_a_in_order() {
        let what = "unshare-a";
        let (out, events) = recorded(what, || oracle::run(Op::Unshare, Scenario::A));
        let c = checked(what, &events);
        coherent(what, out);
        assert!(
            c.direct_frees + c.batched_frees >= 1,
            "trace_order: {what}: no table freed: {c:?}"
        );
        // The unshare itself frees nothing (the shared table stays with its owner, which
        // unlinks and frees it when it is torn down), so no rule sees it: its order is
        // checked here. The level-3 entry over the shared table is cleared in one address
        // space, then the same CPU flushes that address space and syncs.
        let u = events
            .iter()
            .enumerate()
            .position(|(i, e)| {
                e.kind == Kind::EntryClear
                    && e.arg("level") == 3
                    && events[i..].iter().any(|o| {
                        o.kind == Kind::EntryClear && o.arg("table") == e.arg("table") && o.arg("mm") != e.arg("mm")
                    })
            })
            .unwrap_or_else(|| {
                panic!("trace_order: {what}: no unshare (a level-3 entry clear of a table another address space unlinks later) recorded")
            });
        let (mm, cpu) = (events[u].arg("mm"), events[u].cpu);
        let f = events[u..]
            .iter()
            .position(|e| e.kind == Kind::FlushBegin && e.cpu == cpu && e.arg("mm") == mm)
            .map(|i| u + i)
            .unwrap_or_else(|| panic!("trace_order: {what}: cpu {cpu} unshared from mm {mm} and never flushed it"));
        assert!(
            events[f].arg("lazy_cpus") == index_of(LAZY_POLICY, "included"),
            "trace_order: {what}: the unshare's flush left lazy CPUs out: {}",
            Args { rec: &events[f], text: None }
        );
        assert!(
            events[f..]
                .iter()
                .any(|e| e.kind == Kind::SyncEnd && e.cpu == cpu && e.arg("mm") == mm),
            "trace_order: {what}: cpu {cpu} flushed the unshare (gen {}) but never synced",
            events[f].arg("gen")
        );
    }
);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn lazy_cpus_skipped_by_a_flush_catch_up_when_back() {
        let what = "unmap-1-keep-c";
        let op = Op::Unmap {
            pages: 1,
            tables: Tables::Keep,
            batch: true,
        };
        let (out, events) = recorded(what, || oracle::run(op, Scenario::C));
        let c = checked(what, &events);
        coherent(what, out);
        let lazy = arch::cpus::count().min(64) - 1;
        assert!(c.lazy_skips >= lazy, "trace_order: {what}: {lazy} lazy cpus skipped: {c:?}");
        // The flush skipped every lazy holder, interrupted none, and each came back (the
        // oracle's task) caught up: its return is the checker's lazy-catchup.
        let (f, flush) = events
            .iter()
            .enumerate()
            .find(|(_, e)| is(e, Kind::FlushBegin, "lazy_cpus", LAZY_POLICY, "skipped") && e.arg("lazy") != 0)
            .unwrap_or_else(|| panic!("trace_order: {what}: no flush skipped lazy cpus"));
        assert_eq!(flush.arg("lazy"), others(), "trace_order: {what}: lazy cpus");
        assert_eq!(flush.arg("targets"), 0, "trace_order: {what}: targets");
        for cpu in 1..=lazy {
            let back = events[f..].iter().find(|e| {
                e.cpu as usize == cpu
                    && (e.kind == Kind::LazyExit || e.kind == Kind::SwitchMm)
                    && e.arg(if e.kind == Kind::LazyExit { "mm" } else { "to" }) == flush.arg("mm")
            });
            let back = back.unwrap_or_else(|| panic!("trace_order: {what}: cpu {cpu} never came back"));
            assert!(
                back.kind == Kind::LazyExit && back.arg("to_gen") >= flush.arg("gen"),
                "trace_order: {what}: cpu {cpu} came back by {} at gen {} (flush gen {})",
                back.kind.name(),
                back.arg("to_gen"),
                flush.arg("gen")
            );
        }
    }
);

/// Start of the late-flush test's region (index 1 at every level, as the oracle's).
const BASE: u64 = (1 << 39) | (1 << 30) | (1 << 21);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn late_flush_handlers_are_caught_as_flush_before_free() {
        // A collapse in scenario C with the flush handlers run late (`Fault::LateFlush`):
        // the freer frees the PTE table before the lazy CPUs ran the handler. Nothing
        // touches the address space on those CPUs until the late handlers ran.
        let what = "collapse-c-late-flush";
        let mm = user_space::new_address_space();
        (0..512).for_each(|i| {
            map_page(mm, BASE + i * PAGE_SIZE + 8);
        });
        let cpus = arch::cpus::count();
        for c in 1..cpus {
            sched::spawn("trace-order-visit", c, Some(mm), || {}).join(sched::JOIN_BOUND_MS);
            let st = tlb::mmu().states.cpu(c);
            // Bounded like a join (only against a hang; see `JOIN_BOUND_MS`).
            let end = sched::join_deadline();
            while !(st.is_lazy() && st.has_loaded(mm)) {
                assert!(
                    arch::cpu::rdtsc() < end,
                    "trace_order: cpu {c} did not go lazy on the address space within {} ms: lazy={} has_loaded={}",
                    sched::JOIN_BOUND_MS,
                    st.is_lazy(),
                    st.has_loaded(mm)
                );
                sched::yield_now();
            }
        }
        sched::use_mm(Some(mm));
        let (ran, events) = recorded(what, || {
            Fault::LateFlush.set(true);
            mm::collapse::collapse(&tlb::gather_ctx(), &mm.lock(), VirtAddr::new(BASE))
                .expect("trace_order: collapse");
            Fault::LateFlush.set(false);
            run_late_flushes(mm)
        });
        sched::use_mm(None);
        user_space::destroy(mm);
        assert_eq!(ran.low_word(), others(), "trace_order: {what}: the late handlers ran on");
        let bad = match trace::order::check(&events) {
            Ok(c) => panic!("trace_order: {what}: the checker saw no late handler: {c:?}"),
            Err(bad) => bad,
        };
        report(what, &events, &bad);
        assert!(
            bad.iter().all(|v| v.rule == "flush-before-free"),
            "trace_order: {what}: only flush-before-free is broken, got: {}",
            bad.iter().map(|v| v.rule).collect::<Vec<_>>().join(",")
        );
        // The machine's side: each lazy CPU ran the handler after the table was freed.
        let free = events
            .iter()
            .position(|e| e.kind == Kind::TableFreed)
            .expect("trace_order: the collapse freed its PTE table");
        for cpu in 1..cpus.min(64) {
            assert!(
                events[free..]
                    .iter()
                    .any(|e| e.cpu as usize == cpu && e.kind == Kind::FlushRun),
                "trace_order: {what}: cpu {cpu} ran no flush handler after the free"
            );
        }
    }
);

ktest::kernel_test!(
    needs(traced().and(native()).and_cpus(2).and(up_to_cpus(16))) fn early_ack_for_freed_tables_is_caught_as_flush_before_free() {
        // A collapse in scenario C with the responders acknowledging early although the
        // flush frees the PTE table (`Fault::EarlyAckTables`, what rule 8 of mm's
        // `flush.rs` forbids): each lazy holder acknowledges on entering, then holds its
        // flush back until the flusher freed a table. The oracle cannot see this under
        // TCG (no paging-structure caches to point into the freed table, and the lazy
        // holders still leave before anything probes them); the order can: the table is
        // freed before their handlers ran.
        let what = "collapse-c-early-tables";
        let before = tlb::STATS.total();
        let (out, events) = recorded(what, || {
            Fault::EarlyAckTables.set(true);
            let out = oracle::run(Op::Collapse, Scenario::C);
            Fault::EarlyAckTables.set(false);
            out
        });
        let early = (tlb::STATS.total() - before).get(mm::stats::TlbEvent::EarlyAcks);
        coherent(what, out);
        assert!(
            early >= others().count_ones() as u64,
            "trace_order: {what}: {early} early acknowledgements, not one from each of the {} lazy holders",
            others().count_ones()
        );
        let bad = match trace::order::check(&events) {
            Ok(c) => panic!("trace_order: {what}: the checker saw no early acknowledgement of a freed table: {c:?}"),
            Err(bad) => bad,
        };
        report(what, &events, &bad);
        // Two rules see it: the lazy holders' early acknowledgements of the collapse's
        // flush (`early-ack-of-tables`, at each acknowledgement), and the collapse's own
        // free (on the flusher, of a table of its flush's address space) before a lazy
        // holder's handler (`flush-before-free`). Nothing else.
        let flush = tables_flush(what, &events);
        let of_the_collapse = |v: &Violation| match v.rule {
            "flush-before-free" => {
                v.at.kind == Kind::TableFreed
                    && v.at.cpu == flush.cpu
                    && v.at.arg("mm") == flush.arg("mm")
                    && (1..arch::cpus::count().min(64)).any(|c| v.what.contains(&alloc::format!("before cpu {c},")))
            }
            "early-ack-of-tables" => {
                v.at.kind == Kind::EarlyAck && v.at.arg("mm") == flush.arg("mm") && v.at.arg("gen") == flush.arg("gen")
            }
            _ => false,
        };
        let all = bad.iter().map(|v| alloc::format!("{v}")).collect::<Vec<_>>().join("; ");
        assert!(
            bad.iter().all(of_the_collapse),
            "trace_order: {what}: only the collapse's early acknowledgements and its free before a lazy holder's handler, got: {all}"
        );
        // Each lazy holder's early acknowledgement, whatever the timing; the free before a
        // handler unless the host kept the flusher from freeing for the whole hold.
        let expired = crate::tlb::faults::hold_back_expired();
        assert!(
            bad.iter().filter(|v| v.rule == "early-ack-of-tables").count() as u64 == others().count_ones() as u64
                && (expired || bad.iter().any(|v| v.rule == "flush-before-free")),
            "trace_order: {what}: each lazy holder's early acknowledgement and the free, got: {all}"
        );
        if expired {
            log::warn!("trace_order: {what}: a hold ran out before the free (host load): flush-before-free not required");
        }
    }
);

/// The flusher's own events of the first flush of `what`'s unmap that reached every other
/// CPU: the index of its `ipi_send`, of its own handler (`flush_run`) and of its
/// `ipi_acked`.
fn local_flush_place(what: &str, events: &[Record]) -> (usize, usize, usize) {
    let (b, flush) = events
        .iter()
        .enumerate()
        .find(|(_, e)| e.kind == Kind::FlushBegin && e.arg("targets") == others())
        .unwrap_or_else(|| panic!("trace_order: {what}: no flush reached every other cpu"));
    let mine = |kind: Kind, from: usize| {
        events[from..]
            .iter()
            .position(|e| e.cpu == flush.cpu && e.kind == kind)
            .map(|i| from + i)
            .unwrap_or_else(|| {
                panic!(
                    "trace_order: {what}: no {} on cpu {} after the flush began",
                    kind.name(),
                    flush.cpu
                )
            })
    };
    let send = mine(Kind::IpiSend, b);
    let acked = mine(Kind::IpiAcked, send);
    let local = events[b..]
        .iter()
        .position(|e| {
            e.cpu == flush.cpu
                && e.kind == Kind::FlushRun
                && e.arg("gen") == flush.arg("gen")
                && e.arg("mm") == flush.arg("mm")
        })
        .map(|i| b + i)
        .unwrap_or_else(|| {
            panic!(
                "trace_order: {what}: the flusher (cpu {}) never flushed itself",
                flush.cpu
            )
        });
    (send, local, acked)
}

ktest::kernel_test!(
    needs(traced().and(handler_flush()).and_cpus(3).and(up_to_cpus(16))) fn the_local_flush_runs_while_the_ipis_fly_or_after_them() {
        // An unmap of one page in scenario A (every other CPU runs the address space):
        // in `concurrent` (and `early`) the flusher's own handler runs between its
        // `ipi_send` and its `ipi_acked`; in `serial` after the `ipi_acked`. Natively and
        // under pv (whose preempted vCPUs, the odd ones, get no IPI: 3 CPUs at least, so
        // that one is interrupted).
        let op = Op::Unmap {
            pages: 1,
            tables: Tables::Keep,
            batch: true,
        };
        for mode in crate::workload::ROUND_MODES {
            let what = alloc::format!("unmap-1-keep-a-{}", mode.name());
            let (out, events) = crate::workload::with_round_mode(mode, || {
                recorded(&what, || oracle::run(op, Scenario::A))
            });
            checked(&what, &events);
            coherent(&what, out);
            let (send, local, acked) = local_flush_place(&what, &events);
            let places = alloc::format!("ipi_send at event {send}, own flush_run at {local}, ipi_acked at {acked}");
            if mode.concurrent_local {
                assert!(send < local && local < acked, "trace_order: {what}: not concurrent: {places}");
            } else {
                assert!(acked < local, "trace_order: {what}: not serial: {places}");
            }
            log::info!("trace_order: {what}: {places}");
        }
    }
);
