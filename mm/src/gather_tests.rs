//! Host tests of mmu_gather, table freeing, the decision and the receipts.

use proptest::prelude::*;

use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::gather::MmuGather;
use crate::hw::{BackendKind, PhysMem};
use crate::level::Level;
use crate::receipt::UnlinkMark;
use crate::sim::{World, irqs_off, irqs_on, munmap, on_cpu, va};
use crate::stats::TlbEvent;
use crate::table_free::{SyncMode, flush_implies_ipi_broadcast};
use crate::unmap::{teardown, unmap_range};

#[test]
fn decision_is_native_without_invlpgb_only() {
    for kind in [
        BackendKind::NativeIpi,
        BackendKind::Paravirt,
        BackendKind::Invlpgb,
    ] {
        for invlpgb in [false, true] {
            let want = kind == BackendKind::NativeIpi && !invlpgb;
            assert_eq!(
                flush_implies_ipi_broadcast(kind, invlpgb),
                want,
                "{kind:?} invlpgb={invlpgb}"
            );
        }
    }
}

#[test]
fn unmap_frees_pages_and_every_empty_table_after_one_flush() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 8);
    w.hold_lazily(2, &mm);
    let before = w.mem.live();
    let ctx = w.ctx();
    on_cpu(0, || {
        let locked = mm.lock();
        let mut g = MmuGather::new(&ctx, &locked);
        unmap_range(&mut g, va(0x4000_0000), va(0x4000_8000));
        assert_eq!(g.pending_pages(), 8);
        assert!(
            w.mem.freed.lock().unwrap().is_empty(),
            "nothing may be freed before the flush"
        );
        g.finish();
    });
    let t = w.m.stats.total();
    assert_eq!(t.get(TlbEvent::PagesFreed), 8);
    assert_eq!(
        t.get(TlbEvent::TablesDeferred),
        3,
        "PTE, PMD and PUD tables became empty"
    );
    assert_eq!(
        t.get(TlbEvent::LocalPartial) + t.get(TlbEvent::LocalFull),
        0,
        "mm not loaded on cpu 0"
    );
    w.sync.tick_all();
    on_cpu(0, || w.freer().drain(&irqs_on()));
    assert_eq!(w.mem.freed_tables.lock().unwrap().len(), 3);
    assert_eq!(
        w.mem.live(),
        before - 8 - 3,
        "pages and tables returned; batch page too"
    );
}

#[test]
fn tables_wait_for_a_grace_period() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    w.hold_lazily(2, &mm);
    let ctx = w.ctx();
    on_cpu(0, || {
        munmap(&ctx, &mm, va(0x4000_0000), va(0x4000_1000));
    });
    assert_eq!(w.freer.tables_in_flight(), 3);
    on_cpu(0, || w.freer().poll());
    assert_eq!(
        w.freer.tables_in_flight(),
        3,
        "no CPU passed a quiescent state yet"
    );
    w.sync.quiescent[1].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    on_cpu(0, || w.freer().poll());
    assert_eq!(w.freer.tables_in_flight(), 3, "cpus 2 and 3 may still be walking");
    w.sync.tick_all();
    on_cpu(0, || w.freer().poll());
    assert_eq!(w.freer.tables_in_flight(), 0);
    assert_eq!(
        w.sync.syncs.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the batched path sends no sync"
    );
}

