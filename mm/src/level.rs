//! Page-table levels of x86-64 four-level paging, and what each one's entries cover.
//!
//! An entry at level `L` lives in a level-`L` table, maps (or points to a table for)
//! `L.span()` bytes, and is selected by the nine address bits from `L.shift()` up. This
//! file is the only place where the shifts (12, 21, 30, 39) are written.

use crate::addr::{PhysAddr, VirtAddr};

/// Entries per table (nine index bits).
pub const ENTRIES: usize = 512;

/// A page-table level, named as Linux names its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Level 1, the page table (PT): entries map 4 KiB pages.
    Pte = 1,
    /// Level 2, the page directory (PD): entries map 2 MiB pages or point to PTE tables.
    Pmd = 2,
    /// Level 3, the page-directory-pointer table (PDPT): entries point to PMD tables.
    Pud = 3,
    /// Level 4, the root (PML4). Linux folds its P4D level into it, so these entries are
    /// the `p4d`s whose clearing the gather records as `cleared_p4ds`.
    Pgd = 4,
}

impl Level {
    /// The top level: the table an address space's root points to.
    pub const ROOT: Level = Level::Pgd;

    /// Every level, from the root down.
    pub const TOP_DOWN: [Level; 4] = [Level::Pgd, Level::Pud, Level::Pmd, Level::Pte];

    /// log2 of [`Level::span`]: where this level's index bits start; also the flush
    /// stride of translations of this size.
    pub const fn shift(self) -> u32 {
        match self {
            Level::Pte => 12,
            Level::Pmd => 21,
            Level::Pud => 30,
            Level::Pgd => 39,
        }
    }

    /// Bytes one entry at this level covers (4 KiB, 2 MiB, 1 GiB, 512 GiB).
    pub const fn span(self) -> u64 {
        1 << self.shift()
    }

    /// The index of `va`'s entry in a table of this level.
    pub const fn index(self, va: VirtAddr) -> usize {
        ((va.as_u64() >> self.shift()) as usize) & (ENTRIES - 1)
    }

    /// The level of the tables this level's entries point to; None for [`Level::Pte`].
    pub const fn below(self) -> Option<Level> {
        match self {
            Level::Pte => None,
            Level::Pmd => Some(Level::Pte),
            Level::Pud => Some(Level::Pmd),
            Level::Pgd => Some(Level::Pud),
        }
    }

    /// The level whose entries point to tables of this level; None for the root.
    pub const fn above(self) -> Option<Level> {
        match self {
            Level::Pte => Some(Level::Pmd),
            Level::Pmd => Some(Level::Pud),
            Level::Pud => Some(Level::Pgd),
            Level::Pgd => None,
        }
    }

    /// x86's number for the level (1 = PT .. 4 = PML4).
    pub const fn number(self) -> usize {
        self as usize
    }
}

// What a level does to addresses: here rather than in `addr.rs`, so that the address
// types stay plain numbers and the two files do not import each other.
impl VirtAddr {
    /// The start of the `level` entry's span that holds this address.
    pub const fn align_down(self, level: Level) -> Self {
        VirtAddr::new(self.as_u64() & !(level.span() - 1))
    }

    /// The offset of this address in the `level` entry's span that holds it.
    pub const fn offset_in(self, level: Level) -> u64 {
        self.as_u64() & (level.span() - 1)
    }
}

impl PhysAddr {
    /// The start of the `level`-sized block (4 KiB frame, 2 MiB or 1 GiB block) that holds
    /// it.
    pub const fn align_down(self, level: Level) -> Self {
        PhysAddr::new(self.as_u64() & !(level.span() - 1))
    }
}
