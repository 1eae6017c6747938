//! gatherOS trace events: who did what, on which CPU, in which order, during a shootdown
//! and a table free.
//!
//! - [`event`]: the kinds of event, their arguments and how each prints (one table);
//! - [`ring`]: the lock-free per-CPU ring an event is written into;
//! - [`gate`]: the static key that makes a site cost nothing while tracing is off, and
//!   [`event!`] which every site uses;
//! - [`line`]: the serial line a recorded event travels as (`trace-event: ...`), written by
//!   the kernel and read back by the host tool;
//! - [`order`]: the orders the protocol requires, checked on a recorded trace.
//!
//! Linux has tracepoints (`tlb:tlb_flush`, `ipi:ipi_send_cpumask`) and a ring buffer read by
//! trace-cmd; this crate is the same idea at gatherOS's size: fixed-size events (a kind and
//! eight words), no format strings in the hot path, names only when printed.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod event;
pub mod gate;
pub mod line;
pub mod order;
pub mod ring;

pub use event::{Arg, Kind, Record};
pub use gate::on;
