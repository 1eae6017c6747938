//! The page-table lock of an address space, and the guard that proves it is held.
//!
//! # Protocol
//!
//! - Every writer of an address space's page-table entries holds its lock: the write
//!   operations ([`crate::entry::EntrySlot::install`], [`crate::entry::EntrySlot::clear`])
//!   and every function built on them (mapping, unmapping, teardown, collapse, sharing)
//!   take a [`PageTableGuard`], which only [`crate::addr_space::AddressSpace::lock`]
//!   makes. Functions that need the address space take it from the guard, so the lock
//!   held is the one of the tables written.
//! - The lock-free walker ([`crate::walker`]) never takes it: it is excluded from freed
//!   tables by the grace period and the sync IPI instead.
//! - No IPI handler takes it, so a holder may flush and sync (wait for other CPUs) with
//!   the lock held.
//! - Two locks at once (sharing a table between two address spaces) are taken owner
//!   first, then the other one.

use crate::addr::PhysAddr;
use crate::addr_space::AddressSpace;

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
/// # use mm::{addr_space::AddressSpace, pt_lock::PageTableGuard};
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
