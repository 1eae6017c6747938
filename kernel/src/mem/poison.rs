//! Debug poisoning of freed memory, so that the race detector and the coherence oracle
//! recognise a read through a stale translation or a walk through a freed table.
//!
//! - A freed data frame is filled with [`FREED_DATA_POISON`] (all words but word 0, the
//!   frame allocator's free-list link).
//! - A freed page table is filled with `mm::entry::Entry::POISON` (PRESENT with reserved
//!   address bits, so a hardware walk through it faults with RSVD) and waits in a
//!   quarantine ring of [`QUARANTINE`] frames before the allocator may reuse it.
//!
//! On by default; `bench=tlb` turns it off ([`set_debug_poison`]) so that the timed
//! operations do not include it.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::mem::{frames, paging};

/// What freed data frames are filled with while poisoning is on: a read through a stale
/// translation returns it.
pub const FREED_DATA_POISON: u64 = 0xdead_da7a_f4ee_0000;

static DEBUG_POISON: AtomicBool = AtomicBool::new(true);

/// Turns poisoning of freed frames and the table quarantine on or off.
pub fn set_debug_poison(on: bool) {
    DEBUG_POISON.store(on, Ordering::SeqCst);
}

fn debug_poison() -> bool {
    DEBUG_POISON.load(Ordering::Relaxed)
}

/// Poisons a data frame that is about to be freed (if poisoning is on).
pub fn poison_data_frame(pa: u64) {
    if debug_poison() {
        paging::fill_frame(pa, 1, FREED_DATA_POISON, Ordering::Relaxed);
    }
}

/// If poisoning is on, poisons the freed table `pa` and quarantines it (returns true:
/// the quarantine frees it later); otherwise returns false and the caller frees it.
pub fn free_table_poisoned(pa: u64) -> bool {
    if !debug_poison() {
        return false;
    }
    paging::fill_frame(pa, 0, mm::entry::Entry::POISON.raw(), Ordering::SeqCst);
    quarantine(pa);
    true
}

/// How many freed page tables wait, poisoned, before the frame allocator reuses them,
/// so a walker that is (wrongly) still inside one reads poison rather than a reused frame.
pub const QUARANTINE: usize = 256;
static QUARANTINED: spin::Mutex<([u64; QUARANTINE], usize, usize)> =
    spin::Mutex::new(([0; QUARANTINE], 0, 0));

fn quarantine(pa: u64) {
    let evicted = arch::irq::without_interrupts(|| {
        let mut q = QUARANTINED.lock();
        let (ref mut ring, ref mut head, ref mut len) = *q;
        let evicted = if *len == QUARANTINE {
            let old = ring[*head];
            *head = (*head + 1) % QUARANTINE;
            *len -= 1;
            Some(old)
        } else {
            None
        };
        ring[(*head + *len) % QUARANTINE] = pa;
        *len += 1;
        evicted
    });
    if let Some(old) = evicted {
        frames::free(x86_64::PhysAddr::new(old));
    }
}

/// Returns every quarantined table frame to the allocator (end of a workload).
pub fn drain_quarantine() {
    loop {
        let next = arch::irq::without_interrupts(|| {
            let mut q = QUARANTINED.lock();
            let (ref ring, ref mut head, ref mut len) = *q;
            if *len == 0 {
                return None;
            }
            let pa = ring[*head];
            *head = (*head + 1) % QUARANTINE;
            *len -= 1;
            Some(pa)
        });
        match next {
            Some(pa) => frames::free(x86_64::PhysAddr::new(pa)),
            None => return,
        }
    }
}
