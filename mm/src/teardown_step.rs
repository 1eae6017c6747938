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
#[path = "teardown_step_tests.rs"]
mod tests;
