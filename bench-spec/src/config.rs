//! The configurations: which region each operation works on, in each scenario.

use crate::{Op, Scenario};

named! {
    /// Whether the operation frees the region's page table (`tables=`).
    pub enum Tables {
        /// The PTE table (or the shared PMD table) is freed.
        Free = "free",
        /// A page outside the range keeps the PTE table.
        Keep = "keep",
    }
}

/// One measured configuration: an operation on `pages` pages in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    /// The operation.
    pub op: Op,
    /// The scenario.
    pub scen: Scenario,
    /// Pages the operation covers (P).
    pub pages: u64,
    /// Whether the region's table is freed.
    pub tables: Tables,
}

impl Op {
    /// The (pages, tables) this operation is measured with, in order: unmaps of 512 and
    /// 1 pages that free the PTE table and of 510 that keep it; a collapse of 512; an
    /// unshare of 1.
    pub const fn shapes(self) -> &'static [(u64, Tables)] {
        match self {
            Op::Unmap | Op::UnmapNobatch => &[(512, Tables::Free), (1, Tables::Free), (510, Tables::Keep)],
            Op::Collapse => &[(512, Tables::Free)],
            Op::Unshare => &[(1, Tables::Free)],
        }
    }
}

impl Config {
    /// The configurations of `op` in `scen`, in the order they are run.
    pub fn matrix(op: Op, scen: Scenario) -> impl Iterator<Item = Config> {
        op.shapes().iter().map(move |&(pages, tables)| Config {
            op,
            scen,
            pages,
            tables,
        })
    }

    /// How many configurations `ops` in `scenarios` make (each run once).
    pub fn count(ops: &[Op], scenarios: &[Scenario]) -> usize {
        ops.iter().map(|op| op.shapes().len()).sum::<usize>() * scenarios.len()
    }

    /// Whether a page outside the range keeps the region's table.
    pub fn keeps_table(&self) -> bool {
        match self.tables {
            Tables::Keep => true,
            Tables::Free => false,
        }
    }
}

/// `op=.. scen=.. pages=.. tables=..`: the configuration in the words of its line (as
/// failure reports name it).
impl core::fmt::Display for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "op={} scen={} pages={} tables={}",
            self.op, self.scen, self.pages, self.tables
        )
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
