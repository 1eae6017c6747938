use super::*;
use crate::event::{ARGS, BACKENDS, FLUSH_RESULTS};

/// Events in order, each stamped with its position.
struct Trace(Vec<Record>);

impl Trace {
    fn new() -> Self {
        Trace(Vec::new())
    }
    fn ev(mut self, cpu: u32, kind: Kind, given: &[u64]) -> Self {
        let args: [u64; ARGS] = core::array::from_fn(|i| given.get(i).copied().unwrap_or(0));
        let tsc = self.0.len() as u64 * 10;
        self.0.push(Record { cpu, tsc, kind, args });
        self
    }
    fn check(&self) -> Result<Checked, Vec<Violation>> {
        check(&self.0)
    }
}

const MM: u64 = 3;
const T: u64 = 0x7000;
fn sync(d: &str) -> u64 {
    index_of(SYNC_DECISIONS, d)
}
fn ran(r: &str) -> u64 {
    index_of(FLUSH_RESULTS, r)
}

/// A collapse on CPU 0 with CPUs 1 and 2 targeted, in the order the protocol requires,
/// up to the flush's end; `then` adds the rest.
fn collapse_flushed() -> Trace {
    Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::FlushBegin, &[MM, 5, 0, u64::MAX, 0b110, 0, 1, 0])
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(2, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(0, Kind::FlushEnd, &[MM, 5, 0b110])
}

#[test]
fn a_collapse_in_order_passes() {
    let t = collapse_flushed()
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("targeted"), 0b10])
        .ev(0, Kind::SyncEnd, &[MM, sync("targeted")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    assert_eq!(t.check().unwrap().direct_frees, 1);
    let skipped = collapse_flushed()
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("skip"), 0])
        .ev(0, Kind::SyncEnd, &[MM, sync("skip")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    assert!(skipped.check().is_ok());
}

#[test]
fn a_free_before_a_targets_handler_fails() {
    let t = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::FlushBegin, &[MM, 5, 0, u64::MAX, 0b110, 0, 1, 0])
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("skip"), 0])
        .ev(0, Kind::SyncEnd, &[MM, sync("skip")])
        .ev(0, Kind::TableFreed, &[MM, T, 0])
        .ev(2, Kind::FlushRun, &[MM, 5, 0, ran("full")]);
    let v = t.check().unwrap_err();
    assert_eq!(v[0].rule, "flush-before-free");
    assert!(v[0].what.contains("cpu 2"), "{}", v[0]);
}

#[test]
fn a_free_before_the_sync_fails() {
    let t = collapse_flushed()
        .ev(0, Kind::TableFreed, &[MM, T, 0])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("broadcast"), 0b110])
        .ev(0, Kind::SyncEnd, &[MM, sync("broadcast")]);
    assert_eq!(t.check().unwrap_err()[0].rule, "sync-before-free");
}

#[test]
fn a_skip_on_a_flush_that_left_lazy_cpus_out_fails() {
    let t = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::FlushBegin, &[MM, 5, 0, u64::MAX, 0b10, 0b100, 0, 0])
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("skip"), 0])
        .ev(0, Kind::SyncEnd, &[MM, sync("skip")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    let v = t.check().unwrap_err();
    assert!(v[0].what.contains("lazy_cpus=skipped"), "{}", v[0]);
}

#[test]
fn a_batch_freed_before_its_grace_period_fails_and_after_passes() {
    let queued = collapse_flushed().ev(0, Kind::BatchQueued, &[0x9000, 1, 4]);
    let early = Trace(queued.0.clone())
        .ev(0, Kind::GpDone, &[3])
        .ev(0, Kind::BatchFreed, &[0x9000, 1])
        .ev(0, Kind::TableFreed, &[0, T, 0x9000]);
    assert_eq!(early.check().unwrap_err()[0].rule, "sync-before-free");
    let late = queued
        .ev(0, Kind::GpDone, &[4])
        .ev(0, Kind::BatchFreed, &[0x9000, 1])
        .ev(0, Kind::TableFreed, &[0, T, 0x9000]);
    assert_eq!(late.check().unwrap().batched_frees, 1);
}

#[test]
fn a_lazy_cpu_back_without_catching_up_fails() {
    let flush = || {
        Trace::new()
            .ev(2, Kind::LazyEnter, &[MM, 4])
            .ev(0, Kind::FlushBegin, &[MM, 5, 0x1000, 0x2000, 0b10, 0b100, 0, 0])
            .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("partial")])
            .ev(0, Kind::FlushEnd, &[MM, 5, 0b10])
    };
    let stale = flush().ev(2, Kind::LazyExit, &[MM, 4, 4]);
    let v = stale.check().unwrap_err();
    assert_eq!(v[0].rule, "lazy-catchup");
    assert!(v[0].what.contains("cpu 2"), "{}", v[0]);
    let caught_up = flush().ev(2, Kind::LazyExit, &[MM, 4, 5]);
    assert_eq!(caught_up.check().unwrap().lazy_skips, 1);
}

