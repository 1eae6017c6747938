//! Host tests of the sync forms (`broadcast`, `targeted`, `wait`), the walk period of
//! the batched path, and the one sequence's checks (`release`, `queue_batch`).
//!
//! The walkers here are mm's own (`walker::walk` on a thread that is simulated CPU 1,
//! publishing into the world's walk markers); the simulated memory panics on any read of
//! a freed frame, so a table freed under a walker shows as that walker's panic.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use crate::addr_space::AddressSpace;
use crate::addr_space::PageTableGuard;
use crate::cpumask::CpuMask;
use crate::hw::{BackendKind, PhysMem};
use crate::irq::{IrqsOff, IrqsOn};
use crate::level::Level;
use crate::receipt::FlushReceipt;
use crate::sim::{SimWalker, World, irqs_off, irqs_on, munmap, on_cpu, va};
use crate::stats::TlbEvent;
use crate::table_free::SyncForm;
use crate::unlinked_table::UnlinkedTable;
use crate::walk_marker::{WalkMarkers, WalkTag};
use crate::walker::{Walk, walk};

const BASE: u64 = 0x4000_0000;

fn cpus(list: &[usize]) -> CpuMask {
    list.iter().copied().collect()
}

/// A world with `backend` and the key off (no skip) whose batch pages fail (every table
/// takes `release`: flush, sync, free), with the sync form `form`; `$mm` maps one page
/// and is loaded on CPU 1. A macro, not a function: an address space must not move once
/// a CPU has loaded it (the CPU's TLB state holds its address).
macro_rules! fallback_world {
    ($w:ident, $mm:ident, $backend:expr, $form:expr) => {
        let mut $w = World::new($backend, false);
        $w.freer.set_form($form);
        $w.no_batch_pages = true;
        let $mm = $w.mm_with_pages(BASE, 1);
        on_cpu(1, || irqs_off(|off| $w.m.mmu().switch_mm(off, &$mm)));
    };
}

/// Runs `f` on this thread with CPU `cpu`'s marker naming `mm` (inside a walk, as far as
/// any freer can tell). The proof is made here: `cpu` stands for another CPU, whose
/// interrupts are off, while this thread goes on as CPU 0 with its own on.
fn marked<R>(w: &World, cpu: usize, mm: &AddressSpace, f: impl FnOnce() -> R) -> R {
    w.walks.walk(IrqsOff::new(), cpu, WalkTag::of(mm), f)
}

/// A flush of `mm`'s first page (`tables`: for freed tables) by the running CPU: its
/// receipt.
fn flush_first_page(w: &World, on: &mut IrqsOn, mm: &AddressSpace, tables: bool) -> FlushReceipt {
    w.m.mmu()
        .flush_tlb_mm_range(on, mm, va(BASE), va(BASE + 4096), Level::Pte, tables)
}

/// Unlinks the PTE table under `mm`'s first page (step 1 of the one sequence).
fn unlink_first_pte_table<'a>(w: &World, locked: &PageTableGuard<'a>) -> UnlinkedTable<'a> {
    let pmd = crate::pt_walk::PathWalk::new(&w.mem, locked.root(), va(BASE))
        .find(|s| s.level == Level::Pmd)
        .expect("a PMD entry over the first page");
    pmd.slot.unlink(locked, Level::Pmd)
}

#[test]
fn targeted_sync_interrupts_only_the_walking_cpu() {
    fallback_world!(w, mm, BackendKind::Paravirt, SyncForm::Targeted);
    let ctx = w.ctx();
    marked(&w, 2, &mm, || {
        on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)))
    });
    let t = w.m.stats.total();
    assert_eq!(w.mem.freed_tables.lock().unwrap().len(), 3);
    assert_eq!(
        *w.sync.sync_targets.lock().unwrap(),
        vec![cpus(&[2]); 3],
        "one sync per table, to the walking CPU only"
    );
    assert_eq!(t.get(TlbEvent::SyncIpiCpus), 3);
    assert_eq!(
        t.get(TlbEvent::SyncSpared),
        3 * 2,
        "CPUs 1 and 3 spared each time"
    );
}

