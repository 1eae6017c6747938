//! Host tests of what each simulated CPU's TLB can still reach after collapse, unshare,
//! unmap and release, and of the orderings `switch_mm` and the flush handler rely on. The
//! simulated TLB keeps a translation until `flush_page` of that page, `flush_all` or a
//! root load, as QEMU's software TLB does; unlike QEMU's it also has paging-structure
//! caches, filled at any time from the loaded root (see `sim.rs`), so that a CPU left
//! pointing into a freed table is caught (here by a walk or the report; in every test
//! by the check when its [`World`] is dropped). The last tests check the model itself.

use crate::addr::{PhysAddr, VirtAddr};
use crate::addr_space::AddressSpace;
use crate::collapse::collapse;
use crate::flush::{FLUSH_ALL, FlushInfo, Mmu};
use crate::hw::{LocalTlb, PhysMem, RunningCpu};
use crate::irq::IrqsOff;
use crate::level::Level;
use crate::pt_walk::PathWalk;
use crate::share::{share_pmd_table, unshare_pmd_table};
use crate::sim::{
    Machine, Pointer, SimBroadcast, SimMem, SkipLazy, World, irqs_off, irqs_on, munmap, on_cpu, va,
};

const REGION: VirtAddr = VirtAddr::new(0x4000_0000);

/// What these tests add to the shared [`World`].
trait Probe {
    fn run_and_touch(&self, cpu: usize, mm: &AddressSpace, pages: &[VirtAddr]);
    fn stale(&self, mm: &AddressSpace, pages: &[VirtAddr]) -> Vec<(usize, VirtAddr)>;
}

impl Probe for World {
    /// CPU `cpu` runs `mm` and reads every page of `pages` (its TLB caches them).
    fn run_and_touch(&self, cpu: usize, mm: &AddressSpace, pages: &[VirtAddr]) {
        on_cpu(cpu, || {
            irqs_off(|off| self.m.mmu().switch_mm(off, mm));
            pages.iter().for_each(|&va| self.m.tlb.touch(va));
        });
    }
    /// (cpu, va) of every translation of `pages` in `mm` still cached by CPUs 0..4.
    fn stale(&self, mm: &AddressSpace, pages: &[VirtAddr]) -> Vec<(usize, VirtAddr)> {
        (0..4)
            .flat_map(|c| pages.iter().map(move |&va| (c, va)))
            .filter(|&(c, va)| self.m.tlb.cached(c, mm.root(), va))
            .collect()
    }
}

