//! The steps of releasing an address space, as the running CPU records them, so that a
//! fault in the middle of one can say which CPU, which address space and which step.
//!
//! [`crate::release::release_with_steps`] and [`crate::unmap::teardown_with_steps`] tell
//! a [`TeardownSteps`] (declared in [`crate::hw`]; the kernel keeps one record per CPU
//! and its page-fault and double-fault handlers print it) each step before they take
//! it, and that they are done. [`NoSteps`] records nothing: what [`crate::release::release`]
//! and [`crate::unmap::teardown`] use.

use crate::addr::PhysAddr;
use crate::hw::TeardownSteps;

/// One step of releasing an address space, in the order they are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TeardownStep {
    /// Clearing the user half's entries and unlinking the tables they leave empty
    /// ([`crate::unmap::unmap_range`] over the lower half).
    Unmap = 1,
    /// Unlinking tables that hold no mappings any more (the sweep after the unmap).
    SweepTables = 2,
    /// The teardown gather's flush and frees ([`crate::gather::MmuGather::finish`]).
    Flush = 3,
    /// Asking the CPUs that hold the address space lazily to leave it
    /// ([`crate::flush::Mmu::shoot_lazy_holders`]).
    ShootLazy = 4,
    /// Freeing the root, once no CPU has it loaded.
    FreeRoot = 5,
}

impl TeardownStep {
    /// Every step, in order.
    pub const ALL: [TeardownStep; 5] = [
        TeardownStep::Unmap,
        TeardownStep::SweepTables,
        TeardownStep::Flush,
        TeardownStep::ShootLazy,
        TeardownStep::FreeRoot,
    ];

    /// Name in fault reports (`unmap`, `sweep-tables`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TeardownStep::Unmap => "unmap",
            TeardownStep::SweepTables => "sweep-tables",
            TeardownStep::Flush => "flush",
            TeardownStep::ShootLazy => "shoot-lazy",
            TeardownStep::FreeRoot => "free-root",
        }
    }

    /// The step whose number (`as u8`) is `n`.
    pub fn from_number(n: u8) -> Option<TeardownStep> {
        TeardownStep::ALL.into_iter().find(|&s| s as u8 == n)
    }
}

/// Records nothing.
pub struct NoSteps;

impl TeardownSteps for NoSteps {
    fn enter(&self, _mm_id: usize, _root: PhysAddr, _step: TeardownStep) {}
    fn leave(&self) {}
}

#[cfg(test)]
mod tests {
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
}
