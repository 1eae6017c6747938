//! Host tests of the generation and lazy-TLB protocol against simulated CPUs.

use proptest::prelude::*;

use crate::addr_space::AddressSpace;
use crate::level::Level;
use crate::sim::{Machine, irqs_off, irqs_on, on_cpu, pa, va};
use crate::stats::TlbEvent;

const PAGE: u64 = 4096;

#[test]
fn remote_cpu_running_the_mm_is_flushed_partially() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    for c in 0..2 {
        on_cpu(c, || {
            irqs_off(|off| m.mmu().switch_mm(off, &mm));
            m.tlb.touch(va(0x40_0000));
        });
    }
    let r = on_cpu(0, || {
        m.mmu().flush_tlb_mm_range(
            &mut irqs_on(),
            &mm,
            va(0x40_0000),
            va(0x40_1000),
            Level::Pte,
            false,
        )
    });
    assert!(!m.tlb.cached(1, pa(0x5000), va(0x40_0000)) && !m.tlb.cached(0, pa(0x5000), va(0x40_0000)));
    assert_eq!(r.interrupted().iter().collect::<Vec<_>>(), [1]);
    let t = m.stats.total();
    assert_eq!(
        (
            t.get(TlbEvent::FlushIpi),
            t.get(TlbEvent::RemotePartial),
            t.get(TlbEvent::LocalPartial)
        ),
        (1, 1, 1)
    );
    assert_eq!(m.states.cpu(1).generation(), mm.generation());
}

#[test]
fn ranges_over_the_ceiling_flush_everything() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    on_cpu(1, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    on_cpu(0, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    on_cpu(0, || {
        m.mmu()
            .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0), va(34 * PAGE), Level::Pte, false)
    });
    assert_eq!(m.stats.total().get(TlbEvent::RemoteFull), 1);
    on_cpu(0, || {
        m.mmu()
            .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0), va(33 * PAGE), Level::Pte, false)
    });
    assert_eq!(m.stats.total().get(TlbEvent::RemotePartial), 1);
}

#[test]
fn lazy_cpu_is_skipped_without_freed_tables_and_catches_up() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    on_cpu(1, || {
        irqs_off(|off| m.mmu().switch_mm(off, &mm));
        m.tlb.touch(va(0x1000));
        m.mmu().enter_lazy_tlb();
    });
    let r = on_cpu(0, || {
        m.mmu()
            .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0x1000), va(0x2000), Level::Pte, false)
    });
    assert!(r.interrupted().is_empty());
    assert_eq!(m.stats.total().get(TlbEvent::LazySkipped), 1);
    assert!(
        m.tlb.cached(1, pa(0x5000), va(0x1000)),
        "lazy CPU was not touched"
    );
    on_cpu(1, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    assert!(
        !m.tlb.cached(1, pa(0x5000), va(0x1000)),
        "switching back must catch up"
    );
    assert_eq!(m.stats.total().get(TlbEvent::Catchup), 1);
}

#[test]
fn lazy_cpu_is_interrupted_with_freed_tables_and_leaves() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    on_cpu(1, || {
        irqs_off(|off| m.mmu().switch_mm(off, &mm));
        m.mmu().enter_lazy_tlb();
    });
    let r = on_cpu(0, || {
        m.mmu()
            .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0x1000), va(0x2000), Level::Pte, true)
    });
    assert_eq!(r.interrupted().iter().collect::<Vec<_>>(), [1]);
    assert_eq!(m.stats.total().get(TlbEvent::LazyLeft), 1);
    assert!(m.states.cpu(1).has_loaded(&m.kernel));
    assert!(!mm.cpumask.contains(1));
    assert!(r.was_ipi_broadcast_for(&mm));
}

#[test]
fn receipt_without_tables_or_for_another_mm_proves_nothing() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    let other = AddressSpace::new(pa(0x6000));
    on_cpu(1, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    let r = on_cpu(0, || {
        m.mmu()
            .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0), va(PAGE), Level::Pte, false)
    });
    assert!(
        !r.was_ipi_broadcast_for(&mm),
        "no freed_tables: lazy CPUs may have been skipped"
    );
    let r = on_cpu(0, || {
        m.mmu()
            .flush_tlb_mm_range(&mut irqs_on(), &mm, va(0), va(PAGE), Level::Pte, true)
    });
    assert!(r.was_ipi_broadcast_for(&mm));
    assert!(!r.was_ipi_broadcast_for(&other));
}

