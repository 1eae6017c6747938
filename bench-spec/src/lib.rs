//! The specification of the `bench=tlb` benchmark, shared by everything that measures
//! it or reads its results: the kernel (`bench=tlb`), `linux-bench` (the same operations
//! in a Linux guest) and the host tool (`cargo run -- bench`).
//!
//! - what is measured: the operations ([`Op`]), the scenarios ([`Scenario`]) and the
//!   configurations of each operation ([`Config::matrix`]), with the iterations
//!   ([`DEFAULT_ITERS`], [`warmup`]);
//! - how a result is written: one line per configuration ([`Line`], its [`FIELDS`]),
//!   formatted by its `Display` and read back by [`Line::parse`];
//! - the walker's price ([`WalkCost`], the `walk-cost:` line) and how long a batched
//!   table waits to be freed ([`UnlinkToFree`], the `unlink-to-free:` line), each with
//!   its `Display` and `parse`;
//! - one shootdown round as its initiator sees it ([`Shootdown`], the `shootdown:` lines
//!   of `bench=shootdown`), with its `Display`, `parse` and count check;
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
mod shootdown;
mod unlink_to_free;
mod walk_cost;

pub use config::{Config, Tables};
pub use iters::{DEFAULT_ITERS, warmup};
pub use line::{Apic, Collapsed, FIELDS, Line, OPTIONAL_FIELDS, Os, ParseError, PerOp};
pub use mode::{Backend, Idle, Sync, Walkers};
pub use op::Op;
pub use percentile::percentile;
pub use scenario::Scenario;
pub use shootdown::{
    CountMismatch, FlushRound, ROUND_FIELDS, ROUNDTRIP, ROUNDTRIP_FIELDS, RoundTrip, SHOOTDOWN_DEFAULT_ITERS,
    SHOOTDOWN_PAGES, SHOOTDOWN_PREFIX, Shootdown, ShootdownMode, ratio,
};
pub use unlink_to_free::{UNLINK_TO_FREE_FIELDS, UNLINK_TO_FREE_PREFIX, UnlinkToFree, period};
pub use walk_cost::{WALK_COST_FIELDS, WALK_COST_PREFIX, WalkCost};
