use std::sync::Mutex;

use super::TeardownStep;
use crate::addr::PhysAddr;
use crate::hw::{BackendKind, TeardownSteps};
use crate::sim::{World, irqs_off, on_cpu};

/// Records every call, `None` for a leave.
#[derive(Default)]
struct Log(Mutex<Vec<Option<(usize, PhysAddr, TeardownStep)>>>);

impl TeardownSteps for Log {
    fn enter(&self, mm_id: usize, root: PhysAddr, step: TeardownStep) {
        self.0.lock().unwrap().push(Some((mm_id, root, step)));
    }
    fn leave(&self) {
        self.0.lock().unwrap().push(None);
    }
}

#[test]
fn release_records_each_step_in_order_and_leaves_before_waiting_and_at_the_end() {
    let w = World::new(BackendKind::NativeIpi, true);
    let mm = w.mm_with_pages(0x4000_0000, 3);
    // CPU 1 still runs mm: the first round must wait once.
    on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &mm)));
    let log = Log::default();
    let ctx = w.ctx();
    let mut waits = 0;
    let r = on_cpu(0, || {
        crate::release::release_with_steps(&ctx, &mm, &log, || {
            waits += 1;
            on_cpu(1, || irqs_off(|off| w.m.mmu().switch_mm(off, &w.m.kernel)));
            true
        })
    });
    assert_eq!(r, Ok(()));
    assert_eq!(waits, 1);
    let (id, root) = (mm.id(), mm.root());
    let step = |s| Some((id, root, s));
    use TeardownStep::*;
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            step(Unmap),
            step(SweepTables),
            step(Flush),
            step(ShootLazy),
            None,
            step(ShootLazy),
            step(FreeRoot),
            None
        ]
    );
    assert!(
        TeardownStep::ALL
            .iter()
            .all(|&s| TeardownStep::from_number(s as u8) == Some(s))
    );
}