#[test]
fn any_number_of_batches_waits_without_a_sync() {
    // Linux's call_rcu never fails: a gather whose batch is queued never falls back to
    // the sync, however many batches wait (here 200 with no grace period passing, one
    // unmap each, forced mode).
    let w = World::new(BackendKind::NativeIpi, true);
    w.freer.set_mode(SyncMode::Always);
    let ctx = w.ctx();
    // One page per 2 MiB block: every unmap frees its own PTE table, in its own batch.
    let mm = AddressSpace::new(w.mem.alloc_frame().unwrap());
    let va_of = |p: u64| va(0x4000_0000 + (p << 21));
    {
        let locked = mm.lock();
        (0..200u64).for_each(|p| w.map_page(&locked, va_of(p)));
    }
    let frames_before = w.mem.live();
    on_cpu(0, || {
        for p in 0..200u64 {
            let at = va_of(p);
            munmap(&ctx, &mm, at, at + 4096);
        }
    });
    assert_eq!(w.sync.syncs.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(w.freer.tables_in_flight() > 0);
    for _ in 0..3 {
        w.sync.tick_all();
        on_cpu(0, || w.freer().poll());
    }
    assert_eq!(w.freer.tables_in_flight(), 0);
    assert_eq!(
        w.mem.freed_tables.lock().unwrap().len(),
        202,
        "200 PTE tables, the PMD and the PUD table"
    );
    assert_eq!(
        w.mem.live(),
        frames_before - 200 - 202,
        "no batch page left behind"
    );
}

/// Fallback path (batch allocation fails): returns (syncs sent, syncs skipped).
fn fallback_unmap(kind: BackendKind, key: bool, mode: SyncMode, lazy_cpu_in_mask: bool) -> (u64, u64) {
    let mut w = World::new(kind, key);
    w.freer.set_mode(mode);
    fallback_unmap_on(&mut w, lazy_cpu_in_mask)
}

/// [`fallback_unmap`] on `w` (its batch pages made to fail here).
fn fallback_unmap_on(w: &mut World, lazy_cpu_in_mask: bool) -> (u64, u64) {
    w.no_batch_pages = true;
    let mm = w.mm_with_pages(0x4000_0000, 1);
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    if lazy_cpu_in_mask {
        on_cpu(1, || w.m.mmu().enter_lazy_tlb());
    }
    let ctx = w.ctx();
    on_cpu(0, || {
        munmap(&ctx, &mm, va(0x4000_0000), va(0x4000_1000));
    });
    assert_eq!(
        w.mem.freed_tables.lock().unwrap().len(),
        3,
        "freed at once on the fallback path"
    );
    let t = w.m.stats.total();
    (t.get(TlbEvent::SyncSent), t.get(TlbEvent::SyncSkipped))
}

#[test]
fn fallback_skips_the_sync_only_with_native_receipt_and_key() {
    // Three tables, each freed right after a flush + sync.
    assert_eq!(
        fallback_unmap(BackendKind::NativeIpi, true, SyncMode::Decided, false),
        (0, 3)
    );
    assert_eq!(
        fallback_unmap(BackendKind::NativeIpi, true, SyncMode::Decided, true),
        (0, 3),
        "lazy cpus are in a freed-tables flush"
    );
    assert_eq!(
        fallback_unmap(BackendKind::NativeIpi, false, SyncMode::Decided, false),
        (3, 0),
        "key off"
    );
    assert_eq!(
        fallback_unmap(BackendKind::Paravirt, true, SyncMode::Decided, false),
        (3, 0),
        "pv receipt"
    );
    assert_eq!(
        fallback_unmap(BackendKind::Invlpgb, true, SyncMode::Decided, false),
        (3, 0),
        "invlpgb receipt"
    );
    assert_eq!(
        fallback_unmap(BackendKind::NativeIpi, true, SyncMode::Always, false),
        (3, 0)
    );
}

/// The `force-skip` fault (the sync hardware does nothing) on the path that needs the
/// sync: the protocol still asks for all three syncs (it does not skip them itself), and
/// none reaches a CPU. What it lets through is shown by the kernel's race test
/// (`race_pv_force_skip_is_caught_by_the_detector`).
#[test]
fn force_skip_fault_lets_no_sync_reach_a_cpu_where_three_are_due() {
    let mut w = World::new(BackendKind::Paravirt, false);
    w.sync
        .sync_does_nothing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        fallback_unmap_on(&mut w, false),
        (3, 0),
        "(asked for, skipped by the protocol)"
    );
    assert_eq!(syncs(&w), 0, "sync IPIs that reached the CPUs");
}

