//! The workload `cargo run` shows: tasks of one address space on every CPU touch its
//! pages and sleep (their CPUs turn lazy), while CPU 0 remaps pages and flushes. It
//! ends with the `tlb-stats:` and `ipi-stats:` lines.

extern crate alloc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use mm::pgtable::{self, NO_EXECUTE, PRESENT, PhysMem, WRITABLE};

use crate::sched;
use crate::vm::{self, MEM};

const BASE: u64 = 0x4000_0000;
const PAGES: u64 = 8;
const ROUNDS: u64 = 40;

/// Runs the demo and prints its counters.
pub fn run() {
    let mm = vm::new_address_space();
    for p in 0..PAGES {
        vm::map_new_page(mm, BASE + p * 4096);
    }
    static STOP: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Ordering::SeqCst);
    let before = vm::STATS.total();
    let workers: Vec<_> = (1..arch::cpus::count())
        .map(|cpu| {
            sched::spawn("demo-worker", cpu, Some(mm), move || {
                while !STOP.load(Ordering::SeqCst) {
                    for p in 0..PAGES {
                        // SAFETY: the pages are mapped in this task's address space.
                        unsafe { core::ptr::read_volatile((BASE + p * 4096) as *const u64) };
                    }
                    arch::timer::delay_us(2_000);
                    sched::sleep_ticks(1 + (cpu as u64 % 3));
                }
            })
        })
        .collect();
    sched::use_mm(Some(mm));
    for round in 0..ROUNDS {
        let va = BASE + (round % PAGES) * 4096;
        let (_, e) = pgtable::leaf(&MEM, mm.root(), va).expect("demo page mapped");
        let old = e.load(Ordering::SeqCst) & pgtable::ADDR_MASK;
        let new = MEM.alloc_frame().expect("demo: out of memory");
        e.store(new | PRESENT | WRITABLE | NO_EXECUTE, Ordering::SeqCst);
        vm::mmu().flush_tlb_mm_range(mm, va, va + 4096, 12, false);
        // The flush has completed everywhere: the old frame is unreachable now.
        MEM.free_frame(old);
        arch::timer::delay_us(5_000);
    }
    sched::use_mm(None);
    STOP.store(true, Ordering::SeqCst);
    workers.into_iter().for_each(|w| w.join(30_000));
    log::info!("{}", vm::STATS.total() - before);
}