#[test]
fn collapse_flushes_every_4k_translation_under_the_cleared_entry() {
    let w = World::with_machine(Machine::new(4), true);
    let pages: Vec<VirtAddr> = (0..512).map(|i| REGION + i * 4096).collect();
    let mm = w.mm_with(pages.iter().copied());
    w.run_and_touch(1, &mm, &pages);
    w.run_and_touch(0, &mm, &pages);
    let ctx = w.ctx();
    on_cpu(0, || collapse(&ctx, &mm.lock(), REGION)).expect("collapse");
    let stale = w.stale(&mm, &pages);
    assert!(
        stale.is_empty(),
        "collapse left {} translations, e.g. {:x?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
}

#[test]
fn unshare_flushes_every_translation_of_the_gigabyte() {
    let w = World::with_machine(Machine::new(4), true);
    let pages: Vec<VirtAddr> = [0u64, 1, 511]
        .iter()
        .flat_map(|&block| [0u64, 7].map(|p| REGION + (block << 21) + (p << 12)))
        .collect();
    let owner = w.mm_with(pages.iter().copied());
    let other = AddressSpace::new(w.mem.alloc_frame().unwrap());
    share_pmd_table(&w.mem, &owner.lock(), &other.lock(), REGION).expect("share");
    w.run_and_touch(1, &other, &pages);
    w.run_and_touch(2, &other, &pages);
    let ctx = w.ctx();
    on_cpu(0, || unshare_pmd_table(&ctx, &other.lock(), REGION)).expect("was shared");
    let stale = w.stale(&other, &pages);
    assert!(stale.is_empty(), "unshare left {stale:x?}");
}

#[test]
fn release_makes_lazy_cpus_leave_when_the_backend_runs_no_handler() {
    // INVLPGB-like: the flush invalidates by "hardware" and runs nothing on other CPUs.
    let w = World::with_machine(Machine::with_backend(4, Box::new(SimBroadcast)), true);
    let before = w.mem.live();
    let mm = w.mm_with([REGION]);
    on_cpu(1, || {
        irqs_off(|off| w.m.mmu().switch_mm(off, &mm));
        w.m.mmu().enter_lazy_tlb();
    });
    let ctx = w.ctx();
    on_cpu(0, || crate::release::release(&ctx, &mm, || false))
        .expect("lazy cpu 1 still holds the address space");
    assert!(w.m.states.cpu(1).has_loaded(&w.m.kernel));
    assert_eq!(*w.m.tlb.root[1].lock().unwrap(), w.m.kernel.root(), "cpu 1's CR3");
    on_cpu(0, || w.freer().drain(&irqs_on()));
    assert_eq!(w.mem.live(), before);
}

/// A TLB that checks, at the instant of every root load, that the CPU is still in the
/// mask of the address space whose root it is leaving.
struct CheckingTlb<'a> {
    inner: &'a crate::sim::SimTlb,
    leaving: &'a AddressSpace,
}

impl LocalTlb for CheckingTlb<'_> {
    fn cpu(&self) -> &dyn RunningCpu {
        self.inner.cpu()
    }
    fn flush_page(&self, va: VirtAddr) {
        self.inner.flush_page(va)
    }
    fn flush_all(&self) {
        self.inner.flush_all()
    }
    fn load_root(&self, root: PhysAddr) {
        let cpu = self.cpu().this_cpu();
        assert!(
            self.leaving.cpumask.contains(cpu),
            "cpu {cpu} left the mask of {:?} while its root was still in CR3",
            self.leaving
        );
        self.inner.load_root(root)
    }
}

#[test]
fn switch_mm_leaves_the_old_mask_only_after_loading_the_new_root() {
    let m = Machine::new(2);
    let mem = SimMem::new();
    let a = AddressSpace::new(mem.alloc_frame().unwrap());
    let b = AddressSpace::new(mem.alloc_frame().unwrap());
    on_cpu(1, || irqs_off(|off| m.mmu().switch_mm(off, &a)));
    let tlb = CheckingTlb {
        inner: &m.tlb,
        leaving: &a,
    };
    let mmu = Mmu { tlb: &tlb, ..m.mmu() };
    on_cpu(1, || irqs_off(|off| mmu.switch_mm(off, &b)));
    assert!(!a.cpumask.contains(1) && b.cpumask.contains(1));
}

#[test]
#[should_panic(expected = "with interrupts enabled")]
/// A handler cannot be called without the proof (a compile error); the interrupt entry
/// that makes the proof from the flag refuses while interrupts are on.
fn the_flush_handler_refuses_to_run_with_interrupts_on() {
    let m = Machine::new(2);
    let mem = SimMem::new();
    let mm = AddressSpace::new(mem.alloc_frame().unwrap());
    on_cpu(1, || irqs_off(|off| m.mmu().switch_mm(off, &mm)));
    let info = FlushInfo {
        mm: &mm,
        start: va(0),
        end: FLUSH_ALL,
        stride: Level::Pte,
        freed_tables: false,
        new_gen: mm.tlb_gen.fetch_add(1, core::sync::atomic::Ordering::SeqCst) + 1,
        initiator: 0,
    };
    on_cpu(1, || {
        IrqsOff::entered(&crate::sim::SimCpu, "runs a flush handler", |off| {
            m.mmu().flush_tlb_func(off, &info)
        })
    });
}