#[test]
fn targeted_sync_with_no_walker_sends_nothing() {
    fallback_world!(w, mm, BackendKind::Invlpgb, SyncForm::Targeted);
    let ctx = w.ctx();
    on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)));
    let t = w.m.stats.total();
    assert_eq!(w.mem.freed_tables.lock().unwrap().len(), 3);
    assert!(w.sync.sync_targets.lock().unwrap().is_empty());
    assert_eq!((t.get(TlbEvent::SyncSent), t.get(TlbEvent::SyncSpared)), (0, 9));
}

#[test]
fn targeted_sync_spares_a_walker_of_another_address_space() {
    fallback_world!(w, mm, BackendKind::Paravirt, SyncForm::Targeted);
    let other = w.mm_with_pages(BASE, 1);
    let ctx = w.ctx();
    marked(&w, 2, &other, || {
        on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)))
    });
    assert!(w.sync.sync_targets.lock().unwrap().is_empty());
}

#[test]
fn targeted_sync_spares_a_walker_that_took_the_flush_ipi_after_the_unlink() {
    // CPU 1 has `mm` loaded: the native flush interrupts it after each unlink, so its
    // marker names a walk begun after the unlink (it read the cleared entry).
    fallback_world!(w, mm, BackendKind::NativeIpi, SyncForm::Targeted);
    let ctx = w.ctx();
    marked(&w, 1, &mm, || {
        on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)))
    });
    let sent = w.sync.sync_targets.lock().unwrap().clone();
    assert!(sent.is_empty(), "sync IPIs sent to {sent:?}");
    assert_eq!(w.m.stats.total().get(TlbEvent::SyncSpared), 9);
}

/// CPU 1 walks `mm` with mm's walker, publishing into `marks`; at its preemption point
/// (after it read the level-2 entry, before it reads the PTE table) it waits until the
/// freer on CPU 0 either waits for it or has freed a table, then goes on to read the
/// PTE table. Returns the walk, or the walker's panic message (a read of a freed frame).
fn walk_against_a_freer(w: &World, mm: &AddressSpace, marks: &WalkMarkers) -> Result<Walk, String> {
    let in_walk = AtomicBool::new(false);
    let ctx = w.ctx();
    std::thread::scope(|s| {
        let walker = s.spawn(|| {
            on_cpu(1, || {
                let hook = || {
                    in_walk.store(true, SeqCst);
                    // Bounded: a freer that neither waits nor frees (a broken form) is a
                    // red test saying so, not a hang.
                    let since = std::time::Instant::now();
                    while w.sync.relaxes.load(SeqCst) == 0 && w.mem.freed_tables.lock().unwrap().is_empty() {
                        assert!(
                            since.elapsed() < std::time::Duration::from_secs(60),
                            "the freer neither waited for the walker nor freed a table in a minute"
                        );
                        std::thread::yield_now();
                    }
                };
                let hw = SimWalker {
                    tlb: &w.m.tlb,
                    at_preemption: &hook,
                };
                walk(&mut irqs_on(), &hw, marks, &w.mem, &w.m.stats, mm, va(BASE))
            })
        });
        while !in_walk.load(SeqCst) {
            std::thread::yield_now();
        }
        on_cpu(0, || munmap(&ctx, mm, va(BASE), va(BASE + 4096)));
        walker.join().map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic".into())
        })
    })
}

#[test]
fn wait_sync_sends_nothing_and_frees_only_after_the_walk_ends() {
    fallback_world!(w, mm, BackendKind::Invlpgb, SyncForm::Wait);
    let got = walk_against_a_freer(&w, &mm, &w.walks);
    assert!(
        matches!(got, Ok(Walk::NotMapped | Walk::BackedOff)),
        "the walker read its tables while they were still allocated: {got:?}"
    );
    let t = w.m.stats.total();
    assert_eq!(w.mem.freed_tables.lock().unwrap().len(), 3);
    assert!(w.sync.sync_targets.lock().unwrap().is_empty(), "no IPI");
    assert_eq!(t.get(TlbEvent::SyncWaits), 3);
    assert!(
        t.get(TlbEvent::SyncWaitCpus) >= 1,
        "the first sync waited for CPU 1: {}",
        t.gather_line()
    );
}