#[test]
fn stale_generation_handler_flushes_fully_and_never_goes_back() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    on_cpu(1, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    // Two requests were issued, the handler sees the older one after the newer one.
    mm.tlb_gen.fetch_add(2, core::sync::atomic::Ordering::SeqCst);
    let old = crate::flush::FlushInfo {
        mm: &mm,
        start: va(0),
        end: va(PAGE),
        stride: Level::Pte,
        freed_tables: false,
        new_gen: 2,
        initiator: 0,
    };
    on_cpu(1, || irqs_off(|off| m.mmu().flush_tlb_func(off, &old)));
    assert_eq!(
        m.stats.total().get(TlbEvent::RemoteFull),
        1,
        "two generations behind: full flush"
    );
    assert_eq!(m.states.cpu(1).generation(), 3);
    on_cpu(1, || irqs_off(|off| m.mmu().flush_tlb_func(off, &old)));
    assert_eq!(m.states.cpu(1).generation(), 3);
    assert_eq!(m.stats.total().get(TlbEvent::RemoteFull), 1, "already covered");
}

/// Two flush requests (pages A, then B) are in flight towards CPU 1, which caches both;
/// the handler for the newer one (B) runs first. Two generations behind, it must flush
/// everything: a partial flush of B alone would leave A cached, since the older request's
/// handler then finds its generation covered and does nothing.
#[test]
fn a_handler_two_generations_behind_leaves_neither_page_cached() {
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    let (a, b) = (va(0x40_0000), va(0x80_0000));
    on_cpu(1, || {
        irqs_off(|off| m.mmu().switch_mm(off, &mm));
        m.tlb.touch(a);
        m.tlb.touch(b);
    });
    assert!(m.tlb.cached(1, pa(0x5000), a) && m.tlb.cached(1, pa(0x5000), b));
    // Both requests bumped the generation (A's first) before either handler ran.
    let base = mm.generation();
    mm.tlb_gen.fetch_add(2, core::sync::atomic::Ordering::SeqCst);
    let request = |page: crate::addr::VirtAddr, new_gen: u64| crate::flush::FlushInfo {
        mm: &mm,
        start: page,
        end: page + PAGE,
        stride: Level::Pte,
        freed_tables: false,
        new_gen,
        initiator: 0,
    };
    let (for_a, for_b) = (request(a, base + 1), request(b, base + 2));
    on_cpu(1, || irqs_off(|off| m.mmu().flush_tlb_func(off, &for_b)));
    on_cpu(1, || irqs_off(|off| m.mmu().flush_tlb_func(off, &for_a)));
    for (name, page) in [("A", a), ("B", b)] {
        assert!(
            !m.tlb.cached(1, pa(0x5000), page),
            "cpu 1 still caches page {name} ({page:#x}) after the handlers of both flushes ran \
             (B's handler first, for generation {}; the address space is at {}, cpu 1 now at {})",
            base + 2,
            mm.generation(),
            m.states.cpu(1).generation()
        );
    }
    assert_eq!(m.states.cpu(1).generation(), mm.generation());
}

#[derive(Debug, Clone)]
enum Op {
    /// CPU switches to the user address space and touches a page.
    Run(usize, u64),
    /// CPU switches to a kernel thread (lazy).
    Lazy(usize),
    /// CPU unmaps a page of the address space, freeing tables or not, and flushes.
    Unmap(usize, u64, bool),
}

fn op(cpus: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..cpus, 0..8u64).prop_map(|(c, p)| Op::Run(c, p)),
        (0..cpus).prop_map(Op::Lazy),
        (0..cpus, 0..8u64, any::<bool>()).prop_map(|(c, p, t)| Op::Unmap(c, p, t)),
    ]
}

