//! Four-level page tables in the x86-64 format, reached through [`PhysMem`].
//!
//! Entries are `AtomicU64`s: writers store whole entries, and the lock-free walker
//! reads each one exactly once (`READ_ONCE`). Writers of one address space serialise on
//! its page-table lock (the caller's); walkers take no lock at all.

use core::sync::atomic::{AtomicU64, Ordering};

/// Entry maps something (or points to a table).
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const WRITABLE: u64 = 1 << 1;
/// User-accessible.
pub const USER: u64 = 1 << 2;
/// At level 2 (PMD): a 2 MiB page rather than a table.
pub const HUGE: u64 = 1 << 7;
/// Not executable.
pub const NO_EXECUTE: u64 = 1 << 63;
/// Physical address bits of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Entries per table.
pub const ENTRIES: usize = 512;
/// 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`]: the flush stride of 4 KiB leaves.
pub const PAGE_SHIFT: u32 = 12;
/// log2 of [`HUGE_SIZE`]: the flush stride of 2 MiB leaves.
pub const HUGE_SHIFT: u32 = 21;
/// 2 MiB.
pub const HUGE_SIZE: u64 = 2 << 20;

/// Physical memory as mm sees it: zeroed table frames, freeing, and entry access.
pub trait PhysMem: Sync {
    /// A zeroed 4 KiB frame for a page table (or a data page).
    fn alloc_frame(&self) -> Option<u64>;
    /// Returns a frame. The caller guarantees nothing (TLB, walker) can reach it.
    fn free_frame(&self, pa: u64);
    /// Entry `index` of the table at physical `table`.
    fn entry(&self, table: u64, index: usize) -> &AtomicU64;
    /// Returns a page-table frame. Implementations may poison it (fill it with
    /// [`POISON`]) and hold it back for a while, so that a walker still reading it is
    /// caught; the default frees it at once.
    fn free_table(&self, pa: u64) {
        self.free_frame(pa)
    }
    /// A 2 MiB-aligned, physically contiguous 2 MiB block (for huge mappings). Its
    /// contents are unspecified: the caller fills all of it (collapse copies 512 pages).
    fn alloc_huge(&self) -> Option<u64> {
        None
    }
    /// Copies the 4 KiB frame `src` to `dst`. The default goes word by word through
    /// [`PhysMem::entry`]; implementations with a direct map do one block copy.
    fn copy_frame(&self, dst: u64, src: u64) {
        for w in 0..ENTRIES {
            let word = self.entry(src, w).load(Ordering::Relaxed);
            self.entry(dst, w).store(word, Ordering::Relaxed);
        }
    }
    /// Returns a block from [`PhysMem::alloc_huge`].
    fn free_huge(&self, _pa: u64) {}
}

/// What freed page-table frames are filled with. Not a valid entry pattern: the software
/// walker compares every entry with it, and a hardware walk that reaches a freed table
/// faults with the reserved-bit error code (RSVD) instead of silently missing: the
/// pattern is PRESENT with physical-address bits 51:40 set, which are reserved on every
/// CPU with MAXPHYADDR <= 40 (QEMU's TCG) and bits 51:48 on those up to 48.
pub const POISON: u64 = 0xdead_4bad_f00d_0001;

/// Table level: 4 = PML4 (PGD), 3 = PDPT (PUD), 2 = PD (PMD), 1 = PT (PTE).
pub fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfMemory,
    /// Something is mapped there already (or a huge page covers it).
    AlreadyMapped,
}

/// Returns the table below `table[idx]`, creating it if absent.
fn table_below(mem: &dyn PhysMem, table: u64, idx: usize) -> Result<u64, MapError> {
    let e = mem.entry(table, idx);
    let v = e.load(Ordering::Acquire);
    if v & PRESENT != 0 {
        if v & HUGE != 0 {
            return Err(MapError::AlreadyMapped);
        }
        return Ok(v & ADDR_MASK);
    }
    let new = mem.alloc_frame().ok_or(MapError::OutOfMemory)?;
    // Release: the zeroed table is visible before the entry that points to it.
    e.store(new | PRESENT | WRITABLE | USER, Ordering::Release);
    Ok(new)
}

/// Installs a leaf entry at `level` (1: 4 KiB page, 2: 2 MiB page), creating the tables
/// above it as needed.
fn map_leaf(mem: &dyn PhysMem, root: u64, va: u64, level: u32, entry: u64) -> Result<(), MapError> {
    let mut table = root;
    for l in (level + 1..=4).rev() {
        table = table_below(mem, table, index(va, l))?;
    }
    let e = mem.entry(table, index(va, level));
    if e.load(Ordering::Acquire) & PRESENT != 0 {
        return Err(MapError::AlreadyMapped);
    }
    e.store(entry | PRESENT, Ordering::Release);
    Ok(())
}

/// Maps the 4 KiB page at `va` to `pa`.
pub fn map_4k(mem: &dyn PhysMem, root: u64, va: u64, pa: u64, flags: u64) -> Result<(), MapError> {
    map_leaf(mem, root, va, 1, (pa & ADDR_MASK) | flags)
}

/// Maps the 2 MiB page at `va` (aligned) to `pa` (aligned).
pub fn map_2m(mem: &dyn PhysMem, root: u64, va: u64, pa: u64, flags: u64) -> Result<(), MapError> {
    map_leaf(mem, root, va, 2, (pa & ADDR_MASK) | flags | HUGE)
}

/// Follows `va` down to its leaf entry: (level, entry reference), or None if a level is
/// not present.
pub fn leaf(mem: &dyn PhysMem, root: u64, va: u64) -> Option<(u32, &AtomicU64)> {
    let mut table = root;
    for level in (1..=4).rev() {
        let e = mem.entry(table, index(va, level));
        let v = e.load(Ordering::Acquire);
        if v & PRESENT == 0 {
            return None;
        }
        if level == 1 || (level == 2 && v & HUGE != 0) {
            return Some((level, e));
        }
        table = v & ADDR_MASK;
    }
    None
}

/// Physical address `va` maps to, if any.
pub fn translate(mem: &dyn PhysMem, root: u64, va: u64) -> Option<u64> {
    let (level, e) = leaf(mem, root, va)?;
    let v = e.load(Ordering::Acquire);
    let size = if level == 2 { HUGE_SIZE } else { PAGE_SIZE };
    Some((v & ADDR_MASK & !(size - 1)) + (va & (size - 1)))
}

/// Whether every entry of the table at `table` is empty.
pub fn table_is_empty(mem: &dyn PhysMem, table: u64) -> bool {
    (0..ENTRIES).all(|i| mem.entry(table, i).load(Ordering::Acquire) == 0)
}
