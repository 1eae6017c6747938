//! Host tests of the page-table types, the one walk, and the lock-free walker that uses
//! it (found, not mapped, not loaded, backed off, poisoned).

use crate::addr::VirtAddr;
use crate::entry::{Entry, EntryFlags};
use crate::hw::{BackendKind, PhysMem};
use crate::level::{ENTRIES, Level};
use crate::pgtable::{self, MapError};
use crate::pt_walk::PathWalk;
use crate::sim::{SimWalker, World, irqs_off, irqs_on, on_cpu, va};
use crate::stats::TlbEvent;
use crate::walker::{Walk, walk};

const X: u64 = 0x40_0000_1000;

#[test]
fn levels_know_their_shift_span_index_and_neighbours() {
    let shifts: Vec<u32> = Level::TOP_DOWN.iter().map(|l| l.shift()).collect();
    assert_eq!(shifts, [39, 30, 21, 12]);
    for level in Level::TOP_DOWN {
        assert_eq!(level.span(), 1 << level.shift());
        assert_eq!(level.index(va(5 << level.shift())), 5);
        assert_eq!(
            level.index(va(level.span() * ENTRIES as u64)),
            0,
            "nine bits only"
        );
        if let Some(below) = level.below() {
            assert_eq!(below.above(), Some(level));
            assert_eq!(level.shift() - below.shift(), 9);
        }
    }
    assert_eq!(Level::ROOT.above(), None);
    assert_eq!(Level::Pte.below(), None);
    let v = va(0x7f12_3456_7abc);
    assert_eq!(v.align_down(Level::Pmd) + v.offset_in(Level::Pmd), v);
}

#[test]
fn the_walk_ends_at_the_first_absent_entry_or_at_the_leaf() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(X)]);
    let levels = |at: u64| -> Vec<Level> {
        PathWalk::new(&w.mem, mm.root(), va(at))
            .map(|s| s.level)
            .collect()
    };
    assert_eq!(levels(X), Level::TOP_DOWN);
    assert_eq!(
        levels(X + 4096),
        Level::TOP_DOWN,
        "an absent PTE is the last step"
    );
    assert_eq!(levels(X + (1 << 30)), [Level::Pgd, Level::Pud]);
    assert_eq!(levels(0x7f00_0000_0000), [Level::Pgd]);
    let last = PathWalk::new(&w.mem, mm.root(), va(X)).last().unwrap();
    assert!(last.is_leaf());
    let lockless = PathWalk::lockless(&w.mem, mm.root(), va(X)).last().unwrap();
    assert_eq!(lockless.entry, last.entry);
    let (level, slot) = pgtable::leaf(&w.mem, mm.root(), va(X)).unwrap();
    assert_eq!((level, slot.read()), (Level::Pte, last.entry));
}

#[test]
fn mapping_over_a_huge_page_or_a_mapped_page_is_refused() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(X)]);
    let locked = mm.lock();
    let frame = w.mem.alloc_frame().unwrap();
    assert_eq!(
        pgtable::map_4k(&locked, &w.mem, va(X), frame, EntryFlags::WRITABLE),
        Err(MapError::AlreadyMapped)
    );
    let huge = w.mem.alloc_huge().unwrap();
    let at = va(X + (1 << 30)).align_down(Level::Pmd);
    pgtable::map_2m(&locked, &w.mem, at, huge, EntryFlags::WRITABLE).unwrap();
    assert_eq!(
        pgtable::map_4k(&locked, &w.mem, at + 4096, frame, EntryFlags::WRITABLE),
        Err(MapError::AlreadyMapped)
    );
    assert_eq!(
        pgtable::translate(&w.mem, mm.root(), at + 0x1234),
        Some(huge + 0x1234)
    );
    w.mem.free_frame(frame);
}

/// `mm` with a 4 KiB page at `X` whose word at `X + 8` holds `value`; cpu 0 runs it.
fn walked_world(value: u64) -> (World, crate::addr_space::AddressSpace) {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(X)]);
    let frame = pgtable::translate(&w.mem, mm.root(), va(X)).unwrap();
    w.mem
        .word(frame, 1)
        .store(value, core::sync::atomic::Ordering::SeqCst);
    on_cpu(0, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    (w, mm)
}

fn walk_on_cpu0(
    w: &World,
    mm: &crate::addr_space::AddressSpace,
    at: VirtAddr,
    at_preemption: &(dyn Fn() + Sync),
) -> Walk {
    let hw = SimWalker {
        tlb: &w.m.tlb,
        at_preemption,
    };
    on_cpu(0, || {
        walk(&mut irqs_on(), &hw, &w.walks, &w.mem, &w.m.stats, mm, at)
    })
}

#[test]
fn the_walker_reads_the_mapped_word_or_nothing() {
    let (w, mm) = walked_world(0xfeed);
    let frame = pgtable::translate(&w.mem, mm.root(), va(X)).unwrap();
    assert_eq!(
        walk_on_cpu0(&w, &mm, va(X + 8), &|| {}),
        Walk::Page {
            pa: frame + 8,
            value: 0xfeed
        }
    );
    assert_eq!(walk_on_cpu0(&w, &mm, va(X + 4096), &|| {}), Walk::NotMapped);
    let other = w.mm_with([va(X)]);
    assert_eq!(
        walk_on_cpu0(&w, &other, va(X), &|| {}),
        Walk::NotLoaded,
        "only the address space in this CPU's CR3"
    );
}

