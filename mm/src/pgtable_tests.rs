//! Host tests of page-table writes: a slot is written only under the lock of the address
//! space it was reached from; the tables a mapping creates are user-accessible in the
//! lower half only.

use crate::addr::{USER_END, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::entry::{Entry, EntryFlags};
use crate::hw::{BackendKind, PhysMem};
use crate::level::Level;
use crate::pgtable;
use crate::pt_walk::PathWalk;
use crate::sim::{World, va};

const X: u64 = 0x40_0000_1000;

#[test]
#[should_panic(expected = "but the slot was reached from root")]
fn a_write_under_another_address_spaces_lock_panics() {
    let w = World::new(BackendKind::NativeIpi, true);
    let a = w.mm_with([va(X)]);
    let b = AddressSpace::new(w.mem.alloc_frame().unwrap());
    let (_, slot) = pgtable::leaf(&w.mem, a.root(), va(X)).unwrap();
    slot.install(&b.lock(), Entry::EMPTY);
}

#[test]
#[should_panic(expected = "but the slot was reached from root")]
fn a_clear_under_another_address_spaces_lock_panics() {
    let w = World::new(BackendKind::NativeIpi, true);
    let a = w.mm_with([va(X)]);
    let b = w.mm_with([va(X)]);
    let (_, slot) = pgtable::leaf(&w.mem, a.root(), va(X)).unwrap();
    slot.clear(&b.lock());
}

#[test]
fn a_write_under_its_own_address_spaces_lock_is_done() {
    let w = World::new(BackendKind::NativeIpi, true);
    let a = w.mm_with([va(X)]);
    let (_, slot) = pgtable::leaf(&w.mem, a.root(), va(X)).unwrap();
    assert_eq!(slot.root(), a.root());
    let frame = slot.clear(&a.lock()).addr();
    assert_eq!(pgtable::translate(&w.mem, a.root(), va(X)), None);
    w.mem.free_frame(frame);
}

/// The entries on the way to the leaf at `at` that point to tables.
fn table_entries(w: &World, mm: &AddressSpace, at: VirtAddr) -> Vec<(Level, Entry)> {
    PathWalk::new(&w.mem, mm.root(), at)
        .filter(|step| step.is_table())
        .map(|step| (step.level, step.entry))
        .collect()
}

fn is_user(entry: Entry) -> bool {
    entry.raw() & EntryFlags::USER.bits() != 0
}

#[test]
fn new_tables_are_user_accessible_in_the_lower_half_only() {
    let w = World::new(BackendKind::NativeIpi, true);
    let kernel_va = va(0xffff_8000_0020_3000);
    assert!(kernel_va >= USER_END);
    let mm = w.mm_with([va(X), kernel_va]);
    let user = table_entries(&w, &mm, va(X));
    let kernel = table_entries(&w, &mm, kernel_va);
    assert_eq!(user.len(), 3, "three tables above the user page: {user:?}");
    assert_eq!(kernel.len(), 3, "three tables above the kernel page: {kernel:?}");
    for (level, entry) in user {
        assert!(is_user(entry), "user table entry at {level:?}: {entry:?}");
    }
    for (level, entry) in kernel {
        assert!(!is_user(entry), "kernel table entry at {level:?}: {entry:?}");
        assert!(entry.raw() & EntryFlags::WRITABLE.bits() != 0);
    }
}