proptest! {
    /// Random switches, lazy periods and flushes: no CPU ever runs the address space
    /// (non-lazily) with a generation behind a completed flush, or with a cached
    /// translation of a page unmapped by a completed flush.
    #[test]
    fn no_cpu_runs_behind_a_completed_flush(ops in proptest::collection::vec(op(4), 1..200)) {
        let m = Machine::new(4);
        let mm = AddressSpace::new(pa(0x5000));
        let mut mapped = [true; 8];
        let mut completed_gen = 0;
        for o in ops {
            match o {
                Op::Run(c, p) => on_cpu(c, || {
                    irqs_off(|off| m.mmu().switch_mm(off, &mm));
                    mapped[p as usize] = true;
                    m.tlb.touch(va(p * PAGE));
                }),
                Op::Lazy(c) => on_cpu(c, || m.mmu().enter_lazy_tlb()),
                Op::Unmap(c, p, tables) => {
                    mapped[p as usize] = false;
                    let r = on_cpu(c, || m.mmu().flush_tlb_mm_range(&mut irqs_on(), &mm, va(p * PAGE), va((p + 1) * PAGE), Level::Pte, tables));
                    completed_gen = r.generation();
                }
            }
            for c in 0..4 {
                let st = m.states.cpu(c);
                if st.has_loaded(&mm) && !st.is_lazy() {
                    prop_assert!(st.generation() >= completed_gen, "cpu {} at gen {} < {}", c, st.generation(), completed_gen);
                    for p in 0..8u64 {
                        prop_assert!(mapped[p as usize] || !m.tlb.cached(c, pa(0x5000), va(p * PAGE)), "cpu {} has stale page {}", c, p);
                    }
                }
            }
        }
    }
}

/// A backend that records what each round offered and how many local flushes the
/// running CPU had made by the time the round would wait for its targets.
struct RoundRecorder<'m> {
    m: &'m Machine,
    /// (early acknowledgement offered, local flushes counted at the wait).
    seen: std::sync::Mutex<Vec<(bool, u64)>>,
}

impl crate::hw::FlushBackend for RoundRecorder<'_> {
    fn kind(&self) -> crate::hw::BackendKind {
        crate::hw::BackendKind::NativeIpi
    }

    fn flush_others(
        &self,
        on: &crate::irq::IrqsOn,
        targets: &crate::cpumask::CpuMask,
        handler: &crate::irq::Handler,
    ) -> crate::cpumask::CpuMask {
        crate::sim::SimIpi.flush_others(on, targets, handler)
    }

    fn flush_round(
        &self,
        on: &crate::irq::IrqsOn,
        targets: &crate::cpumask::CpuMask,
        round: &crate::round::Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> crate::cpumask::CpuMask {
        // Send (the simulated targets run the handler at once), run `local`, "wait".
        let hit = self.flush_others(on, targets, round.handler);
        local();
        let at_wait = self.m.stats.total().get(TlbEvent::LocalPartial);
        self.seen.lock().unwrap().push((round.early.is_some(), at_wait));
        hit
    }
}

fn never_called(_off: crate::irq::IrqsOff<'_>, _info: &crate::flush::FlushInfo<'_>, _ack: &mut dyn FnMut()) {
    unreachable!("the recorder runs no early responder")
}

#[test]
fn the_round_mode_places_the_local_flush_and_offers_early_acks_only_without_freed_tables() {
    use crate::round::RoundMode;
    let m = Machine::new(2);
    let mm = AddressSpace::new(pa(0x5000));
    for c in [1, 0] {
        on_cpu(c, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    }
    let recorder = RoundRecorder {
        m: &m,
        seen: Default::default(),
    };
    for mode in [RoundMode::SERIAL, RoundMode::CONCURRENT, RoundMode::EARLY] {
        for freed_tables in [false, true] {
            for responder in [None, Some(never_called as crate::round::EarlyResponder)] {
                let mmu = crate::flush::Mmu {
                    backend: &recorder,
                    round: mode,
                    responder,
                    ..m.mmu()
                };
                let before = m.stats.total().get(TlbEvent::LocalPartial);
                on_cpu(0, || {
                    mmu.flush_tlb_mm_range(
                        &mut irqs_on(),
                        &mm,
                        va(0x40_0000),
                        va(0x40_1000),
                        Level::Pte,
                        freed_tables,
                    )
                });
                let (early, at_wait) = recorder.seen.lock().unwrap().pop().expect("one round");
                let what = format!(
                    "{} freed_tables={freed_tables} responder={}",
                    mode.name(),
                    responder.is_some()
                );
                assert_eq!(
                    early,
                    mode.early_ack && !freed_tables && responder.is_some(),
                    "{what}: early offered"
                );
                assert_eq!(
                    at_wait - before,
                    mode.concurrent_local as u64,
                    "{what}: local flushes before the wait"
                );
                assert_eq!(
                    m.stats.total().get(TlbEvent::LocalPartial) - before,
                    1,
                    "{what}: local flushes"
                );
            }
        }
    }
}
