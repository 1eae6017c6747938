//! The lock-free page-table walker (GUP-fast analogue).
//!
//! Rules: it walks only the running CPU's current address space (checked against the
//! root the CPU has loaded, read with interrupts off, so it cannot change during the
//! walk: the receipt that lets a sync be skipped covers the CPUs that have an address
//! space loaded, not walkers of someone else's tables); interrupts stay off for
//! the whole walk (that is what the table-free sync and the grace period wait for); it
//! reads every entry exactly once into a local; it "takes a reference" on the page (here:
//! reads the word at the address) and then re-reads the level-2 and level-1 entries,
//! backing off if either changed. It never waits for anything while interrupts are off.
//! Every entry read is checked against [`POISON`]: reading one means the walker was
//! inside a table that had already been freed — the use-after-free the protocol exists
//! to prevent — and is counted as a poison hit.

use core::sync::atomic::Ordering;

use crate::pgtable::{self, ADDR_MASK, HUGE, HUGE_SIZE, PAGE_SIZE, POISON, PRESENT, PhysMem};
use crate::stats::{TlbEvent, TlbStats};

/// What the walker needs from the running CPU.
pub trait WalkerHw: Sync {
    /// Runs `f` with interrupts disabled.
    fn with_irqs_off(&self, f: &mut dyn FnMut());
    /// Called between reading the level-2 entry and the PTE: where a host may deschedule
    /// this vCPU (the paravirt model sets the CPU's "preempted" flag for a while here).
    fn preemption_point(&self);
    /// The running CPU.
    fn this_cpu(&self) -> usize;
    /// The page-table root the running CPU has loaded (CR3).
    fn loaded_root(&self) -> u64;
}

/// Result of one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The page at `pa` holds `value` at the walked address.
    Page {
        /// Physical address of the byte walked to.
        pa: u64,
        /// The 8-byte word read there (the "reference").
        value: u64,
    },
    /// Nothing mapped.
    NotMapped,
    /// An entry changed under the walker: it backed off (slow path would retry).
    BackedOff,
    /// A freed table was read.
    Poisoned,
    /// Refused: the root is not the one loaded on this CPU.
    NotLoaded,
}

/// Walks `va` in the address space whose root is `root` (the current one).
pub fn walk(hw: &dyn WalkerHw, mem: &dyn PhysMem, stats: &TlbStats, root: u64, va: u64) -> Walk {
    let mut result = Walk::NotMapped;
    hw.with_irqs_off(&mut || {
        result = if hw.loaded_root() == root {
            walk_irqs_off(hw, mem, root, va)
        } else {
            Walk::NotLoaded
        }
    });
    if result == Walk::Poisoned {
        stats.count(hw.this_cpu(), TlbEvent::PoisonHits);
    }
    result
}

fn walk_irqs_off(hw: &dyn WalkerHw, mem: &dyn PhysMem, root: u64, va: u64) -> Walk {
    let mut table = root;
    let mut pmd = 0;
    let mut pmd_table = 0;
    for level in (2..=4).rev() {
        let v = mem
            .entry(table, pgtable::index(va, level))
            .load(Ordering::Relaxed);
        if v == POISON {
            return Walk::Poisoned;
        }
        if v & PRESENT == 0 {
            return Walk::NotMapped;
        }
        if level == 2 {
            pmd = v;
            pmd_table = table;
            if v & HUGE != 0 {
                let pa = (v & ADDR_MASK & !(HUGE_SIZE - 1)) + (va & (HUGE_SIZE - 1) & !7);
                let value = mem
                    .entry(pa & !(PAGE_SIZE - 1), ((pa & (PAGE_SIZE - 1)) / 8) as usize)
                    .load(Ordering::Relaxed);
                if mem.entry(table, pgtable::index(va, 2)).load(Ordering::Relaxed) != v {
                    return Walk::BackedOff;
                }
                return Walk::Page { pa, value };
            }
        }
        table = v & ADDR_MASK;
    }
    hw.preemption_point();
    let pte_slot = mem.entry(table, pgtable::index(va, 1));
    let pte = pte_slot.load(Ordering::Relaxed);
    if pte == POISON {
        return Walk::Poisoned;
    }
    if pte & PRESENT == 0 {
        return Walk::NotMapped;
    }
    let pa = (pte & ADDR_MASK) + (va & (PAGE_SIZE - 1) & !7);
    let value = mem
        .entry(pte & ADDR_MASK, ((va & (PAGE_SIZE - 1)) / 8) as usize)
        .load(Ordering::Relaxed);
    if mem
        .entry(pmd_table, pgtable::index(va, 2))
        .load(Ordering::Relaxed)
        != pmd
        || pte_slot.load(Ordering::Relaxed) != pte
    {
        return Walk::BackedOff;
    }
    Walk::Page { pa, value }
}
