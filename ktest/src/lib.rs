//! gatherOS in-kernel test support: what tests and benchmarks need and the product does
//! not.
//!
//! - [`registry`]: the in-kernel test registry ([`kernel_test!`]) and the language in
//!   which a test says what machine it needs ([`registry::Needs`], [`registry::Suite`],
//!   [`registry::Firmware`]).
//! - [`pv_host`]: a model of the hypervisor under the paravirt flush backend (it
//!   deschedules vCPUs and flushes on resume).
//! - [`lost_ipi`]: fault injection on the cross-call IPI path (a lost IPI, for the
//!   watchdog's tests).
//!
//! The product crates do not depend on this one, except the kernel where it must: its
//! option parser reads the `test.*` keys into [`registry::Suite`]s, `main` tells the
//! harness which [`registry::Firmware`] booted it, and the walker's preemption point and
//! the benchmarks drive [`pv_host`].
#![cfg_attr(not(test), no_std)]

pub mod lost_ipi;
pub mod pv_host;
pub mod registry;