#[test]
fn sync_without_a_receipt_or_with_another_mms_receipt_is_sent() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    let other = w.mm_with_pages(0x4000_0000, 1);
    on_cpu(0, || {
        let unlinked = UnlinkMark::now(&mm);
        w.freer().table_sync_one(&irqs_on(), None, &mm, unlinked);
        let r =
            w.m.mmu()
                .flush_tlb_mm_range(&mut irqs_on(), &other, va(0), va(4096), Level::Pte, true);
        w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, unlinked);
        w.freer().table_sync_rcu(&irqs_on(), Some(&r), &mm, unlinked);
        let r =
            w.m.mmu()
                .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0), va(4096), Level::Pte, false);
        w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, unlinked);
    });
    assert_eq!(w.sync.syncs.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(w.m.stats.total().get(TlbEvent::SyncRcuWaits), 1);
}

#[test]
fn a_receipt_excuses_only_unlinks_made_before_its_flush() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    on_cpu(0, || {
        let first = UnlinkMark::now(&mm);
        let r =
            w.m.mmu()
                .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0), va(4096), Level::Pte, true);
        assert!(r.was_ipi_broadcast_for(&mm));
        // The unlink it was made for: skipped.
        w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, first);
        assert_eq!(w.sync.syncs.load(std::sync::atomic::Ordering::SeqCst), 0);
        // A later unlink (no flush since): the old receipt must not excuse it.
        let later = UnlinkMark::now(&mm);
        w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, later);
        w.freer().table_sync_rcu(&irqs_on(), Some(&r), &mm, later);
    });
    assert_eq!(
        w.sync.syncs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a receipt excused an unlink made after its flush"
    );
    assert_eq!(w.m.stats.total().get(TlbEvent::SyncRcuWaits), 1);
}

/// Syncs sent so far.
fn syncs(w: &World) -> u64 {
    w.sync.syncs.load(std::sync::atomic::Ordering::SeqCst)
}

/// A freed-tables flush that skipped a lazy CPU (the `lazy` fault, [`crate::sim::SkipLazy`]) interrupted a subset of
/// the CPUs that could walk: its receipt must not excuse the sync, though everything
/// else about it (native IPI, the key, freed tables, the same address space, made after
/// the unlink) would.
#[test]
fn a_receipt_that_left_a_walking_cpu_uninterrupted_does_not_excuse_the_sync() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    w.hold_lazily(1, &mm);
    let skip_lazy = crate::sim::SkipLazy {
        inner: &*w.m.backend,
        states: &w.m.states,
    };
    let mmu = crate::flush::Mmu {
        backend: &skip_lazy,
        ..w.m.mmu()
    };
    on_cpu(0, || {
        let unlinked = UnlinkMark::now(&mm);
        let r = mmu.flush_tlb_mm_range(
            &mut irqs_on(),
            &mm,
            va(0x4000_0000),
            va(0x4000_1000),
            Level::Pte,
            true,
        );
        w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, unlinked);
        let missed = r.could_walk.and_not(&r.interrupted);
        assert_eq!(
            syncs(&w),
            1,
            "the receipt excused the sync though cpu(s) {:?} could walk the tables and were \
             not interrupted (could walk {:?}, interrupted {:?})",
            missed.iter().collect::<Vec<_>>(),
            r.could_walk.iter().collect::<Vec<_>>(),
            r.interrupted.iter().collect::<Vec<_>>()
        );
    });
    assert!(
        w.m.states.cpu(1).is_lazy() && w.m.states.cpu(1).has_loaded(&mm),
        "cpu 1 was skipped and still holds mm lazily"
    );
}

/// A flush backend that reports `Paravirt` but runs the handler on, and reports as
/// interrupted, every target: a receipt that covers every CPU and still is no IPI
/// broadcast (a paravirt flush may skip preempted vCPUs in ways its mask does not show).
struct ParavirtThatInterruptsAll;