#[test]
fn the_walker_reads_through_a_2m_page() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = crate::addr_space::AddressSpace::new(w.mem.alloc_frame().unwrap());
    let huge = w.mem.alloc_huge().unwrap();
    pgtable::map_2m(&mm.lock(), &w.mem, va(X & !0x1f_ffff), huge, EntryFlags::WRITABLE).unwrap();
    let off = (X & 0x1f_ffff) + 0x10;
    w.mem
        .word(huge + (off & !0xfff), (off as usize & 0xfff) / 8)
        .store(7, core::sync::atomic::Ordering::SeqCst);
    on_cpu(0, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    assert_eq!(
        walk_on_cpu0(&w, &mm, va(X + 0x10), &|| {}),
        Walk::Page {
            pa: huge + off,
            value: 7
        }
    );
}

#[test]
fn the_walker_backs_off_when_the_pte_changes_under_it() {
    let (w, mm) = walked_world(1);
    let unmap_under_the_walker = || {
        let (_, slot) = pgtable::leaf(&w.mem, mm.root(), va(X)).unwrap();
        slot.clear(&mm.lock());
    };
    assert_eq!(
        walk_on_cpu0(&w, &mm, va(X + 8), &unmap_under_the_walker),
        Walk::NotMapped
    );
    // With the PTE back, a change made after the walker read it is what it must see.
    let frame = w.mem.alloc_frame().unwrap();
    pgtable::map_4k(&mm.lock(), &w.mem, va(X), frame, EntryFlags::WRITABLE).unwrap();
    let pmd = PathWalk::new(&w.mem, mm.root(), va(X))
        .find(|s| s.level == Level::Pmd)
        .unwrap();
    let moved = std::sync::atomic::AtomicBool::new(false);
    let move_the_pmd = || {
        if !moved.swap(true, core::sync::atomic::Ordering::SeqCst) {
            let locked = mm.lock();
            let entry = pmd.slot.clear(&locked);
            pmd.slot.install(
                &locked,
                Entry::from_raw(entry.raw() | EntryFlags::NO_EXECUTE.bits()),
            );
        }
    };
    assert_eq!(walk_on_cpu0(&w, &mm, va(X + 8), &move_the_pmd), Walk::BackedOff);
}

#[test]
fn the_walker_counts_a_read_of_a_freed_table_as_a_poison_hit() {
    let (w, mm) = walked_world(1);
    let pte_table = PathWalk::new(&w.mem, mm.root(), va(X)).last().unwrap().table;
    for i in 0..ENTRIES {
        w.mem
            .word(pte_table, i)
            .store(Entry::POISON.raw(), core::sync::atomic::Ordering::SeqCst);
    }
    assert_eq!(walk_on_cpu0(&w, &mm, va(X), &|| {}), Walk::Poisoned);
    assert_eq!(w.m.stats.total().get(TlbEvent::PoisonHits), 1);
    for i in 0..ENTRIES {
        w.mem
            .word(pte_table, i)
            .store(0, core::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn the_walker_reads_through_a_1g_page() {
    // A 1 GiB page at physical 0 (nothing in gatherOS makes one: the bootloader may):
    // the offset into it is that of a frame of the simulated memory.
    let (w, mm) = walked_world(0);
    let frame = w.mem.alloc_frame().unwrap();
    w.mem
        .word(frame, 1)
        .store(9, core::sync::atomic::Ordering::SeqCst);
    let g = va(0x80_4000_0000);
    w.put_page_size_entry(&mm, g, Level::Pud);
    assert_eq!(
        walk_on_cpu0(&w, &mm, g + frame.as_u64() + 8, &|| {}),
        Walk::Page {
            pa: frame + 8,
            value: 9
        }
    );
}

#[test]
fn the_walker_finds_nothing_under_the_page_size_bit_at_the_root() {
    let (w, mm) = walked_world(0);
    let g = va(0x80_4000_0000);
    w.put_page_size_entry(&mm, g, Level::Pgd);
    assert_eq!(walk_on_cpu0(&w, &mm, g, &|| {}), Walk::NotMapped);
}

#[test]
fn the_unpublished_walk_reads_the_same_but_leaves_no_marker() {
    use crate::cpumask::CpuMask;
    use crate::walk_marker::WalkTag;
    use crate::walker::walk_unpublished;
    use core::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let (w, mm) = walked_world(0xfeed);
    let cpu0: CpuMask = [0].into_iter().collect();
    // Read mid-walk (at the walker's preemption point): is CPU 0 marked as walking `mm`?
    let marked = AtomicBool::new(false);
    let look = || marked.store(!w.walks.scan(WalkTag::of(&mm), &cpu0).is_empty(), SeqCst);
    let hw = SimWalker {
        tlb: &w.m.tlb,
        at_preemption: &look,
    };
    let published = on_cpu(0, || {
        walk(&mut irqs_on(), &hw, &w.walks, &w.mem, &w.m.stats, &mm, va(X + 8))
    });
    assert!(marked.load(SeqCst), "the walk is published while it runs");
    let plain = on_cpu(0, || {
        walk_unpublished(&mut irqs_on(), &hw, &w.mem, &w.m.stats, &mm, va(X + 8))
    });
    assert!(!marked.load(SeqCst), "the unpublished walk is not");
    assert_eq!(plain, published);
    assert!(matches!(plain, Walk::Page { value: 0xfeed, .. }), "{plain:?}");
    let other = w.mm_with([va(X)]);
    assert_eq!(
        on_cpu(0, || walk_unpublished(
            &mut irqs_on(),
            &hw,
            &w.mem,
            &w.m.stats,
            &other,
            va(X)
        )),
        Walk::NotLoaded
    );
}
