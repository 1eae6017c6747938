//! A CPU's side of the watchdog ([`crate::watchdog`]): what a waiter asked of it, its
//! last NMI answer, and how far this CPU's own current mm wait has got. Kept apart so
//! that the per-CPU record holds it without importing the watchdog, which reads the
//! per-CPU records. The orderings are stated where the watchdog uses each word.

use core::sync::atomic::{AtomicBool, AtomicU64};

/// A CPU's side of the watchdog: the request to report, and its last answer.
pub struct WatchdogCpu {
    /// Reports asked of this CPU and not yet answered (several waiters may ask at once;
    /// NMIs sent meanwhile can merge, so one answer serves them all).
    pub(crate) wanted: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) last_rip: AtomicU64,
    pub(crate) last_if: AtomicBool,
    /// The start (TSC) of the latest wait this CPU checked through
    /// [`crate::watchdog::check_since`], its check points passed (times two, plus one
    /// once it has its verdict) and its laggards' fingerprint (this CPU's only).
    pub(crate) wait_since: AtomicU64,
    pub(crate) wait_checks: AtomicU64,
    pub(crate) wait_seen: AtomicU64,
}

impl WatchdogCpu {
    /// No report asked for yet.
    pub const fn new() -> Self {
        Self {
            wanted: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            last_rip: AtomicU64::new(0),
            last_if: AtomicBool::new(false),
            wait_since: AtomicU64::new(u64::MAX),
            wait_checks: AtomicU64::new(0),
            wait_seen: AtomicU64::new(0),
        }
    }
}

impl Default for WatchdogCpu {
    fn default() -> Self {
        Self::new()
    }
}
