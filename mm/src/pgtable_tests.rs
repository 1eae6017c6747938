//! Host tests of page-table writes: a slot is written only under the lock of the address
//! space it was reached from; the tables a mapping creates are user-accessible in the
//! lower half only; a 1 GiB page (the page-size bit at level 3) is a leaf, and the
//! page-size bit at the root (reserved) makes the entry no table either.

use crate::addr::{USER_END, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::entry::{Entry, EntryFlags};
use crate::gather::MmuGather;
use crate::hw::{BackendKind, PhysMem};
use crate::level::Level;
use crate::pgtable::{self, MapError};
use crate::pt_walk::PathWalk;
use crate::share::{ShareError, share_pmd_table, unshare_pmd_table};
use crate::sim::{World, irqs_on, on_cpu, pa, va};
use crate::unmap::unmap_range;

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

/// A 1 GiB-aligned address in the lower half, in its own root entry.
const G: u64 = 0x80_4000_0000;

/// `mm` (with a page at `X`) and a page-size entry at `level` for the region at `G`
/// ([`World::put_page_size_entry`]).
fn with_page_size_entry(w: &World, level: Level) -> AddressSpace {
    let mm = w.mm_with([va(X)]);
    w.put_page_size_entry(&mm, va(G), level);
    mm
}

/// The levels of the walk of `at` in `mm`.
fn levels(w: &World, mm: &AddressSpace, at: VirtAddr) -> Vec<Level> {
    PathWalk::new(&w.mem, mm.root(), at).map(|s| s.level).collect()
}

/// Unmaps `[start, end)` of `mm` through a gather of its own.
fn unmap(w: &World, mm: &AddressSpace, start: VirtAddr, end: VirtAddr) {
    let ctx = w.ctx();
    let locked = mm.lock();
    let mut g = MmuGather::new(&ctx, &locked);
    unmap_range(&mut g, start, end);
}

#[test]
fn mapping_under_a_1g_page_is_refused() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = with_page_size_entry(&w, Level::Pud);
    let locked = mm.lock();
    let frame = w.mem.alloc_frame().unwrap();
    assert_eq!(
        pgtable::map_4k(&locked, &w.mem, va(G + 0x5000), frame, EntryFlags::WRITABLE),
        Err(MapError::AlreadyMapped)
    );
    let huge = w.mem.alloc_huge().unwrap();
    assert_eq!(
        pgtable::map_2m(&locked, &w.mem, va(G + (2 << 20)), huge, EntryFlags::WRITABLE),
        Err(MapError::AlreadyMapped)
    );
    w.mem.free_frame(frame);
    w.mem.free_huge(huge);
}

#[test]
fn a_1g_page_is_the_leaf_lookups_report() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = with_page_size_entry(&w, Level::Pud);
    let at = va(G + 0x1234_5678);
    assert_eq!(
        levels(&w, &mm, at),
        [Level::Pgd, Level::Pud],
        "the walk ends at the 1 GiB leaf"
    );
    let (level, slot) = pgtable::leaf(&w.mem, mm.root(), at).unwrap();
    assert_eq!(level, Level::Pud);
    assert!(slot.read().is_huge());
    assert_eq!(pgtable::translate(&w.mem, mm.root(), at), Some(pa(0x1234_5678)));
}

/// A physical range no frame of the simulated memory is in (its frames start at 1 MiB
/// and grow by far less than 1 GiB in a test): a caller's range that mm must not free.
const RANGE: u64 = 0x40_0000_0000;

#[test]
fn map_1g_maps_the_callers_range_with_a_level_3_leaf() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(X)]);
    let flags = EntryFlags::NO_EXECUTE;
    pgtable::map_1g(&mm.lock(), &w.mem, va(G), pa(RANGE), flags).unwrap();
    assert_eq!(levels(&w, &mm, va(G + 0x1234_5678)), [Level::Pgd, Level::Pud]);
    assert_eq!(
        pgtable::translate(&w.mem, mm.root(), va(G + 0x1234_5678)),
        Some(pa(RANGE + 0x1234_5678))
    );
    let (_, slot) = pgtable::leaf(&w.mem, mm.root(), va(G)).unwrap();
    assert_eq!(slot.read(), Entry::huge_page(pa(RANGE), flags));
    // Where a table already is (the one holding X), or the leaf already is: refused.
    let x_gig = VirtAddr::new(X).align_down(Level::Pud);
    assert_eq!(
        pgtable::map_1g(&mm.lock(), &w.mem, x_gig, pa(RANGE), flags),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(
        pgtable::map_1g(&mm.lock(), &w.mem, va(G), pa(RANGE), flags),
        Err(MapError::AlreadyMapped)
    );
}

