//! How long a batched page table waits before it is reusable (`unlink-to-free:` line,
//! [`bench_spec::UnlinkToFree`]), per sync form and walker count: a one-page unmap on
//! CPU 0 frees one PTE table through the table batch, then the freer is drained (polled
//! until the batch is freed); each sample is the freer's own count of cycles from the
//! batch's first unlink to its free (`TlbEvent::UnlinkToFreeCycles` over
//! `TlbEvent::BatchesFreed`, one batch per sample). With `broadcast` the batch waits for
//! a tick grace period (every other CPU takes a timer tick, `TICK_HZ` = 100); with
//! `targeted` and `wait` for a walk period (every CPU inside a walk of any address space
//! at the snapshot leaves that walk). Walkers, if any, walk the unmapped page's region
//! on every other CPU throughout.

extern crate alloc;
use alloc::vec::Vec;
use bench_spec::{UnlinkToFree, percentile};
use mm::stats::TlbEvent;
use mm::table_free::SyncForm;

use super::walkers::Walkers;
use crate::user_space::{destroy, map_new_page, unmap};
use crate::{sched, tlb, user_space};

/// Samples per line (fewer if the run measures fewer iterations per configuration).
const BATCHES: usize = 20;
/// Samples run first and discarded.
const WARMUP: usize = 2;
const VA: u64 = 0x4000_0000;

/// Measures `form` (set at run time; the caller restores the boot's) with walkers on
/// every other CPU or none, over [`BATCHES`] batches or `iters` if fewer.
pub fn measure(form: SyncForm, walkers: bool, iters: usize) -> UnlinkToFree {
    let batches = iters.clamp(1, BATCHES);
    tlb::settle();
    tlb::FREER.set_form(form);
    let mm = user_space::new_address_space();
    // A mapping 4 MiB above keeps the level-2 table: each unmap frees one PTE table.
    map_new_page(mm, VA + (4 << 20));
    let others = 1..arch::cpus::count();
    let walking = walkers.then(|| Walkers::start(mm, others, VA, 1, |_| false));
    let count = walking.as_ref().map_or(0, Walkers::count);
    sched::use_mm(Some(mm));
    let mut samples = Vec::with_capacity(batches);
    for i in 0..WARMUP + batches {
        map_new_page(mm, VA);
        let before = tlb::STATS.total();
        unmap(mm, VA, VA + 4096);
        tlb::freer().drain(&tlb::irqs_on("drains the table freer"));
        let d = tlb::STATS.total() - before;
        let freed = d.get(TlbEvent::BatchesFreed);
        assert_eq!(freed, 1, "bench: one batch per unmap of one table");
        if i >= WARMUP {
            samples.push(d.get(TlbEvent::UnlinkToFreeCycles));
        }
    }
    sched::use_mm(None);
    if let Some(w) = walking {
        w.stop();
    }
    destroy(mm);
    tlb::settle();
    samples.sort_unstable();
    let median = percentile(&samples, 50).unwrap_or(0);
    UnlinkToFree {
        smp: arch::cpus::online_count(),
        backend: super::tlb::backend(tlb::mmu().backend.kind()),
        sync: super::tlb::sync_of(form),
        walkers: count,
        batches,
        median_cycles: median,
        p99_cycles: percentile(&samples, 99).unwrap_or(0),
        median_ns: arch::timer::cycles_to_ns(median),
    }
}
