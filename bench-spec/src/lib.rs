//! The specification of the `bench=tlb` benchmark, shared by everything that measures
//! it or reads its results: the kernel (`bench=tlb`), `linux-bench` (the same operations
//! in a Linux guest) and the host tool (`cargo run -- bench`).
//!
//! - what is measured: the operations ([`Op`]), the scenarios ([`Scenario`]) and the
//!   configurations of each operation ([`Config::matrix`]), with the iterations
//!   ([`DEFAULT_ITERS`], [`warmup`]);
//! - how a result is written: one line per configuration ([`Line`], its [`FIELDS`]),
//!   formatted by its `Display` and read back by [`Line::parse`];
//! - how samples are summarised: [`percentile`].
//!
//! It has no dependencies and no allocation, so it builds for the kernel's target.
#![cfg_attr(not(test), no_std)]

#[macro_use]
mod named;

mod config;
mod iters;
mod line;
mod mode;
mod op;
mod percentile;
mod scenario;

pub use config::{Config, Tables};
pub use iters::{DEFAULT_ITERS, warmup};
pub use line::{Apic, Collapsed, FIELDS, Line, OPTIONAL_FIELDS, Os, ParseError, PerOp};
pub use mode::{Backend, Sync};
pub use op::Op;
pub use percentile::percentile;
pub use scenario::Scenario;