#[test]
#[should_panic(expected = "is not 1 GiB-aligned")]
fn map_1g_refuses_an_unaligned_range() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(X)]);
    let _ = pgtable::map_1g(&mm.lock(), &w.mem, va(G), pa(RANGE + (2 << 20)), EntryFlags::NONE);
}

#[test]
fn unmapping_a_1g_page_frees_its_pud_table_and_nothing_of_its_range() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(X)]);
    pgtable::map_1g(&mm.lock(), &w.mem, va(G), pa(RANGE), EntryFlags::NONE).unwrap();
    let pud_table = PathWalk::new(&w.mem, mm.root(), va(G)).last().unwrap().table;
    let live = w.mem.live();
    let ctx = w.ctx();
    let g = on_cpu(0, || {
        let locked = mm.lock();
        let mut g = MmuGather::new(&ctx, &locked);
        unmap_range(&mut g, va(G), va(G + (1 << 30)));
        let seen = (g.cleared, g.freed_tables, g.pending_pages());
        g.finish();
        w.freer().drain(&irqs_on());
        seen
    });
    let (cleared, freed_tables, pages) = g;
    assert!(
        cleared.puds && cleared.p4ds && !cleared.pmds && !cleared.ptes,
        "{cleared:?}"
    );
    assert_eq!(cleared.stride(), Level::Pud, "one flush per gigabyte");
    assert!(freed_tables, "the PUD table went: lazy CPUs must be told");
    assert_eq!(pages, 0, "nothing of the range is queued to be freed");
    assert_eq!(pgtable::translate(&w.mem, mm.root(), va(G)), None);
    assert_eq!(
        *w.mem.freed_tables.lock().unwrap(),
        [pud_table],
        "only the PUD table"
    );
    assert_eq!(w.mem.live(), live - 1);
    assert!(pgtable::translate(&w.mem, mm.root(), va(X)).is_some(), "X stays");
}

#[test]
fn a_1g_page_is_not_shared_as_a_table_nor_unshared() {
    let w = World::new(BackendKind::NativeIpi, true);
    let owner = with_page_size_entry(&w, Level::Pud);
    let other = AddressSpace::new(w.mem.alloc_frame().unwrap());
    assert_eq!(
        share_pmd_table(&w.mem, &owner.lock(), &other.lock(), va(G)),
        Err(ShareError::NothingToShare)
    );
    assert!(unshare_pmd_table(&w.ctx(), &owner.lock(), va(G)).is_none());
    assert_eq!(
        pgtable::translate(&w.mem, owner.root(), va(G)),
        Some(pa(0)),
        "the 1 GiB page is still mapped"
    );
}

#[test]
fn the_page_size_bit_at_the_root_is_neither_a_table_nor_a_leaf() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = with_page_size_entry(&w, Level::Pgd);
    let at = va(G + 0x5000);
    assert_eq!(levels(&w, &mm, at), [Level::Pgd]);
    assert!(pgtable::leaf(&w.mem, mm.root(), at).is_none());
    assert_eq!(pgtable::translate(&w.mem, mm.root(), at), None);
    let frame = w.mem.alloc_frame().unwrap();
    assert_eq!(
        pgtable::map_4k(&mm.lock(), &w.mem, at, frame, EntryFlags::WRITABLE),
        Err(MapError::AlreadyMapped)
    );
    w.mem.free_frame(frame);
}

#[test]
#[should_panic(expected = "that gatherOS does not unmap")]
fn unmapping_under_the_page_size_bit_at_the_root_panics() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = with_page_size_entry(&w, Level::Pgd);
    unmap(&w, &mm, va(G), va(G + 0x1000));
}