impl crate::hw::FlushBackend for ParavirtThatInterruptsAll {
    fn kind(&self) -> BackendKind {
        BackendKind::Paravirt
    }
    fn flush_others(
        &self,
        _on: &crate::irq::IrqsOn,
        targets: &CpuMask,
        handler: &(dyn Fn(crate::irq::IrqsOff<'_>) + Sync),
    ) -> CpuMask {
        for t in targets.iter() {
            on_cpu(t, || irqs_off(handler));
        }
        *targets
    }
}

/// A receipt from a backend that is not the native IPI one must not excuse the sync,
/// even if it interrupted every CPU that could walk (and even with the key on, so that
/// the receipt's own check is the one that decides).
#[test]
fn a_receipt_from_a_non_native_backend_that_interrupted_all_does_not_excuse_the_sync() {
    let m = crate::sim::Machine::with_backend(4, Box::new(ParavirtThatInterruptsAll));
    let w = World::with_machine(m, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    w.hold_lazily(2, &mm);
    on_cpu(0, || {
        let unlinked = UnlinkMark::now(&mm);
        let r = w.m.mmu().flush_tlb_mm_range(
            &mut irqs_on(),
            &mm,
            va(0x4000_0000),
            va(0x4000_1000),
            Level::Pte,
            true,
        );
        assert!(
            r.could_walk.and_not(&r.interrupted).is_empty() && !r.interrupted.is_empty(),
            "the backend interrupted every cpu that could walk: {:?}",
            r.interrupted.iter().collect::<Vec<_>>()
        );
        w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, unlinked);
        assert_eq!(
            syncs(&w),
            1,
            "a {:?} receipt (interrupted cpus {:?}) excused the sync",
            r.backend,
            r.interrupted.iter().collect::<Vec<_>>()
        );
    });
}

#[test]
fn a_full_page_batch_flushes_before_queueing_more() {
    let w = World::new(BackendKind::NativeIpi, true);
    let pages = crate::gather::PAGE_BATCH as u64 + 10;
    let mm = w.mm_with_pages(0x4000_0000, pages);
    on_cpu(0, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    let ctx = w.ctx();
    on_cpu(0, || {
        let locked = mm.lock();
        let mut g = MmuGather::new(&ctx, &locked);
        unmap_range(&mut g, va(0x4000_0000), va(0x4000_0000 + pages * 4096));
        assert_eq!(
            w.m.stats.total().get(TlbEvent::PagesFreed),
            crate::gather::PAGE_BATCH as u64
        );
        assert_eq!(
            w.m.stats.total().get(TlbEvent::LocalFull),
            1,
            "forced flush before the free"
        );
        g.finish();
    });
    assert_eq!(w.m.stats.total().get(TlbEvent::PagesFreed), pages);
}

#[test]
fn nested_gathers_force_a_full_flush_with_freed_tables() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 2);
    on_cpu(1, || {
        irqs_off(|off| w.m.mmu().switch_mm(off, &mm));
        w.m.mmu().enter_lazy_tlb();
    });
    let ctx = w.ctx();
    on_cpu(0, || {
        let locked = mm.lock();
        let other = MmuGather::new(&ctx, &locked);
        let mut g = MmuGather::new(&ctx, &locked);
        g.remove_tlb_entry(Level::Pte, va(0x4000_0000));
        let r = g.finish().unwrap();
        assert!(
            r.was_ipi_broadcast_for(&mm),
            "full flush with freed_tables reached the lazy cpu"
        );
        assert_eq!(w.m.stats.total().get(TlbEvent::LazyLeft), 1);
        other.finish();
    });
}

#[test]
fn teardown_returns_every_frame_but_the_root() {
    let w = World::new(BackendKind::NativeIpi, true);
    let before = w.mem.live();
    let mm = w.mm_with_pages(0x4000_0000, 20);
    {
        let locked = mm.lock();
        (0..5).for_each(|p| w.map_page(&locked, va(0x7f00_0000_0000 + p * 4096)));
    }
    w.hold_lazily(3, &mm);
    let ctx = w.ctx();
    on_cpu(0, || {
        teardown(&ctx, &mm.lock());
        w.freer().drain(&irqs_on());
    });
    assert_eq!(w.mem.live(), before + 1, "only the root is left");
}

#[test]
fn release_frees_the_root_only_when_no_cpu_has_it_loaded() {
    let w = World::new(BackendKind::NativeIpi, true);
    let before = w.mem.live();
    let mm = w.mm_with_pages(0x4000_0000, 4);
    // CPU 1 runs a task of `mm` (not lazy): the teardown flush cannot make it leave.
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    let ctx = w.ctx();
    let gave_up = on_cpu(0, || crate::release::release(&ctx, &mm, || false));
    match gave_up {
        Ok(()) => {
            let loaded: Vec<String> = (0..4)
                .filter(|&c| w.m.states.cpu(c).has_loaded(&mm))
                .map(|c| c.to_string())
                .collect();
            panic!(
                "root freed while cpu {} still has it loaded (mm's mask: {:?})",
                loaded.join(", cpu "),
                mm.cpumask.load().iter().collect::<Vec<_>>()
            )
        }
        Err(holders) => assert_eq!(
            holders.iter().collect::<Vec<_>>(),
            [1],
            "release gave up naming the wrong holders"
        ),
    }
    assert!(
        w.m.states.cpu(1).has_loaded(&mm),
        "without the wait, the root would be freed while CPU 1 has it in CR3"
    );
    on_cpu(0, || w.freer().drain(&irqs_on()));
    assert_eq!(w.mem.live(), before + 1, "tables and pages gone, the root kept");
    // Its task ends and CPU 1 idles lazily: the next freed-tables flush makes it leave.
    let mut waits = 0;
    on_cpu(0, || {
        crate::release::release(&ctx, &mm, || {
            waits += 1;
            on_cpu(1, || w.m.mmu().enter_lazy_tlb());
            true
        })
    })
    .unwrap();
    assert_eq!(waits, 1);
    on_cpu(0, || w.freer().drain(&irqs_on()));
    assert_eq!(w.mem.live(), before, "the root is freed too");
}

proptest! {
    /// The range covers every cleared entry and the stride is the smallest level cleared.
    #[test]
    fn range_and_stride_track_cleared_entries(entries in proptest::collection::vec((0usize..4, 0u64..1 << 30), 1..40)) {
        let w = World::new(BackendKind::NativeIpi, true);
        let mm = AddressSpace::new(w.mem.alloc_frame().unwrap());
        let ctx = w.ctx();
        let locked = mm.lock();
        let mut g = MmuGather::new(&ctx, &locked);
        let mut lo = u64::MAX;
        let mut hi = 0;
        let level_of = |i: usize| Level::TOP_DOWN[i];
        for &(level, page) in &entries {
            let level = level_of(level);
            let start = va(page << 12).align_down(level);
            g.remove_tlb_entry(level, va(page << 12));
            lo = lo.min(start.as_u64());
            hi = hi.max(start.as_u64() + level.span());
        }
        let min_level = entries.iter().map(|e| level_of(e.0)).min().unwrap();
        prop_assert_eq!((g.start, g.end), (va(lo), va(hi)));
        prop_assert_eq!(g.cleared.stride(), min_level);
        on_cpu(0, || g.flush_mmu_tlbonly());
        prop_assert!(g.start >= g.end, "range reset after the flush");
        on_cpu(0, || g.finish());
    }
}

#[test]
fn a_grace_period_held_up_by_one_cpu_is_reported_naming_that_cpu() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    w.sync.stuck.store(2, std::sync::atomic::Ordering::SeqCst);
    on_cpu(0, || {
        let unlinked = UnlinkMark::now(&mm);
        w.freer().table_sync_rcu(&irqs_on(), None, &mm, unlinked);
    });
    assert_eq!(
        *w.sync.reports.lock().unwrap(),
        vec![("grace-period", CpuMask::from_iter([2]))]
    );
}

#[test]
fn a_wait_whose_cpus_all_answer_is_never_reported() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 1);
    on_cpu(0, || {
        let unlinked = UnlinkMark::now(&mm);
        w.freer().table_sync_rcu(&irqs_on(), None, &mm, unlinked);
    });
    assert!(w.sync.reports.lock().unwrap().is_empty());
}
