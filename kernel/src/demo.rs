//! The workload `cargo run` shows: tasks of one address space on every CPU touch its
//! pages and sleep (their CPUs turn lazy), while CPU 0 remaps pages and flushes; then
//! the table-freeing race (lock-free walkers on every CPU against unmaps, with the table
//! batch failing and working), a collapse and an unshare. It ends with the `tlb-stats:`
//! and `mmu-gather-stats:` lines.

extern crate alloc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use mm::addr::VirtAddr;
use mm::entry::{Entry, EntryFlags};
use mm::hw::PhysMem;
use mm::level::Level;
use mm::pgtable;

use crate::mem::phys::MEM;
use crate::sched;
use crate::{tlb, user_space};

const BASE: u64 = 0x4000_0000;
const PAGES: u64 = 8;
const ROUNDS: u64 = 40;

/// Runs the demo and prints its counters.
pub fn run() {
    let before = tlb::STATS.total();
    let busy = crate::workload::busy_cpus();
    log::info!(
        "demo: cpus={} busy={} last_busy={}",
        arch::cpus::count(),
        busy.len() + 1,
        busy.last().copied().unwrap_or(0)
    );
    remap_while_others_sleep();
    for (name, fallback) in [("demo-fallback", true), ("demo-batched", false)] {
        let r = crate::workload::race(crate::workload::RaceConfig::new(10, fallback, 100));
        crate::workload::log_result(name, &r);
    }
    collapse_and_unshare();
    let d = tlb::STATS.total() - before;
    log::info!("{d}");
    log::info!("{}", d.gather_line());
}

/// One collapse of a full PTE table and one unshare of a shared table.
fn collapse_and_unshare() {
    let mm = user_space::new_address_space();
    for i in 0..512 {
        crate::workload::map_page(mm, BASE + i * 4096 + 8);
    }
    mm::collapse::collapse(&tlb::gather_ctx(), &mm.lock(), VirtAddr::new(BASE)).expect("demo: collapse");
    crate::user_space::unmap(mm, BASE, BASE + pgtable::HUGE_SIZE);
    let other = user_space::new_address_space();
    let va = (3u64 << 30) | (1 << 21) | (1 << 12);
    crate::workload::map_page(mm, va);
    let va = VirtAddr::new(va);
    mm::share::share_pmd_table(&MEM, &mm.lock(), &other.lock(), va).expect("demo: share");
    mm::share::unshare_pmd_table(&tlb::gather_ctx(), &other.lock(), va);
    crate::user_space::destroy(other);
    crate::user_space::destroy(mm);
    tlb::settle();
}

/// Tasks touch and sleep on every CPU while CPU 0 remaps and flushes.
fn remap_while_others_sleep() {
    let mm = user_space::new_address_space();
    for p in 0..PAGES {
        user_space::map_new_page(mm, BASE + p * 4096);
    }
    static STOP: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Ordering::SeqCst);
    let workers: Vec<_> = crate::workload::busy_cpus()
        .into_iter()
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
        let (_, e) = pgtable::leaf(&MEM, mm.root(), VirtAddr::new(va)).expect("demo page mapped");
        let new = MEM.alloc_frame().expect("demo: out of memory");
        let old = {
            let locked = mm.lock();
            let old = e.read().addr();
            e.install(
                &locked,
                Entry::page(new, EntryFlags::WRITABLE | EntryFlags::NO_EXECUTE),
            );
            old
        };
        tlb::mmu().flush_tlb_mm_range(
            &mut tlb::irqs_on("flushes"),
            mm,
            VirtAddr::new(va),
            VirtAddr::new(va + 4096),
            Level::Pte,
            false,
        );
        // The flush has completed everywhere: the old frame is unreachable now.
        MEM.free_frame(old);
        arch::timer::delay_us(5_000);
    }
    sched::use_mm(None);
    STOP.store(true, Ordering::SeqCst);
    workers
        .into_iter()
        .for_each(|w| w.join(crate::sched::JOIN_BOUND_MS));
    crate::user_space::destroy(mm);
}
