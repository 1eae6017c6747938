//! Address spaces: a page-table root, the CPUs that use it, its flush generation, and
//! its page-table lock.
//!
//! # The page-table lock
//!
//! Each address space has one (Linux's `page_table_lock`), and a guard proves it is held.
//!
//! - Every writer of an address space's page-table entries holds its lock: the write
//!   operations ([`crate::entry::EntrySlot::install`], [`crate::entry::EntrySlot::clear`])
//!   and every function built on them (mapping, unmapping, teardown, collapse, sharing)
//!   take a [`PageTableGuard`], which only [`AddressSpace::lock`]
//!   makes. Functions that need the address space take it from the guard, so the lock
//!   held is the one of the tables written; and every slot carries the root it was
//!   reached from, so a write reached from another address space's root panics
//!   ([`crate::entry::EntrySlot::install`] asserts the guard's root is the slot's; tables
//!   reachable from two roots, shared PMD tables and the kernel half, pass under either).
//! - The lock-free walker ([`crate::walker`]) never takes it: it is excluded from freed
//!   tables by the grace period and the sync IPI instead.
//! - No IPI handler takes it, so a holder may flush and sync (wait for other CPUs) with
//!   the lock held.
//! - Two locks at once (sharing a table between two address spaces) are taken owner
//!   first, then the other one.

use crate::addr::PhysAddr;
use crate::cpumask::AtomicCpuMask;
use crate::sync::Ordering::SeqCst;
use crate::sync::{AtomicU64, AtomicUsize, Site, ord};

/// The id allocator: a core atomic even under loom (a `static`, and it orders nothing:
/// ids need only be unique, which any ordering of an RMW gives).
static NEXT_ID: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);

/// One address space (Linux's `mm_struct`, the parts TLB shootdown needs).
pub struct AddressSpace {
    id: usize,
    root: PhysAddr,
    /// CPUs that have this address space loaded, or lazily keep it loaded
    /// (`mm_cpumask`). A CPU sets its bit before reading `tlb_gen` when it switches in.
    pub cpumask: AtomicCpuMask,
    /// Flush generation, bumped by every flush request *before* the flusher reads
    /// `cpumask` and the lazy flags (`context.tlb_gen`). Starts at 1.
    pub tlb_gen: AtomicU64,
    /// Gathers in flight on this address space (`tlb_flush_pending`).
    pub flush_pending: AtomicUsize,
    /// The page-table lock (see the top of this file): taken through [`AddressSpace::lock`].
    pt_lock: PageTableLock,
    /// Some level-2 table of this address space has been shared with another one (as
    /// owner or sharer), ever: a table freed here may be walked from another root.
    shared_tables: core::sync::atomic::AtomicBool,
}

impl AddressSpace {
    /// A new address space whose top-level table is at physical `root`.
    pub fn new(root: PhysAddr) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            root,
            cpumask: AtomicCpuMask::new(),
            tlb_gen: AtomicU64::new(1),
            flush_pending: AtomicUsize::new(0),
            pt_lock: PageTableLock::new(),
            shared_tables: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records that one of this address space's tables is shared with another address
    /// space (both sides call it, holding this one's lock: `share_pmd_table`).
    pub fn mark_shared_tables(&self, locked: &PageTableGuard) {
        assert!(
            core::ptr::eq(locked.mm(), self),
            "marked under another address space's lock"
        );
        // Relaxed: set and read under this address space's page-table lock (every freer
        // of its tables holds it), whose release / acquire orders it. A core atomic even
        // under loom and tso: it orders nothing by itself.
        self.shared_tables
            .store(true, core::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a table of this address space has ever been shared with another one.
    pub fn has_shared_tables(&self) -> bool {
        // Relaxed: see `mark_shared_tables`.
        self.shared_tables.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// A unique, never reused identifier.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Physical address of the top-level page table.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Takes the page-table lock; writing this address space's entries needs the guard.
    pub fn lock(&self) -> PageTableGuard<'_> {
        self.pt_lock.lock(self)
    }

    /// The current flush generation.
    pub fn generation(&self) -> u64 {
        // SeqCst: the reader's half of flush.rs rule 1: a CPU switching in (or back from
        // lazy) sets its mask bit (clears its lazy flag), then reads this; the flusher
        // bumps it, then reads mask and flags. With Acquire both may read old values.
        self.tlb_gen.load(ord(SeqCst, Site::GenRead))
    }
}

impl core::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "AddressSpace(id={} root={:#x} gen={})",
            self.id,
            self.root,
            self.generation()
        )
    }
}

/// The lock (Linux's `page_table_lock`, one per address space).
pub struct PageTableLock(spin::Mutex<()>);

impl PageTableLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Self(spin::Mutex::new(()))
    }

    /// Takes the lock of `mm` (which owns `self`).
    pub(crate) fn lock<'a>(&'a self, mm: &'a AddressSpace) -> PageTableGuard<'a> {
        PageTableGuard {
            mm,
            _held: self.0.lock(),
        }
    }
}

impl Default for PageTableLock {
    fn default() -> Self {
        Self::new()
    }
}

/// Proof that the page-table lock of [`PageTableGuard::mm`] is held; dropping it unlocks.
///
/// Writing an entry takes the guard, so this compiles:
/// ```
/// # use mm::{addr_space::AddressSpace, entry::EntrySlot};
/// fn unmap_one(mm: &AddressSpace, slot: EntrySlot) {
///     slot.clear(&mm.lock());
/// }
/// ```
/// and this, without the lock, does not:
/// ```compile_fail
/// # use mm::{addr_space::AddressSpace, entry::EntrySlot};
/// fn unmap_one(mm: &AddressSpace, slot: EntrySlot) {
///     slot.clear();
/// }
/// ```
/// nor can a guard be had but by locking:
/// ```compile_fail
/// # use mm::{addr_space::AddressSpace, addr_space::PageTableGuard};
/// fn forge(mm: &AddressSpace) -> PageTableGuard<'_> {
///     PageTableGuard { mm, _held: todo!() }
/// }
/// ```
pub struct PageTableGuard<'a> {
    mm: &'a AddressSpace,
    _held: spin::MutexGuard<'a, ()>,
}

impl<'a> PageTableGuard<'a> {
    /// The address space whose tables may be written.
    pub fn mm(&self) -> &'a AddressSpace {
        self.mm
    }

    /// Its top-level table.
    pub fn root(&self) -> PhysAddr {
        self.mm.root()
    }
}
