//! Page-table entries ([`Entry`]), their flags, and the slots that hold them.
//!
//! # Who reads and writes an entry, how
//!
//! An entry is one `AtomicU64` in a table frame, read and written whole:
//! - writers change entries of an address space only while holding its page-table lock:
//!   [`EntrySlot::install`] and [`EntrySlot::clear`] take the lock's guard, so a write
//!   without the lock does not compile. A slot remembers the root it was reached from
//!   (the walk's, or the one given to [`EntrySlot::of`]), and a write asserts that the
//!   guard is of that root: a write reached by walking one address space's root under
//!   another's lock panics. It cannot tell more than the root: a table reachable from
//!   two roots (a shared PMD table, the kernel half) passes under either lock, and a
//!   slot made with [`EntrySlot::of`] from the guard's own root checks nothing. An install is a Release store (the zeroed table
//!   or filled page it points to is visible first); a clear is a SeqCst swap (it is
//!   ordered before the flush's generation bump, see [`crate::receipt`]);
//! - readers that are not the lock-free walker read with Acquire ([`EntrySlot::read`]);
//! - the lock-free walker takes no lock and reads each entry exactly once
//!   ([`EntrySlot::read_once`], Linux's `READ_ONCE`), then re-reads to back off
//!   ([`crate::walker`]).

use core::ops::BitOr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::{PhysAddr, USER_END, VirtAddr};
use crate::addr_space::PageTableGuard;
use crate::hw::PhysMem;
use crate::level::Level;
use crate::unlinked_table::UnlinkedTable;

/// Flag bits of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFlags(u64);

impl EntryFlags {
    /// No flags.
    pub const NONE: EntryFlags = EntryFlags(0);
    /// The entry maps something (or points to a table).
    pub const PRESENT: EntryFlags = EntryFlags(1 << 0);
    /// Writable.
    pub const WRITABLE: EntryFlags = EntryFlags(1 << 1);
    /// User-accessible.
    pub const USER: EntryFlags = EntryFlags(1 << 2);
    /// Write-through caching (PWT), for memory-mapped device registers.
    pub const WRITE_THROUGH: EntryFlags = EntryFlags(1 << 3);
    /// Caching disabled (PCD), for memory-mapped device registers.
    pub const NO_CACHE: EntryFlags = EntryFlags(1 << 4);
    /// The page-size bit (PS): at [`Level::Pmd`] a 2 MiB page rather than a table, at
    /// [`Level::Pud`] a 1 GiB page; reserved at the root (see [`Entry::is_table_at`]).
    pub const HUGE: EntryFlags = EntryFlags(1 << 7);
    /// Not executable.
    pub const NO_EXECUTE: EntryFlags = EntryFlags(1 << 63);

    /// The bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

impl BitOr for EntryFlags {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Physical-address bits of an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The value of one page-table entry.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry(u64);

impl Entry {
    /// Nothing mapped.
    pub const EMPTY: Entry = Entry(0);

    /// What freed page-table frames are filled with. Not a valid entry pattern: the
    /// software walker compares every entry with it, and a hardware walk that reaches a
    /// freed table faults with the reserved-bit error code (RSVD) instead of silently
    /// missing: the pattern is PRESENT with physical-address bits 51:40 set, which are
    /// reserved on every CPU with MAXPHYADDR <= 40 (QEMU's TCG) and bits 51:48 on those
    /// up to 48.
    pub const POISON: Entry = Entry(0xdead_4bad_f00d_0001);

    /// The entry whose bits are `raw`.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The entry's bits.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// An entry pointing to the page table at `table`, on the way to `va`: present and
    /// writable (the leaves decide), and user-accessible only in the lower half.
    ///
    /// The CPU grants user access only where every level has USER set, so a user table
    /// must have it; a table of the upper half (at or above [`USER_END`], the kernel's)
    /// must not, as Linux's `_KERNPG_TABLE`: then no kernel leaf, even one wrongly
    /// marked USER, is reachable from user mode.
    pub const fn table(table: PhysAddr, va: VirtAddr) -> Self {
        let mut flags = EntryFlags::PRESENT.0 | EntryFlags::WRITABLE.0;
        if va.as_u64() < USER_END.as_u64() {
            flags |= EntryFlags::USER.0;
        }
        Self((table.as_u64() & ADDR_MASK) | flags)
    }

    /// A present 4 KiB leaf mapping the frame at `frame`.
    pub const fn page(frame: PhysAddr, flags: EntryFlags) -> Self {
        Self((frame.as_u64() & ADDR_MASK) | flags.0 | EntryFlags::PRESENT.0)
    }

    /// A present 2 MiB leaf (a level-2 entry) mapping the block at `block`; the same bits
    /// at level 3 are a 1 GiB leaf ([`crate::pgtable::map_1g`]).
    pub const fn huge_page(block: PhysAddr, flags: EntryFlags) -> Self {
        Self((block.as_u64() & ADDR_MASK) | flags.0 | EntryFlags::HUGE.0 | EntryFlags::PRESENT.0)
    }

