//! A CPU's side of the watchdog ([`crate::watchdog`]): what a waiter asked of it and
//! its last NMI answer. Kept apart so that the per-CPU record holds it without importing
//! the watchdog, which reads the per-CPU records.

use core::sync::atomic::{AtomicBool, AtomicU64};

/// A CPU's side of the watchdog: the request to report, and its last answer.
pub struct WatchdogCpu {
    /// Reports asked of this CPU and not yet answered (several waiters may ask at once;
    /// NMIs sent meanwhile can merge, so one answer serves them all).
    pub(crate) wanted: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) last_rip: AtomicU64,
    pub(crate) last_if: AtomicBool,
}

impl WatchdogCpu {
    /// No report asked for yet.
    pub const fn new() -> Self {
        Self {
            wanted: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            last_rip: AtomicU64::new(0),
            last_if: AtomicBool::new(false),
        }
    }
}

impl Default for WatchdogCpu {
    fn default() -> Self {
        Self::new()
    }
}
