//! The lock-free page-table walker (GUP-fast analogue).
//!
//! Rules: it publishes its walk in the running CPU's walk marker for the walk's length
//! ([`crate::walk_marker`]: the table-free sync reaches or waits for the marked CPUs); it walks only the running CPU's current address space (checked against the
//! root the CPU has loaded, read with interrupts off, so it cannot change during the
//! walk: the receipt that lets a sync be skipped covers the CPUs that have an address
//! space loaded, not walkers of someone else's tables); interrupts stay off for
//! the whole walk (that is what the table-free sync and the grace period wait for); it
//! reads every entry exactly once into a local; it "takes a reference" on the page (here:
//! reads the word at the address) and then re-reads the level-2 and level-1 entries (or
//! the huge leaf's), backing off if either changed. It never waits for anything while
//! interrupts are off. Every entry read is checked against [`Entry::POISON`]: reading
//! one means the walker was inside a table that had already been freed — the
//! use-after-free the protocol exists to prevent — and is counted as a poison hit.

use core::sync::atomic::Ordering;

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::hw::{PhysMem, WalkerHw};
use crate::irq::{IrqsOff, IrqsOn};
use crate::level::Level;
use crate::pt_walk::{PathWalk, Step};
use crate::stats::{TlbEvent, TlbStats};
use crate::walk_marker::{WalkMarkers, WalkTag};

/// Result of one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The page at `pa` holds `value` at the walked address.
    Page {
        /// Physical address of the byte walked to.
        pa: PhysAddr,
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

/// Walks `va` in the address space `mm` (the current one). It turns interrupts off for
/// the walk, so the caller must hold them on (`on`), and publishes the walk in this CPU's
/// marker in `marks` for its length ([`crate::walk_marker`]).
pub fn walk(
    on: &mut IrqsOn,
    hw: &dyn WalkerHw,
    marks: &WalkMarkers,
    mem: &dyn PhysMem,
    stats: &TlbStats,
    mm: &AddressSpace,
    va: VirtAddr,
) -> Walk {
    walk_marked(on, hw, Some(marks), mem, stats, mm, va)
}

/// [`walk`] without publishing the walk in a marker: for measuring the marker's price
/// only (the benchmark's `walk-cost:` line). Not safe against the `targeted` and `wait`
/// syncs or walk periods, which look only for marked walks; only the `broadcast` sync
/// and tick grace periods exclude it.
pub fn walk_unpublished(
    on: &mut IrqsOn,
    hw: &dyn WalkerHw,
    mem: &dyn PhysMem,
    stats: &TlbStats,
    mm: &AddressSpace,
    va: VirtAddr,
) -> Walk {
    walk_marked(on, hw, None, mem, stats, mm, va)
}

/// The walk, published in `marks` if given.
fn walk_marked(
    on: &mut IrqsOn,
    hw: &dyn WalkerHw,
    marks: Option<&WalkMarkers>,
    mem: &dyn PhysMem,
    stats: &TlbStats,
    mm: &AddressSpace,
    va: VirtAddr,
) -> Walk {
    let mut result = Walk::NotMapped;
    let root = mm.root();
    hw.cpu().with_irqs_off(on, &mut |off| {
        result = if hw.loaded_root() != root {
            Walk::NotLoaded
        } else if let Some(marks) = marks {
            // The CPU is read with interrupts off: the marker written is the one of the
            // CPU that walks, whatever a scheduler could do before.
            let cpu = hw.cpu().this_cpu();
            marks.walk(off, cpu, WalkTag::of(mm), || {
                walk_irqs_off(off, hw, mem, root, va)
            })
        } else {
            walk_irqs_off(off, hw, mem, root, va)
        }
    });
    if result == Walk::Poisoned {
        stats.count(hw.cpu().this_cpu(), TlbEvent::PoisonHits);
    }
    result
}

/// "Takes the reference": reads the word at `pa` (8-byte aligned down).
fn read_word(mem: &dyn PhysMem, pa: PhysAddr) -> u64 {
    let frame = pa.align_down(Level::Pte);
    let index = ((pa.as_u64() - frame.as_u64()) / 8) as usize;
    mem.word(frame, index).load(Ordering::Relaxed)
}

fn walk_irqs_off(
    _off: IrqsOff<'_>,
    hw: &dyn WalkerHw,
    mem: &dyn PhysMem,
    root: PhysAddr,
    va: VirtAddr,
) -> Walk {
    let mut pmd: Option<Step> = None;
    for step in PathWalk::lockless(mem, root, va) {
        if step.entry.is_poison() {
            return Walk::Poisoned;
        }
        if !step.is_table() && !step.is_leaf() {
            return Walk::NotMapped; // absent, or the reserved page-size bit at the root
        }
        if step.level != Level::Pte && step.is_leaf() {
            // A 2 MiB or 1 GiB page.
            let level = step.level;
            let pa = step.entry.addr().align_down(level) + (va.offset_in(level) & !7);
            let value = read_word(mem, pa);
            if step.slot.read_once() != step.entry {
                return Walk::BackedOff;
            }
            return Walk::Page { pa, value };
        }
        if step.level == Level::Pmd {
            pmd = Some(step);
            hw.preemption_point();
        }
        if step.level == Level::Pte {
            let pa = step.entry.addr() + (va.offset_in(Level::Pte) & !7);
            let value = read_word(mem, pa);
            let pmd = pmd.expect("a PTE step follows a PMD step");
            if pmd.slot.read_once() != pmd.entry || step.slot.read_once() != step.entry {
                return Walk::BackedOff;
            }
            return Walk::Page { pa, value };
        }
    }
    unreachable!("a walk ends at an absent entry or a leaf")
}

#[cfg(test)]
#[path = "walker_tests.rs"]
mod tests;