#[test]
#[should_panic(expected = "with interrupts disabled")]
/// A wait cannot be called with the proof in hand (the `compile_fail` example in
/// [`crate::irq`]); a capability to wait made from the flag refuses while interrupts
/// are off.
fn a_wait_refuses_to_start_with_interrupts_off() {
    let w = World::new(crate::hw::BackendKind::NativeIpi, true);
    on_cpu(0, || irqs_off(|_off| w.freer().drain(&irqs_on())));
}

/// CPU 1 runs `mm` (a page at `REGION`), reads the page (its walk caches the way
/// there) and turns lazy; CPU 0 unmaps the page, which empties the PTE, PMD and PUD
/// tables, with the `lazy` fault ([`SkipLazy`]) if `skip_lazy`; the tables' grace period
/// passes and they are freed. Returns the freed tables, top down (PUD, PMD and PTE table).
fn lazy_cpu_after_an_unmap_that_freed_tables(w: &World, mm: &AddressSpace, skip_lazy: bool) -> Vec<PhysAddr> {
    let tables: Vec<PhysAddr> = PathWalk::new(&w.mem, mm.root(), REGION)
        .skip(1)
        .map(|step| step.table)
        .collect();
    on_cpu(1, || {
        irqs_off(|off| w.m.mmu().switch_mm(off, mm));
        w.m.tlb.touch(REGION);
        w.m.mmu().enter_lazy_tlb();
    });
    let fault = SkipLazy {
        inner: &*w.m.backend,
        states: &w.m.states,
    };
    let mut ctx = w.ctx();
    if skip_lazy {
        ctx.mmu.backend = &fault;
    }
    on_cpu(0, || {
        munmap(&ctx, mm, REGION, REGION + 4096);
        w.freer().drain(&irqs_on());
    });
    let mut freed = w.mem.freed_tables.lock().unwrap().clone();
    freed.reverse(); // freed bottom up
    assert_eq!(freed, tables, "PUD, PMD and PTE tables freed");
    tables
}

/// The next page of the region: not in any TLB, so an access to it walks.
const NEIGHBOUR: VirtAddr = VirtAddr::new(REGION.as_u64() + 4096);

#[test]
#[should_panic(expected = "cpu 1: walk of 0x40001000 from its PDE cache entry for [0x40000000, +0x200000)")]
fn a_lazy_cpu_skipped_despite_freed_tables_walks_into_them() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    lazy_cpu_after_an_unmap_that_freed_tables(&w, &mm, true);
    // CPU 1 still holds `mm` lazily: its hardware may walk the region at any time.
    on_cpu(1, || w.m.tlb.touch(NEIGHBOUR));
}

#[test]
fn a_lazy_cpu_skipped_despite_freed_tables_is_reported_until_it_loads_cr3() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    let tables = lazy_cpu_after_an_unmap_that_freed_tables(&w, &mm, true);
    let mut found: Vec<(usize, Level, PhysAddr)> =
        w.m.tlb
            .pointers_into_freed_tables()
            .into_iter()
            .map(|f| match f.via {
                Pointer::Cache { level, .. } => (f.cpu, level, f.table),
                Pointer::Cr3 => panic!("CR3 holds a freed table: {f}"),
            })
            .collect();
    let mut want: Vec<(usize, Level, PhysAddr)> = [Level::Pgd, Level::Pud, Level::Pmd]
        .into_iter()
        .zip(tables)
        .map(|(level, table)| (1, level, table))
        .collect();
    found.sort();
    want.sort();
    assert_eq!(found, want, "cpu 1's PML4, PDPTE and PDE cache entries");
    // Loading CR3 drops every paging-structure-cache entry (SDM 4.10.4.1).
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &w.m.kernel)));
    w.assert_no_cached_pointer_into_freed_tables();
}

#[test]
#[should_panic(expected = "cpu 1: PDE cache entry for [0x40000000, +0x200000)")]
fn a_world_dropped_with_a_cpu_pointing_into_freed_tables_reports_it() {
    // No check called: the world's end does it.
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    lazy_cpu_after_an_unmap_that_freed_tables(&w, &mm, true);
}

