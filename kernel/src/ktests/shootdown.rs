//! The shootdown round on the machine (`mm::round`; rule 8 of mm's `flush.rs`): in every
//! mode (`serial`, `concurrent`, `early`) a flush reaches the same CPUs with the same
//! flushes, each of them then reads the new frame through its own TLB, and only `early`
//! rounds of flushes that free no table are acknowledged early. (Where the flusher's own
//! flush runs is read from the trace: `trace_order`; a table freed before an early
//! responder flushed is caught there too.) Test-only code.

extern crate alloc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use mm::addr::{PhysAddr, VirtAddr};
use mm::cpumask::MAX_CPUS;
use mm::entry::{Entry, EntryFlags};
use mm::hw::PhysMem;
use mm::level::Level;
use mm::pgtable;
use mm::stats::TlbEvent;

use crate::mem::phys::MEM;
use crate::workload::{ROUND_MODES, with_round_mode};
use crate::{mem, sched, tlb, user_space};

/// The page every CPU reads.
const X: u64 = 0x4000_0000;
/// [`STAGE`] value that ends the readers.
const DONE: u64 = u64::MAX;

/// The round the readers are to read after (0: not started).
static STAGE: AtomicU64 = AtomicU64::new(0);
/// The stage each CPU last read X at, and what it read.
static READ_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SEEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Waits until every other CPU read X at `stage` (bounded like a join).
fn all_read(cpus: usize, stage: u64) {
    let end = sched::join_deadline();
    for (c, read_at) in READ_AT.iter().enumerate().take(cpus).skip(1) {
        while read_at.load(SeqCst) != stage {
            assert!(
                arch::cpu::rdtsc() < end,
                "shootdown: cpu {c} did not read stage {stage} within {} ms (it read stage {})",
                sched::JOIN_BOUND_MS,
                read_at.load(SeqCst)
            );
            core::hint::spin_loop();
        }
    }
}

/// Points X at `frame` in `mm` (the caller flushes).
fn remap_x(mm: &mm::addr_space::AddressSpace, frame: u64) {
    let locked = mm.lock();
    let (_, e) = pgtable::leaf(&MEM, mm.root(), VirtAddr::new(X)).expect("mapped");
    e.install(
        &locked,
        Entry::page(
            PhysAddr::new(frame),
            EntryFlags::WRITABLE | EntryFlags::NO_EXECUTE,
        ),
    );
}

fn flush_ipis_received(cpu: usize) -> u64 {
    arch::cpus::get(cpu).ipis.snapshot().received[arch::stats::IpiReason::Flush as usize]
}

ktest::kernel_test!(
    needs(handler_flush().and_cpus(2).and(up_to_cpus(16))) fn every_round_mode_reaches_each_cpu_alike_and_only_early_acks_early() {
        // Every other CPU runs a task of the address space that reads X at each stage; CPU 0
        // points X at a new frame and flushes one page, in each mode, for a flush that frees
        // no table and for one that does (the flag only: what rule 8 decides on).
        let cpus = arch::cpus::count();
        let others = cpus as u64 - 1;
        let mm = user_space::new_address_space();
        let first = user_space::map_new_page(mm, X);
        mem::phys::write_phys(first, 1);
        STAGE.store(1, SeqCst);
        READ_AT.iter().chain(&SEEN).for_each(|a| a.store(0, SeqCst));
        let readers: Vec<_> = (1..cpus)
            .map(|c| {
                sched::spawn("round-reader", c, Some(mm), move || {
                    loop {
                        let s = STAGE.load(SeqCst);
                        if s == DONE {
                            break;
                        }
                        if READ_AT[c].load(SeqCst) != s {
                            // SAFETY: X is mapped in this task's address space.
                            SEEN[c].store(unsafe { core::ptr::read_volatile(X as *const u64) }, SeqCst);
                            READ_AT[c].store(s, SeqCst);
                        }
                        core::hint::spin_loop();
                    }
                })
            })
            .collect();
        sched::use_mm(Some(mm));
        // Each reader holds X's first translation now.
        all_read(cpus, 1);
        let mut stage = 1;
        let mut old = Vec::new();
        let mut current = first;
        for mode in ROUND_MODES {
            for freed_tables in [false, true] {
                stage += 1;
                let frame = MEM.alloc_frame().expect("frame").as_u64();
                mem::phys::write_phys(frame, stage);
                remap_x(mm, frame);
                old.push(current);
                current = frame;
                let before = tlb::STATS.total();
                let ipis: Vec<u64> = (0..cpus).map(flush_ipis_received).collect();
                with_round_mode(mode, || {
                    tlb::mmu().flush_tlb_mm_range(
                        &mut tlb::irqs_on("flushes"),
                        mm,
                        VirtAddr::new(X),
                        VirtAddr::new(X + 4096),
                        Level::Pte,
                        freed_tables,
                    )
                });
                STAGE.store(stage, SeqCst);
                all_read(cpus, stage);
                // Counted only now: an early responder counts its flush after it let the
                // flusher go on; its reader runs once the handler returned.
                let d = tlb::STATS.total() - before;
                let what = alloc::format!("{} round, freed_tables={freed_tables}", mode.name());
                for c in 1..cpus {
                    let seen = SEEN[c].load(SeqCst);
                    assert_eq!(seen, stage, "shootdown: {what}: cpu {c} read {seen} through its TLB, not the new frame's {stage}");
                    assert_eq!(
                        flush_ipis_received(c) - ipis[c],
                        1,
                        "shootdown: {what}: cpu {c} flush IPIs run"
                    );
                }
                let early = if mode.early_ack && !freed_tables { others } else { 0 };
                let got = [
                    d.get(TlbEvent::FlushIpi),
                    d.get(TlbEvent::RemotePartial),
                    d.get(TlbEvent::LocalPartial),
                    d.get(TlbEvent::EarlyAcks),
                ];
                assert_eq!(
                    got,
                    [others, others, 1, early],
                    "shootdown: {what}: [flush_ipis, remote_partial, local_partial, early_acks]: {d}"
                );
                log::info!("shootdown: {what}: every cpu read the new frame; {d}");
            }
        }
        STAGE.store(DONE, SeqCst);
        readers.into_iter().for_each(|r| r.join(sched::JOIN_BOUND_MS));
        sched::use_mm(None);
        // The teardown flushes every CPU that held mm and frees the frame mapped last; the
        // earlier ones go back only then (no TLB can reach them any more).
        user_space::destroy(mm);
        old.into_iter().for_each(|f| MEM.free_frame(PhysAddr::new(f)));
        tlb::settle();
    }
);