/// The twin: the walker publishes where the freer does not look (the kernel's
/// `tlb.break=nomarker`): the wait sees no walker, frees the PTE table, and the walker
/// reads it.
#[test]
fn wait_sync_without_the_marker_frees_the_table_under_the_walker() {
    fallback_world!(w, mm, BackendKind::Invlpgb, SyncForm::Wait);
    let unwatched = WalkMarkers::new();
    let got = walk_against_a_freer(&w, &mm, &unwatched);
    let msg = got.expect_err("the walker read a freed table");
    assert!(msg.contains("unallocated frame"), "{msg}");
}

/// `targeted` with mm's walker on CPU 1, not interrupted by the flush (INVLPGB): the scan
/// finds it, the sync IPI is taken only once its walk is over (the simulated CPU takes it
/// only with interrupts on), and the table is freed after that.
#[test]
fn targeted_sync_interrupts_the_walker_and_frees_only_after_its_walk() {
    fallback_world!(w, mm, BackendKind::Invlpgb, SyncForm::Targeted);
    let got = walk_against_a_freer(&w, &mm, &w.walks);
    assert!(
        matches!(got, Ok(Walk::NotMapped | Walk::BackedOff)),
        "the walker read its tables while they were still allocated: {got:?}"
    );
    assert_eq!(
        w.sync.sync_targets.lock().unwrap().first(),
        Some(&cpus(&[1])),
        "the first sync went to the walker"
    );
}

/// The same twin for `targeted`: the scan sees no walker, nothing is sent, and the
/// walker reads the freed table.
#[test]
fn targeted_sync_without_the_marker_frees_the_table_under_the_walker() {
    fallback_world!(w, mm, BackendKind::Invlpgb, SyncForm::Targeted);
    let unwatched = WalkMarkers::new();
    let got = walk_against_a_freer(&w, &mm, &unwatched);
    let msg = got.expect_err("the walker read a freed table");
    assert!(msg.contains("unallocated frame"), "{msg}");
    assert!(w.sync.sync_targets.lock().unwrap().is_empty(), "no sync was sent");
}

/// A table shared with another address space, freed by one sharer (here: an unmap in
/// the shared region, which empties the PTE table under the shared PMD table): the
/// other's walker may be inside it, so `targeted` interrupts a walker of either.
#[test]
fn a_shared_table_is_synced_with_the_walkers_of_every_address_space() {
    fallback_world!(w, mm, BackendKind::Invlpgb, SyncForm::Targeted);
    let other = AddressSpace::new(w.mem.alloc_frame().unwrap());
    crate::share::share_pmd_table(&w.mem, &mm.lock(), &other.lock(), va(BASE)).unwrap();
    let ctx = w.ctx();
    marked(&w, 2, &other, || {
        on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)))
    });
    assert_eq!(
        w.sync.sync_targets.lock().unwrap().first(),
        Some(&cpus(&[2])),
        "the walker of the other address space was interrupted"
    );
}

/// The batched path under `targeted` / `wait`: a walk period, not ticks. While CPU 2 is
/// in a walk of `mm` that was open at the period's start, the batch waits; once it
/// ends, the next poll frees it, with no tick taken by anyone.
#[test]
fn a_batch_waits_for_the_walks_open_at_its_period_then_not_for_ticks() {
    for form in [SyncForm::Targeted, SyncForm::Wait] {
        let w = World::new(BackendKind::Paravirt, false);
        w.freer.set_form(form);
        let mm = w.mm_with_pages(BASE, 1);
        let ctx = w.ctx();
        let freed_in_walk = AtomicUsize::new(usize::MAX);
        marked(&w, 2, &mm, || {
            on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)));
            on_cpu(0, || w.freer().poll());
            freed_in_walk.store(w.mem.freed_tables.lock().unwrap().len(), SeqCst);
        });
        assert_eq!(
            freed_in_walk.load(SeqCst),
            0,
            "{form:?}: freed while CPU 2 walked"
        );
        assert_eq!(w.freer.tables_in_flight(), 3);
        let ticks_before: u64 = (0..4).map(|c| w.sync.quiescent[c].load(SeqCst)).sum();
        on_cpu(0, || w.freer().poll());
        assert_eq!(
            w.freer.tables_in_flight(),
            0,
            "{form:?}: freed once the walk ended"
        );
        let ticks_after: u64 = (0..4).map(|c| w.sync.quiescent[c].load(SeqCst)).sum();
        assert_eq!(ticks_before, ticks_after, "no tick was needed");
        let t = w.m.stats.total();
        assert_eq!(t.get(TlbEvent::BatchesFreed), 1);
    }
}

