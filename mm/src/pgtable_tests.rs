//! Host tests of page-table writes: a slot is written only under the lock of the address
//! space it was reached from.

use crate::addr_space::AddressSpace;
use crate::entry::Entry;
use crate::hw::{BackendKind, PhysMem};
use crate::pgtable;
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
