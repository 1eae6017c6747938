//! The walk down the page-table levels along one virtual address. The paths that go to
//! one address use it: mapping, lookups, collapse, sharing, and the lock-free walker;
//! unmap and teardown, which cover a range, descend table by table instead
//! ([`crate::unmap`]).
//!
//! [`PathWalk`] yields one [`Step`] per level, from the root down, and ends after the
//! first entry that does not point to a table: one not present, a leaf (a 4 KiB page, a
//! 2 MiB page at level 2 or a 1 GiB page at level 3), or one with the page-size bit at
//! the root, which is reserved ([`Entry::is_table_at`]). It reads the table below only when asked for the next step, so a caller that
//! stops at an entry (a poisoned one, say) never follows it. Entries are read with
//! Acquire, or once and unordered for the lock-free walker ([`PathWalk::lockless`]);
//! see [`crate::entry`] for who reads how.

use crate::addr::{PhysAddr, VirtAddr};
use crate::entry::{Entry, EntrySlot};
use crate::hw::PhysMem;
use crate::level::Level;

/// One level of a walk: the entry for the address in one table.
#[derive(Clone, Copy)]
pub struct Step<'m> {
    /// The table's level.
    pub level: Level,
    /// The table.
    pub table: PhysAddr,
    /// The entry's slot in it.
    pub slot: EntrySlot<'m>,
    /// The entry, as read by the walk.
    pub entry: Entry,
}

impl Step<'_> {
    /// Whether the entry maps a page (4 KiB, 2 MiB at level 2, 1 GiB at level 3): the walk
    /// ends here.
    pub fn is_leaf(&self) -> bool {
        self.entry.is_leaf_at(self.level)
    }

    /// Whether the entry points to a table of the level below (the walk goes on).
    pub fn is_table(&self) -> bool {
        self.entry.is_table_at(self.level)
    }
}

/// A walk from a root down along one address (an iterator of [`Step`]s).
pub struct PathWalk<'m> {
    mem: &'m dyn PhysMem,
    /// The root the walk started from: every slot it yields carries it.
    root: PhysAddr,
    va: VirtAddr,
    lockless: bool,
    /// The level and table the next step reads; None when the walk is over.
    next: Option<(Level, PhysAddr)>,
    /// The level of the last step.
    last: Option<Level>,
}

impl<'m> PathWalk<'m> {
    /// A walk of `va` from the root table at `root`, reading entries with Acquire.
    pub fn new(mem: &'m dyn PhysMem, root: PhysAddr, va: VirtAddr) -> Self {
        Self {
            mem,
            root,
            va,
            lockless: false,
            next: Some((Level::ROOT, root)),
            last: None,
        }
    }

    /// The lock-free walker's walk: every entry is read once, unordered
    /// ([`EntrySlot::read_once`]).
    pub fn lockless(mem: &'m dyn PhysMem, root: PhysAddr, va: VirtAddr) -> Self {
        Self {
            lockless: true,
            ..Self::new(mem, root, va)
        }
    }

    /// Continues the walk in `table`, one level below the last step, whose entry was
    /// absent and now points to `table` (a writer that installs tables as it goes).
    pub fn enter(&mut self, table: PhysAddr) {
        self.next = self.last.and_then(Level::below).map(|level| (level, table));
    }
}

impl<'m> Iterator for PathWalk<'m> {
    type Item = Step<'m>;

    fn next(&mut self) -> Option<Step<'m>> {
        let (level, table) = self.next.take()?;
        let slot = EntrySlot::of(self.mem, self.root, table, level.index(self.va));
        let entry = if self.lockless {
            slot.read_once()
        } else {
            slot.read()
        };
        let step = Step {
            level,
            table,
            slot,
            entry,
        };
        if step.is_table() {
            self.next = level.below().map(|below| (below, entry.addr()));
        }
        self.last = Some(level);
        Some(step)
    }
}