/// Under `broadcast` the batch waits for ticks (the grace period), walk or no walk.
#[test]
fn under_broadcast_a_batch_waits_for_ticks() {
    let w = World::new(BackendKind::Paravirt, false);
    let mm = w.mm_with_pages(BASE, 1);
    let ctx = w.ctx();
    on_cpu(0, || munmap(&ctx, &mm, va(BASE), va(BASE + 4096)));
    on_cpu(0, || w.freer().poll());
    assert_eq!(w.freer.tables_in_flight(), 3, "no tick yet");
    w.sync.tick_all();
    on_cpu(0, || w.freer().poll());
    assert_eq!(w.freer.tables_in_flight(), 0);
}

/// Step 3 refuses a receipt of a flush made before the unlink.
#[test]
#[should_panic(expected = "begin after the unlink")]
fn release_refuses_a_flush_made_before_the_unlink() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(BASE, 1);
    on_cpu(0, || {
        let mut on = irqs_on();
        let early = flush_first_page(&w, &mut on, &mm, true);
        let locked = mm.lock();
        let unlinked = unlink_first_pte_table(&w, &locked);
        w.freer().release(&on, unlinked, &early, &mut |_| {});
    });
}

/// A batch queued while a period is already open (its snapshot taken before this
/// batch's unlink) must wait for the next one: under `broadcast` one tick after the
/// queue is not enough, under `targeted` / `wait` a walk of the address space begun
/// before the unlink (after the open period's snapshot) holds the batch.
#[test]
fn a_batch_queued_while_a_period_is_open_waits_for_the_next_one() {
    // Ticks: the first munmap's finish opens period 1; the second batch joins the queue
    // while it is open; one tick completes period 1 only.
    let w = World::new(BackendKind::Paravirt, false);
    let (a, b) = (w.mm_with_pages(BASE, 1), w.mm_with_pages(BASE, 1));
    let ctx = w.ctx();
    on_cpu(0, || munmap(&ctx, &a, va(BASE), va(BASE + 4096)));
    on_cpu(0, || munmap(&ctx, &b, va(BASE), va(BASE + 4096)));
    w.sync.tick_all();
    on_cpu(0, || w.freer().poll());
    assert_eq!(
        w.freer.tables_in_flight(),
        3,
        "broadcast: after one tick the second batch (queued inside period 1) must still wait"
    );
    // Walk periods: CPU 2 walks `b` from before its unlink; period 1 (opened by `a`'s
    // batch, nobody walking) completes at `b`'s finish; `b`'s tables must not go with it.
    for form in [SyncForm::Targeted, SyncForm::Wait] {
        let w = World::new(BackendKind::Paravirt, false);
        w.freer.set_form(form);
        let (a, b) = (w.mm_with_pages(BASE, 1), w.mm_with_pages(BASE, 1));
        let ctx = w.ctx();
        on_cpu(0, || munmap(&ctx, &a, va(BASE), va(BASE + 4096)));
        let freed_in_walk = marked(&w, 2, &b, || {
            on_cpu(0, || munmap(&ctx, &b, va(BASE), va(BASE + 4096)));
            w.mem.freed_tables.lock().unwrap().len()
        });
        assert_eq!(
            freed_in_walk, 3,
            "{form:?}: tables freed while CPU 2 walked `b` (only `a`'s 3 may be)"
        );
        on_cpu(0, || w.freer().poll());
        assert_eq!(
            w.freer.tables_in_flight(),
            0,
            "{form:?}: freed once the walk ended"
        );
    }
}

/// Step 3 refuses a receipt of a flush of another address space, and one not made for
/// tables (lazy CPUs left out), even if made after the unlink.
#[test]
fn release_refuses_a_flush_of_another_address_space_or_not_for_tables() {
    for (other_mm, tables) in [(true, true), (false, false)] {
        let w = World::new(BackendKind::NativeIpi, true);
        let mm = w.mm_with_pages(BASE, 1);
        let other = w.mm_with_pages(BASE, 1);
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on_cpu(0, || {
                let mut on = irqs_on();
                let locked = mm.lock();
                let unlinked = unlink_first_pte_table(&w, &locked);
                let flushed = if other_mm { &other } else { &mm };
                let late = flush_first_page(&w, &mut on, flushed, tables);
                w.freer().release(&on, unlinked, &late, &mut |_| {});
            })
        }));
        let msg = got.expect_err("release accepted the receipt");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("must be of its address space, for tables"),
            "other_mm={other_mm} tables={tables}: {msg}"
        );
    }
}

