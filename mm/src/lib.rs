//! gatherOS memory-management core: the portable half of Linux's TLB and mmu_gather
//! machinery. Of gatherOS's crates it depends only on `trace` (its event sites, each a
//! NOP until tracing is switched on); hardware is reached through small
//! traits ([`hw`]) so that all of its logic runs in host unit tests against simulated
//! CPUs ([`sim`], test builds only).
#![cfg_attr(not(test), no_std)]

pub mod addr;
pub mod addr_space;
pub mod collapse;
pub mod cpumask;
pub mod entry;
pub mod flush;
pub mod gather;
pub mod hw;
pub mod irq;
pub mod level;
pub mod pgtable;
pub mod pt_walk;
pub mod receipt;
pub mod release;
pub mod round;
pub mod share;
pub mod stats;
pub(crate) mod sync;
pub mod table_free;
pub mod table_sync;
pub mod teardown_step;
pub mod tlb_state;
pub mod unlinked_table;
pub mod unmap;
pub mod walk_marker;
pub mod walker;

/// Loom and tso only: the ordering sites of the protocol, and the switch that weakens one.
#[cfg(any(loom, tso))]
pub use sync::{Site, weaken};

#[cfg(test)]
mod coherence_tests;
#[cfg(test)]
mod sim;
