//! In-kernel tests of collapse (khugepaged analogue) and page-table unsharing.

use mm::addr::VirtAddr;
use mm::collapse::collapse;
use mm::level::Level;
use mm::pgtable::{self, HUGE_SIZE};
use mm::share::{share_pmd_table, unshare_pmd_table};
use mm::stats::TlbEvent;
use mm::walker::Walk;

use crate::mem::phys::MEM;
use crate::user_space::destroy;
use crate::workload::map_page;
use crate::{tlb, user_space};

const REGION: u64 = 0x4000_0000;

ktest::kernel_test!(
    fn collapse_replaces_a_full_pte_table_and_syncs_with_the_receipt() {
        let used = crate::mem::frames::stats().used;
        let mm = user_space::new_address_space();
        for i in 0..512 {
            map_page(mm, REGION + i * 4096 + 8);
        }
        let before = tlb::STATS.total();
        crate::sched::use_mm(Some(mm));
        let r = { collapse(&tlb::gather_ctx(), &mm.lock(), VirtAddr::new(REGION)).expect("collapse") };
        assert!(
            r.was_ipi_broadcast_for(mm)
                || arch::cpus::count() == 1
                || tlb::mmu().backend.kind() != mm::hw::BackendKind::NativeIpi
        );
        let (level, _) = pgtable::leaf(&MEM, mm.root(), VirtAddr::new(REGION)).unwrap();
        assert_eq!(level, Level::Pmd, "now a 2 MiB mapping");
        for i in [0u64, 1, 255, 511] {
            let va = REGION + i * 4096 + 8;
            match tlb::walk(mm, va) {
                Walk::Page { value, .. } => assert_eq!(value, va, "data of page {i} kept"),
                other => panic!("walk of {va:#x}: {other:?}"),
            }
        }
        let d = tlb::STATS.total() - before;
        assert_eq!(d.get(TlbEvent::TablesFreed), 1);
        assert_eq!(d.get(TlbEvent::PagesFreed), 512);
        assert_eq!(
            sync_decisions(&d),
            1,
            "exactly one sync decision: {}",
            d.gather_line()
        );
        crate::sched::use_mm(None);
        crate::user_space::unmap(mm, REGION, REGION + HUGE_SIZE);
        destroy(mm);
        tlb::settle();
        assert_eq!(crate::mem::frames::stats().used, used, "frames leaked");
    }
);

ktest::kernel_test!(
    fn unsharing_flushes_like_a_freed_table_and_keeps_the_table_for_the_owner() {
        let used = crate::mem::frames::stats().used;
        let owner = user_space::new_address_space();
        let other = user_space::new_address_space();
        let va = (3u64 << 30) | (1 << 21) | (1 << 12) | 8;
        map_page(owner, va);
        share_pmd_table(&MEM, &owner.lock(), &other.lock(), VirtAddr::new(va)).expect("share");
        crate::sched::use_mm(Some(other));
        assert!(
            matches!(tlb::walk(other, va), Walk::Page { value, .. } if value == va),
            "sharer sees the page"
        );
        let lazy_cpu = arch::cpus::count() > 1;
        if lazy_cpu {
            // CPU 1 keeps `other` lazily: the unshare flush must reach it anyway.
            crate::sched::spawn("visitor", 1, Some(other), || {}).join(crate::sched::JOIN_BOUND_MS);
        }
        crate::sched::use_mm(None);
        let before = tlb::STATS.total();
        let r = unshare_pmd_table(&tlb::gather_ctx(), &other.lock(), VirtAddr::new(va)).expect("was shared");
        let d = tlb::STATS.total() - before;
        if lazy_cpu {
            assert!(
                r.interrupted().contains(1),
                "lazy cpu 1 not interrupted by the unshare flush"
            );
            assert!(d.get(TlbEvent::LazyLeft) >= 1);
        }
        assert_eq!(
            sync_decisions(&d),
            1,
            "exactly one sync decision: {}",
            d.gather_line()
        );
        assert_eq!(pgtable::translate(&MEM, other.root(), VirtAddr::new(va)), None);
        assert!(
            pgtable::translate(&MEM, owner.root(), VirtAddr::new(va)).is_some(),
            "owner keeps the table"
        );
        destroy(other);
        destroy(owner);
        tlb::settle();
        assert_eq!(crate::mem::frames::stats().used, used, "frames leaked");
    }
);

/// The syncs asked for in `d`: each ends as exactly one of skipped, sent, waited and
/// unneeded (a `targeted` sync with nobody to interrupt), whatever the boot's form.
fn sync_decisions(d: &mm::stats::TlbTotals) -> u64 {
    [
        TlbEvent::SyncSkipped,
        TlbEvent::SyncSent,
        TlbEvent::SyncWaits,
        TlbEvent::SyncUnneeded,
    ]
    .iter()
    .map(|&e| d.get(e))
    .sum()
}