/// `queue_batch` refuses a receipt of a flush made before the batch's last unlink.
#[test]
#[should_panic(expected = "the flush must begin after the last unlink")]
fn queue_batch_refuses_a_flush_made_before_the_last_unlink() {
    let w = World::new(BackendKind::Paravirt, false);
    let mm = w.mm_with_pages(BASE, 1);
    on_cpu(0, || {
        let mut on = irqs_on();
        let early = flush_first_page(&w, &mut on, &mm, true);
        let locked = mm.lock();
        let unlinked = unlink_first_pte_table(&w, &locked);
        let freer = w.freer();
        let mut batch = freer.alloc_batch(&mm).unwrap();
        let _ = freer.defer(&mut batch, unlinked);
        freer.queue_batch(batch, &early);
    });
}

/// `targeted`: a receipt of a flush made before the unlink does not spare the CPUs it
/// interrupted (they may have begun a walk after that flush and before the unlink).
#[test]
fn targeted_sync_with_a_receipt_from_before_the_unlink_still_reaches_the_walker() {
    fallback_world!(w, mm, BackendKind::NativeIpi, SyncForm::Targeted);
    on_cpu(0, || {
        let r = flush_first_page(&w, &mut irqs_on(), &mm, true);
        assert!(r.interrupted().contains(1), "the flush interrupted CPU 1: {r:?}");
        let later = crate::receipt::UnlinkMark::now(&mm);
        marked(&w, 1, &mm, || {
            w.freer().table_sync_one(&irqs_on(), Some(&r), &mm, later)
        });
    });
    let got = w.sync.sync_targets.lock().unwrap().clone();
    assert_eq!(got, vec![cpus(&[1])], "sent to: {got:?}");
}

/// `wait`: a walk that does not end is reported by the watchdog, naming its CPU, and
/// the wait goes on (the walker here ends its walk once it sees the report, or after
/// 10 s: then the check below says no report came).
#[test]
fn a_wait_held_up_by_one_walker_is_reported_naming_that_cpu() {
    fallback_world!(w, mm, BackendKind::Paravirt, SyncForm::Wait);
    let walking = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            on_cpu(2, || {
                marked(&w, 2, &mm, || {
                    walking.store(true, SeqCst);
                    let since = std::time::Instant::now();
                    while w.sync.reports.lock().unwrap().is_empty()
                        && since.elapsed() < std::time::Duration::from_secs(10)
                    {
                        std::thread::yield_now();
                    }
                })
            })
        });
        while !walking.load(SeqCst) {
            std::thread::yield_now();
        }
        on_cpu(0, || {
            let unlinked = crate::receipt::UnlinkMark::now(&mm);
            w.freer().table_sync_one(&irqs_on(), None, &mm, unlinked);
        });
    });
    assert_eq!(*w.sync.reports.lock().unwrap(), vec![("walk-wait", cpus(&[2]))]);
    assert_eq!(w.m.stats.total().get(TlbEvent::SyncWaitCpus), 1);
}

/// `table_sync_rcu` is a tick grace period in every form (a walk period would see only
/// marked walks): a CPU that takes no tick holds it up, walking or not, and is reported.
#[test]
fn table_sync_rcu_waits_for_ticks_in_every_form() {
    for form in SyncForm::ALL {
        let w = World::new(BackendKind::Paravirt, false);
        w.freer.set_form(form);
        let mm = w.mm_with_pages(BASE, 1);
        w.sync.stuck.store(2, SeqCst);
        on_cpu(0, || {
            let unlinked = crate::receipt::UnlinkMark::now(&mm);
            w.freer().table_sync_rcu(&irqs_on(), None, &mm, unlinked);
        });
        assert_eq!(
            *w.sync.reports.lock().unwrap(),
            vec![("grace-period", cpus(&[2]))],
            "{form:?}: the CPU without ticks was not waited for"
        );
    }
}
