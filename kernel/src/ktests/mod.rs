//! The in-kernel tests and their harness. Product code never imports this folder; the
//! boot hands control to [`harness::run`] when `test=on`. Tests register themselves with
//! `ktest::kernel_test!` and declare what they need (CPUs, backend).
//!
//! - [`harness`]: runs, filters, resumes after a panic, checks frame leaks.
//! - [`oracle`]: the TLB coherence oracle; [`coherence`] its tests.
//! - the others test one concern each, named by their file.

mod coherence;
mod exceptions;
pub mod harness;
mod idle_leave;
mod mem;
mod options;
mod options_fuzz;
mod oracle;
mod race;
mod share;
mod shootdown;
mod smp;
mod soak;
mod teardown_fault;
mod tlb;
mod trace_gate;
mod trace_order;
mod watchdog;
