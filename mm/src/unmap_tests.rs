//! Host tests of the unmap walk's shape: it reads each table once on its way down (one
//! entry per page, table or hole in the range) and once more to see whether a table it
//! cleared in became empty; never a walk from the root per page.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use crate::addr::{PhysAddr, USER_END, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::gather::GatherCtx;
use crate::hw::{BackendKind, PhysMem};
use crate::level::{ENTRIES, Level};
use crate::pt_walk::PathWalk;
use crate::sim::{World, irqs_on, munmap, on_cpu, va};

/// Physical memory that counts, per frame, the entry accesses made through it
/// ([`PhysMem::word`]: every read and every clear of an entry goes through one).
struct CountingMem<'a> {
    inner: &'a dyn PhysMem,
    words: Mutex<HashMap<PhysAddr, u64>>,
}

impl CountingMem<'_> {
    fn accesses(&self, frame: PhysAddr) -> u64 {
        self.words.lock().unwrap().get(&frame).copied().unwrap_or(0)
    }
}

impl PhysMem for CountingMem<'_> {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        self.inner.alloc_frame()
    }
    fn free_frame(&self, frame: PhysAddr) {
        self.inner.free_frame(frame)
    }
    fn word(&self, frame: PhysAddr, index: usize) -> &AtomicU64 {
        *self.words.lock().unwrap().entry(frame).or_default() += 1;
        self.inner.word(frame, index)
    }
    fn free_table(&self, table: PhysAddr) {
        self.inner.free_table(table)
    }
    fn alloc_huge(&self) -> Option<PhysAddr> {
        self.inner.alloc_huge()
    }
    fn free_huge(&self, block: PhysAddr) {
        self.inner.free_huge(block)
    }
}

/// The tables on the way to `pages`, the root first: (level, table, how many of its
/// entries are on those ways).
fn tables_on_the_way(w: &World, mm: &AddressSpace, pages: &[VirtAddr]) -> Vec<(Level, PhysAddr, usize)> {
    let mut seen: Vec<(Level, PhysAddr, HashSet<usize>)> = Vec::new();
    for &page in pages {
        for step in PathWalk::new(&w.mem, mm.root(), page) {
            let index = step.level.index(page);
            match seen.iter_mut().find(|t| t.1 == step.table) {
                Some(t) => {
                    t.2.insert(index);
                }
                None => seen.push((step.level, step.table, HashSet::from([index]))),
            }
        }
    }
    seen.into_iter().map(|(l, t, i)| (l, t, i.len())).collect()
}

/// Unmaps `[start, end)` of `mm` through a gather whose memory counts entry accesses;
/// finishes and drains the freer. Returns the counts, per frame.
fn unmap_counting<'w>(w: &'w World, mm: &AddressSpace, start: VirtAddr, end: VirtAddr) -> CountingMem<'w> {
    let counting = CountingMem {
        inner: &w.mem,
        words: Mutex::new(HashMap::new()),
    };
    let base = w.ctx();
    let ctx = GatherCtx {
        mem: &counting,
        ..base
    };
    on_cpu(0, || {
        munmap(&ctx, mm, start, end);
        w.freer().drain(&irqs_on());
    });
    counting
}

/// Panics, listing them, if any of `tables` (level, table, bound) had more entry
/// accesses than its bound.
#[track_caller]
fn assert_within(what: &str, counting: &CountingMem, tables: &[(Level, PhysAddr, usize)]) {
    let over: Vec<String> = tables
        .iter()
        .filter_map(|&(level, table, bound)| {
            let reads = counting.accesses(table);
            (reads > bound as u64)
                .then(|| format!("{level:?} table {table:#x}: {reads} entry accesses, bound {bound}"))
        })
        .collect();
    assert!(
        over.is_empty(),
        "{what} read tables more than once:\n  {}",
        over.join("\n  ")
    );
}

/// The emptiness scan the walk may make of a table below the root it changed.
fn scan(level: Level) -> usize {
    if level == Level::ROOT { 0 } else { ENTRIES }
}