#[test]
fn a_lazy_cpu_interrupted_for_freed_tables_leaves_and_walks_nothing_freed() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    lazy_cpu_after_an_unmap_that_freed_tables(&w, &mm, false);
    assert!(
        w.m.states.cpu(1).has_loaded(&w.m.kernel),
        "cpu 1 left the address space"
    );
    on_cpu(1, || w.m.tlb.touch(NEIGHBOUR));
    w.assert_no_cached_pointer_into_freed_tables();
}

/// A second region, in another root entry: its tables share none with `REGION`'s.
const FAR: VirtAddr = VirtAddr::new(0x80_4000_0000);

#[test]
fn a_loaded_root_fills_the_caches_for_addresses_never_used() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION, FAR]);
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    let cached: Vec<(Level, VirtAddr)> = w.m.tlb.psc[1].lock().unwrap().keys().copied().collect();
    assert_eq!(
        cached,
        [
            (Level::Pmd, REGION),
            (Level::Pmd, FAR),
            (Level::Pud, REGION),
            (Level::Pud, FAR),
            (Level::Pgd, va(0)),
            (Level::Pgd, FAR.align_down(Level::Pgd)),
        ],
        "PDE, PDPTE and PML4 cache entries for both regions, neither touched"
    );
    assert!(!w.m.tlb.cached(1, mm.root(), REGION), "no leaf without an access");
}

#[test]
fn invlpg_drops_every_paging_structure_cache_entry_but_only_its_pages_translation() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION, FAR]);
    on_cpu(1, || {
        irqs_off(|off| w.m.mmu().switch_mm(off, &mm));
        w.m.tlb.touch(REGION);
        w.m.tlb.touch(FAR);
    });
    // Unlink and free FAR's page table with no flush at all (what no mm code does).
    let pde = PathWalk::new(&w.mem, mm.root(), FAR)
        .find(|step| step.level == Level::Pmd)
        .unwrap();
    let page_table = pde.slot.clear(&mm.lock()).addr();
    w.mem.free_table(page_table);
    let found = w.m.tlb.pointers_into_freed_tables();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].cpu, found[0].table), (1, page_table));
    assert!(
        found[0]
            .to_string()
            .contains("PDE cache entry for [0x8040000000, +0x200000)"),
        "{}",
        found[0]
    );
    // INVLPG of an unrelated page drops every paging-structure-cache entry (SDM
    // 4.10.4.1), but of the TLB only that page's translation.
    on_cpu(1, || w.m.tlb.flush_page(REGION));
    w.assert_no_cached_pointer_into_freed_tables();
    assert!(!w.m.tlb.cached(1, mm.root(), REGION));
    assert!(
        w.m.tlb.cached(1, mm.root(), FAR),
        "the other page's translation stays"
    );
}

/// The tables on `at`'s path below the root, top down.
fn tables_on_the_way_to(w: &World, mm: &AddressSpace, at: VirtAddr) -> Vec<PhysAddr> {
    PathWalk::new(&w.mem, mm.root(), at)
        .skip(1)
        .map(|step| step.table)
        .collect()
}

/// CPU 1 runs `mm`, reads `huge` (a 1 GiB or 2 MiB leaf; its walk and the hardware's
/// speculative ones cache pointers into the tables above it) and turns lazy; CPU 0
/// unmaps `[huge, huge + len)` with the real protocol and the freed tables' grace period
/// passes. Returns the tables freed, top down.
fn lazy_cpu_after_unmapping_a_huge_leaf(
    w: &World,
    mm: &AddressSpace,
    huge: VirtAddr,
    len: u64,
) -> Vec<PhysAddr> {
    on_cpu(1, || {
        irqs_off(|off| w.m.mmu().switch_mm(off, mm));
        w.m.tlb.touch(huge);
        w.m.mmu().enter_lazy_tlb();
    });
    assert!(w.m.tlb.cached(1, mm.root(), huge), "cpu 1 read the huge page");
    let ctx = w.ctx();
    on_cpu(0, || {
        munmap(&ctx, mm, huge, huge + len);
        w.freer().drain(&irqs_on());
    });
    let mut freed = w.mem.freed_tables.lock().unwrap().clone();
    freed.reverse(); // freed bottom up
    freed
}