    /// Whether the entry maps something or points to a table.
    pub const fn is_present(self) -> bool {
        self.0 & EntryFlags::PRESENT.0 != 0
    }

    /// Whether the page-size bit is set (what it means depends on the level: see
    /// [`Entry::is_leaf_at`]).
    pub const fn is_huge(self) -> bool {
        self.0 & EntryFlags::HUGE.0 != 0
    }

    /// Whether the entry, found in a table of `level`, maps a page: a 4 KiB one at
    /// [`Level::Pte`], or with the page-size bit a 2 MiB one at [`Level::Pmd`] or a
    /// 1 GiB one at [`Level::Pud`] (made only by [`crate::pgtable::map_1g`]).
    pub fn is_leaf_at(self, level: Level) -> bool {
        self.is_present()
            && match level {
                Level::Pte => true,
                Level::Pmd | Level::Pud => self.is_huge(),
                Level::Pgd => false,
            }
    }

    /// Whether the entry, found in a table of `level`, points to a table of the level
    /// below: present, above [`Level::Pte`], without the page-size bit. The bit at the
    /// root is reserved (the CPU faults on it): such an entry is neither a table nor a
    /// leaf, and nothing walks through it.
    pub fn is_table_at(self, level: Level) -> bool {
        self.is_present() && level != Level::Pte && !self.is_huge()
    }

    /// Whether this is [`Entry::POISON`]: the entry was read from a freed table.
    pub const fn is_poison(self) -> bool {
        self.0 == Entry::POISON.0
    }

    /// The physical address the entry holds (a table, a frame or a 2 MiB or 1 GiB block;
    /// for a block, align it down to its level: bit 12 is its PAT bit).
    pub const fn addr(self) -> PhysAddr {
        PhysAddr::new(self.0 & ADDR_MASK)
    }
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Entry({:#x})", self.0)
    }
}

/// Where one entry lives: a slot of a page table, and the root of the address space it
/// was reached from (whose lock a write must hold).
#[derive(Clone, Copy)]
pub struct EntrySlot<'m> {
    word: &'m AtomicU64,
    root: PhysAddr,
}

impl<'m> EntrySlot<'m> {
    /// Slot `index` of the table at `table`, a table of the address space whose root is
    /// `root`.
    pub fn of(mem: &'m dyn PhysMem, root: PhysAddr, table: PhysAddr, index: usize) -> Self {
        Self {
            word: mem.word(table, index),
            root,
        }
    }

    /// The root of the address space the slot was reached from.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Panics unless `locked` is the lock of the address space the slot belongs to.
    fn assert_locked(&self, locked: &PageTableGuard) {
        assert!(
            locked.root() == self.root,
            "page-table write under the lock of the address space with root {:#x}, \
             but the slot was reached from root {:#x}",
            locked.root(),
            self.root
        );
    }

    /// Reads the entry (Acquire: what it points to is visible).
    pub fn read(&self) -> Entry {
        Entry(self.word.load(Ordering::Acquire))
    }

    /// Reads the entry once, without ordering: the lock-free walker's `READ_ONCE`.
    pub fn read_once(&self) -> Entry {
        Entry(self.word.load(Ordering::Relaxed))
    }

    /// Writes `entry` (Release), under the page-table lock of the slot's address space
    /// (panics if `locked` is another's).
    pub fn install(&self, locked: &PageTableGuard, entry: Entry) {
        self.assert_locked(locked);
        self.word.store(entry.0, Ordering::Release);
    }

    /// Clears the entry (SeqCst), under the page-table lock of the slot's address space
    /// (panics if `locked` is another's); returns what it held.
    pub fn clear(&self, locked: &PageTableGuard) -> Entry {
        self.assert_locked(locked);
        Entry(self.word.swap(0, Ordering::SeqCst))
    }

    /// Step 1 of removing a table ([`crate::unlinked_table`]): clears this entry, of
    /// level `level`, which points to a table of the locked address space (panics if it
    /// does not), and marks the unlink. The table is now the returned value's, until its
    /// flush and sync give it back.
    pub fn unlink<'a>(&self, locked: &PageTableGuard<'a>, level: Level) -> UnlinkedTable<'a> {
        self.unlink_as(locked, level, false)
    }

    /// [`EntrySlot::unlink`] for a table that other address spaces keep using (an
    /// unshare): it is flushed and synced like a freed one, then not freed.
    pub fn unlink_shared<'a>(&self, locked: &PageTableGuard<'a>, level: Level) -> UnlinkedTable<'a> {
        self.unlink_as(locked, level, true)
    }

    fn unlink_as<'a>(&self, locked: &PageTableGuard<'a>, level: Level, shared: bool) -> UnlinkedTable<'a> {
        let old = self.read();
        assert!(
            old.is_table_at(level),
            "unlink: {old:?} at {level:?} does not point to a table"
        );
        self.clear(locked);
        trace::event!(
            EntryClear,
            locked.mm().id(),
            0,
            level.number(),
            old.addr().as_u64()
        );
        UnlinkedTable::just_unlinked(locked.mm(), old.addr(), shared)
    }
}
