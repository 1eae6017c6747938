//! Host tests of the walk markers' bookkeeping (the ordering is the TSO checker's and
//! loom's: `mm/tests/`).

use crate::addr::PhysAddr;
use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::irq::IrqsOff;
use crate::walk_marker::{WalkMarkers, WalkTag};

fn all() -> CpuMask {
    CpuMask::first(4)
}

#[test]
fn a_scan_names_the_cpus_walking_that_address_space_only_while_they_walk() {
    let (a, b) = (
        AddressSpace::new(PhysAddr::new(0x1000)),
        AddressSpace::new(PhysAddr::new(0x2000)),
    );
    let m = WalkMarkers::new();
    let inside = m.walk(IrqsOff::new(), 1, WalkTag::of(&a), || {
        m.walk(IrqsOff::new(), 2, WalkTag::of(&b), || {
            (m.scan(WalkTag::of(&a), &all()), m.scan(WalkTag::of(&b), &all()))
        })
    });
    assert_eq!(inside.0, [1].into_iter().collect());
    assert_eq!(inside.1, [2].into_iter().collect());
    assert!(m.scan(WalkTag::of(&a), &all()).is_empty(), "after the walks");
}

#[test]
fn a_walk_open_at_a_snapshot_has_ended_once_the_cpu_walks_again() {
    let a = AddressSpace::new(PhysAddr::new(0x1000));
    let m = WalkMarkers::new();
    let mut snap = [0; crate::cpumask::MAX_CPUS];
    m.walk(IrqsOff::new(), 1, WalkTag::of(&a), || {
        m.snapshot(&all(), &mut snap)
    });
    assert!(
        m.ended_since(0, snap[0]),
        "cpu 0 was not walking: nothing to wait for"
    );
    assert!(m.ended_since(1, snap[1]), "that walk ended");
    // A later walk of the same address space is another word (the count moved).
    m.walk(IrqsOff::new(), 1, WalkTag::of(&a), || {
        assert!(m.ended_since(1, snap[1]), "a new walk is not the one seen");
    });
}

#[test]
fn wait_out_with_no_walker_waits_for_nobody() {
    let a = AddressSpace::new(PhysAddr::new(0x1000));
    let m = WalkMarkers::new();
    let waited = m.wait_out(WalkTag::of(&a), &all(), &mut |cpu| panic!("waited for cpu {cpu}"));
    assert!(waited.is_empty());
}

#[test]
fn two_address_spaces_have_two_tags() {
    let a = AddressSpace::new(PhysAddr::new(0x1000));
    assert_ne!(
        WalkTag::of(&a),
        WalkTag::of(&AddressSpace::new(PhysAddr::new(0x1000)))
    );
}