#[test]
fn merge_orders_by_tsc_across_cpus() {
    let a = Record {
        cpu: 0,
        tsc: 30,
        kind: Kind::GpDone,
        args: [1; ARGS],
    };
    let b = Record {
        cpu: 1,
        tsc: 20,
        kind: Kind::GpDone,
        args: [2; ARGS],
    };
    let c = Record {
        cpu: 0,
        tsc: 40,
        kind: Kind::GpDone,
        args: [3; ARGS],
    };
    assert_eq!(merge(&[vec![a, c], vec![b]]), vec![b, a, c]);
}

#[test]
fn only_the_cpus_a_backend_interrupts_must_run_the_handler() {
    let backend = |name| index_of(BACKENDS, name);
    // pv: CPU 2 was preempted (deferred to its resume): only CPU 1 was interrupted.
    let pv = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(
            0,
            Kind::FlushBegin,
            &[MM, 5, 0, u64::MAX, 0b110, 0, 1, backend("pv")],
        )
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(0, Kind::FlushEnd, &[MM, 5, 0b010])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("broadcast"), 0b110])
        .ev(0, Kind::SyncEnd, &[MM, sync("broadcast")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    assert!(pv.check().is_ok(), "{:?}", pv.check());
    // ... but CPU 1, which it interrupted, must have run it.
    let pv_late = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(
            0,
            Kind::FlushBegin,
            &[MM, 5, 0, u64::MAX, 0b110, 0, 1, backend("pv")],
        )
        .ev(0, Kind::FlushEnd, &[MM, 5, 0b010])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("broadcast"), 0b110])
        .ev(0, Kind::SyncEnd, &[MM, sync("broadcast")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    assert_eq!(pv_late.check().unwrap_err()[0].rule, "flush-before-free");
    // INVLPGB: no handler anywhere.
    let invlpgb = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(
            0,
            Kind::FlushBegin,
            &[MM, 5, 0, u64::MAX, 0b110, 0, 1, backend("invlpgb")],
        )
        .ev(0, Kind::FlushEnd, &[MM, 5, 0])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("broadcast"), 0b110])
        .ev(0, Kind::SyncEnd, &[MM, sync("broadcast")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    assert!(invlpgb.check().is_ok());
}

#[test]
fn a_flush_before_the_unlink_does_not_cover_the_free() {
    // The address space was flushed (gen 4) before the table was unlinked, never after.
    let t = Trace::new()
        .ev(0, Kind::FlushBegin, &[MM, 4, 0, u64::MAX, 0b10, 0, 1, 0])
        .ev(1, Kind::FlushRun, &[MM, 4, 0, ran("full")])
        .ev(0, Kind::FlushEnd, &[MM, 4, 0b10])
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::SyncBegin, &[MM, 4, sync("targeted"), 0b10])
        .ev(0, Kind::SyncEnd, &[MM, sync("targeted")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    let v = t.check().unwrap_err();
    assert_eq!(v[0].rule, "flush-before-free", "{}", v[0]);
    assert!(v[0].what.contains("no flush"), "{}", v[0]);
}

#[test]
fn a_handler_of_an_older_generation_does_not_count() {
    // CPU 1 ran the handler only for gen 4; the flush after the unlink is gen 5.
    let t = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::FlushBegin, &[MM, 5, 0, u64::MAX, 0b10, 0, 1, 0])
        .ev(1, Kind::FlushRun, &[MM, 4, 0, ran("full")])
        .ev(0, Kind::SyncBegin, &[MM, 5, sync("targeted"), 0b10])
        .ev(0, Kind::SyncEnd, &[MM, sync("targeted")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    let v = t.check().unwrap_err();
    assert_eq!(v[0].rule, "flush-before-free", "{}", v[0]);
    assert!(v[0].what.contains("cpu 1"), "{}", v[0]);
}

#[test]
fn a_sync_before_the_flush_or_on_another_cpu_does_not_count() {
    // The freer's sync ended before the flush began.
    let early = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::SyncBegin, &[MM, 4, sync("targeted"), 0b10])
        .ev(0, Kind::SyncEnd, &[MM, sync("targeted")])
        .ev(0, Kind::FlushBegin, &[MM, 5, 0, u64::MAX, 0b10, 0, 1, 0])
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(0, Kind::FlushEnd, &[MM, 5, 0b10])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    let v = early.check().unwrap_err();
    assert_eq!(v[0].rule, "sync-before-free", "{}", v[0]);
    // A sync after the flush, but on a CPU other than the freer's.
    let elsewhere = collapse_flushed()
        .ev(1, Kind::SyncBegin, &[MM, 5, sync("targeted"), 0b1])
        .ev(1, Kind::SyncEnd, &[MM, sync("targeted")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    let v = elsewhere.check().unwrap_err();
    assert_eq!(v[0].rule, "sync-before-free", "{}", v[0]);
}

#[test]
fn another_cpus_flush_of_the_same_mm_is_not_taken_for_the_unlinkers() {
    // CPU 1's own gather flushes mm without freed tables (lazy CPU 2 skipped) between CPU
    // 0's unlink and CPU 0's flush; the free relies on CPU 0's flush, which is fine.
    let t = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(1, Kind::FlushBegin, &[MM, 5, 0x1000, 0x2000, 0b1, 0b100, 0, 0])
        .ev(0, Kind::FlushRun, &[MM, 5, 1, ran("partial")])
        .ev(0, Kind::FlushBegin, &[MM, 6, 0, u64::MAX, 0b110, 0b100, 1, 0])
        .ev(1, Kind::FlushRun, &[MM, 6, 0, ran("full")])
        .ev(2, Kind::FlushRun, &[MM, 6, 0, ran("left")])
        .ev(0, Kind::FlushEnd, &[MM, 6, 0b110])
        .ev(0, Kind::SyncBegin, &[MM, 6, sync("skip"), 0])
        .ev(0, Kind::SyncEnd, &[MM, sync("skip")])
        .ev(0, Kind::TableFreed, &[MM, T, 0]);
    assert!(t.check().is_ok(), "{:?}", t.check());
    // A skip on the receipt of another flush than the one after the unlink is not.
    let mut wrong = t.0.clone();
    wrong[7].args[1] = 5;
    let v = check(&wrong).unwrap_err();
    assert!(v[0].what.contains("receipt of flush gen 5"), "{}", v[0]);
}

#[test]
fn an_early_acknowledgement_is_allowed_only_for_a_flush_that_frees_no_table() {
    // An unmap that frees nothing: lazy CPUs skipped, CPU 1 acknowledges early.
    let no_tables = Trace::new()
        .ev(0, Kind::FlushBegin, &[MM, 5, 0x1000, 0x2000, 0b10, 0, 0, 0])
        .ev(1, Kind::EarlyAck, &[MM, 5, 0])
        .ev(0, Kind::FlushEnd, &[MM, 5, 0b10])
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("partial")]);
    assert!(no_tables.check().is_ok(), "{:?}", no_tables.check());
    // The collapse: its flush includes lazy CPUs (tables are freed); an early
    // acknowledgement of it is the violation, named at the acknowledgement.
    let tables = Trace::new()
        .ev(0, Kind::EntryClear, &[MM, 0, 2, T])
        .ev(0, Kind::FlushBegin, &[MM, 5, 0, u64::MAX, 0b110, 0, 1, 0])
        .ev(1, Kind::EarlyAck, &[MM, 5, 0])
        .ev(1, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(2, Kind::FlushRun, &[MM, 5, 0, ran("full")])
        .ev(0, Kind::FlushEnd, &[MM, 5, 0b110]);
    let bad = tables.check().unwrap_err();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[0].rule, bad[0].at.kind, bad[0].at.cpu),
        ("early-ack-of-tables", Kind::EarlyAck, 1)
    );
    // Another CPU's flush of the same generation number (another mm) is not its flush.
    let other_mm = Trace::new()
        .ev(0, Kind::FlushBegin, &[MM + 1, 5, 0, u64::MAX, 0b10, 0, 1, 0])
        .ev(2, Kind::FlushBegin, &[MM, 5, 0x1000, 0x2000, 0b10, 0, 0, 0])
        .ev(1, Kind::EarlyAck, &[MM, 5, 2]);
    assert!(other_mm.check().is_ok(), "{:?}", other_mm.check());
}