/// Unmapping a 1 GiB leaf frees only the PUD table above it (no PTE-level table goes):
/// the flush must still count as one that freed tables, so that lazy CPU 1, whose PML4
/// cache points to that PUD table, is interrupted and leaves.
#[test]
fn unmapping_a_1g_leaf_makes_a_lazy_cpu_drop_its_pointer_to_the_freed_pud_table() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    let huge = FAR.align_down(Level::Pud);
    // The caller's own range (no frame of the simulated memory is there).
    let range = crate::sim::pa(0x40_0000_0000);
    crate::pgtable::map_1g(
        &mm.lock(),
        &w.mem,
        huge,
        range,
        crate::entry::EntryFlags::WRITABLE,
    )
    .unwrap();
    let pud_table = tables_on_the_way_to(&w, &mm, huge);
    let freed = lazy_cpu_after_unmapping_a_huge_leaf(&w, &mm, huge, Level::Pud.span());
    assert_eq!(freed, pud_table, "only the PUD table is freed");
    w.assert_no_cached_pointer_into_freed_tables();
}

/// Maps a fresh 2 MiB block of the simulated memory at `va` in `mm`.
fn map_2m_block(w: &World, mm: &AddressSpace, va: VirtAddr) {
    let block = w.mem.alloc_huge().unwrap();
    crate::pgtable::map_2m(&mm.lock(), &w.mem, va, block, crate::entry::EntryFlags::WRITABLE).unwrap();
}

/// Unmapping a 2 MiB leaf alone in its PUD table frees the PMD and the PUD table (no PTE
/// table): lazy CPU 1, whose PML4 and PDPTE caches point to them, must leave.
#[test]
fn unmapping_a_2m_leaf_makes_a_lazy_cpu_drop_its_pointers_to_the_freed_pmd_and_pud_tables() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    let huge = FAR.align_down(Level::Pmd);
    map_2m_block(&w, &mm, huge);
    let tables = tables_on_the_way_to(&w, &mm, huge);
    assert_eq!(tables.len(), 2, "a PUD and a PMD table above the 2 MiB leaf");
    let freed = lazy_cpu_after_unmapping_a_huge_leaf(&w, &mm, huge, Level::Pmd.span());
    assert_eq!(freed, tables, "the PUD and the PMD table are freed");
    w.assert_no_cached_pointer_into_freed_tables();
}

/// Unmapping a 2 MiB leaf whose PUD table also leads to another gigabyte's mapping
/// (`REGION`'s page) frees only the PMD table: lazy CPU 1, whose PDPTE cache points to
/// it, must leave.
#[test]
fn unmapping_a_2m_leaf_makes_a_lazy_cpu_drop_its_pointer_to_the_freed_pmd_table_alone() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    // The next gigabyte after REGION's: the same PUD table, a PMD table of its own.
    let huge = REGION + Level::Pud.span();
    map_2m_block(&w, &mm, huge);
    let tables = tables_on_the_way_to(&w, &mm, huge);
    assert_eq!(
        tables[0],
        tables_on_the_way_to(&w, &mm, REGION)[0],
        "REGION's PUD table"
    );
    let freed = lazy_cpu_after_unmapping_a_huge_leaf(&w, &mm, huge, Level::Pmd.span());
    assert_eq!(freed, tables[1..], "only the PMD table is freed");
    w.assert_no_cached_pointer_into_freed_tables();
    assert!(
        crate::pgtable::translate(&w.mem, mm.root(), REGION).is_some(),
        "REGION's page stays"
    );
}