#[test]
fn an_unmap_over_several_tables_reads_each_table_once_not_once_per_page() {
    let w = World::new(BackendKind::NativeIpi, true);
    // 3 * 512 + 2 pages from one page below a 1 GiB boundary: five PTE tables in two
    // PMD tables, under one PUD table and one root entry.
    let first = 0x4000_0000 - 4096;
    let n = 3 * ENTRIES as u64 + 2;
    let pages: Vec<VirtAddr> = (0..n).map(|p| va(first + p * 4096)).collect();
    let mm = w.mm_with(pages.iter().copied());
    // Each table: its entries in the range once on the way down, and (below the root)
    // one emptiness scan.
    let bounds: Vec<_> = tables_on_the_way(&w, &mm, &pages)
        .into_iter()
        .map(|(level, table, entries)| (level, table, entries + scan(level)))
        .collect();
    let counting = unmap_counting(&w, &mm, va(first), va(first + n * 4096));
    assert_within(&format!("an unmap of {n} pages"), &counting, &bounds);
    assert_eq!(
        w.mem.freed_tables.lock().unwrap().len(),
        5 + 2 + 1,
        "every table below the root freed"
    );
}

#[test]
fn an_unmap_of_a_sparse_range_skips_each_hole_as_one_entry() {
    let w = World::new(BackendKind::NativeIpi, true);
    // Two pages in the whole lower half, in different root entries: everything else is
    // holes, at every level.
    let pages = [va(0x4000_0000), va(0x7f00_0000_0000)];
    let mm = w.mm_with(pages);
    // The root: each of its 256 lower-half entries once. Below it: each entry once at
    // most, and one emptiness scan.
    let bounds: Vec<_> = tables_on_the_way(&w, &mm, &pages)
        .into_iter()
        .map(|(level, table, _)| {
            let entries = if level == Level::ROOT {
                ENTRIES / 2
            } else {
                ENTRIES
            };
            (level, table, entries + scan(level))
        })
        .collect();
    let counting = unmap_counting(&w, &mm, va(0), USER_END);
    assert_within("an unmap of the lower half holding two pages", &counting, &bounds);
    assert_eq!(
        w.mem.freed_tables.lock().unwrap().len(),
        2 * 3,
        "both pages' tables below the root freed"
    );
}

/// What `unmap_range(start, end)` leaves mapped of `pages`, `start` and `end` not aligned.
fn left_after_unmap(
    w: &World,
    mm: &AddressSpace,
    pages: &[VirtAddr],
    start: VirtAddr,
    end: VirtAddr,
) -> Vec<VirtAddr> {
    let ctx = w.ctx();
    on_cpu(0, || {
        munmap(&ctx, mm, start, end);
    });
    pages
        .iter()
        .copied()
        .filter(|&p| crate::pgtable::translate(&w.mem, mm.root(), p).is_some())
        .collect()
}

#[test]
fn an_unmap_clears_every_page_its_unaligned_range_touches_and_no_other() {
    let w = World::new(BackendKind::NativeIpi, true);
    let pages: Vec<VirtAddr> = (0..4).map(|p| va(0x4000_0000 + p * 4096)).collect();
    let mm = w.mm_with(pages.iter().copied());
    // From the middle of page 1 to just past the start of page 2.
    let left = left_after_unmap(&w, &mm, &pages, pages[1] + 0x800, pages[2] + 0x10);
    assert_eq!(left, [pages[0], pages[3]], "pages 1 and 2 go, 0 and 3 stay");
}

#[test]
fn an_unmap_that_starts_inside_a_2m_page_clears_the_whole_page() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with([va(0x4000_0000)]); // the tables down to level 2
    let at = va(0x4000_0000 + (2 << 20));
    let block = w.mem.alloc_huge().unwrap();
    crate::pgtable::map_2m(&mm.lock(), &w.mem, at, block, crate::entry::EntryFlags::WRITABLE).unwrap();
    let probes = [va(0x4000_0000), at, at + 0x1f_f000];
    let left = left_after_unmap(&w, &mm, &probes, at + 0x10_0000, at + 0x10_1000);
    assert_eq!(
        left,
        [probes[0]],
        "the 2 MiB page goes whole; the 4 KiB page below it stays"
    );
    assert!(
        w.mem.freed.lock().unwrap().contains(&block),
        "the 2 MiB block went back after the flush"
    );
}