/// Records the cause and stride of every flush request, and sends it as asked.
#[derive(Default)]
struct Requests(std::sync::Mutex<Vec<(crate::gather::FlushCause, Level)>>);

impl crate::gather::FlushRequests for Requests {
    fn flush(
        &self,
        mmu: &crate::flush::Mmu,
        on: &mut crate::irq::IrqsOn,
        req: crate::gather::FlushRequest,
    ) -> crate::receipt::FlushReceipt {
        self.0.lock().unwrap().push((req.cause, req.stride));
        req.send(mmu, on)
    }
}

/// The seam the `stride` fault uses (`kernel/src/tlb/faults.rs`, `OwnStride`) tells a
/// collapse's and an unshare's flush from an unmap's by the request's cause, not by its
/// shape: an unmap of a whole aligned 2 MiB that frees its PTE table asks for the same
/// range and stride as a collapse, and must not be broken with it.
#[test]
fn each_flush_request_names_the_step_that_asks_for_it() {
    use crate::gather::FlushCause::{Collapse, Unmap, Unshare};
    let w = World::with_machine(Machine::new(4), true);
    let requests = Requests::default();
    let mut ctx = w.ctx();
    ctx.flushes = &requests;
    let block = |base: VirtAddr| (0..512).map(move |i| base + i * 4096);
    let collapsed = w.mm_with(block(REGION));
    on_cpu(0, || collapse(&ctx, &collapsed.lock(), REGION)).expect("collapse");
    let unmapped = w.mm_with(block(REGION));
    on_cpu(0, || {
        munmap(&ctx, &unmapped, REGION, REGION + Level::Pmd.span());
    });
    let owner = w.mm_with([REGION]);
    let other = AddressSpace::new(w.mem.alloc_frame().unwrap());
    share_pmd_table(&w.mem, &owner.lock(), &other.lock(), REGION).expect("share");
    on_cpu(0, || unshare_pmd_table(&ctx, &other.lock(), REGION)).expect("was shared");
    assert_eq!(
        *requests.0.lock().unwrap(),
        [(Collapse, Level::Pte), (Unmap, Level::Pte), (Unshare, Level::Pte)]
    );
}

/// CPUs 0 and 1 run `mm` and read `pages`; CPU 0 unmaps `[start, end)` through a gather.
/// The simulated memory refuses to free a data frame that a running CPU still caches a
/// translation to ([`World::with_machine`]), so a free before the flush panics here.
fn unmap_with_translations_cached(
    w: &World,
    mm: &AddressSpace,
    pages: &[VirtAddr],
    start: VirtAddr,
    end: VirtAddr,
) {
    w.run_and_touch(1, mm, pages);
    w.run_and_touch(0, mm, pages);
    let ctx = w.ctx();
    on_cpu(0, || {
        munmap(&ctx, mm, start, end);
    });
    let stale = w.stale(mm, pages);
    assert!(stale.is_empty(), "stale translations after the unmap: {stale:x?}");
}

#[test]
fn an_unmap_frees_its_4k_pages_only_after_the_flush_that_drops_their_translations() {
    let w = World::with_machine(Machine::new(4), true);
    let pages: Vec<VirtAddr> = (0..3).map(|i| REGION + i * 4096).collect();
    let mm = w.mm_with(pages.iter().copied());
    unmap_with_translations_cached(&w, &mm, &pages, REGION, REGION + 3 * 4096);
}

#[test]
fn an_unmap_frees_a_2m_block_only_after_the_flush_that_drops_its_translations() {
    let w = World::with_machine(Machine::new(4), true);
    let mm = w.mm_with([REGION]);
    let huge = FAR.align_down(Level::Pmd);
    map_2m_block(&w, &mm, huge);
    let pages = [huge, huge + 0x1000, huge + 0x1f_f000];
    unmap_with_translations_cached(&w, &mm, &pages, huge, huge + Level::Pmd.span());
}
