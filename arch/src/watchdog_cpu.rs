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
    /// The mm waits this CPU checks through [`crate::watchdog::check_since`], one
    /// record each (this CPU's only).
    pub(crate) waits: [WaitRecord; WAIT_SLOTS],
}

impl WatchdogCpu {
    /// No report asked for yet.
    pub const fn new() -> Self {
        Self {
            wanted: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            last_rip: AtomicU64::new(0),
            last_if: AtomicBool::new(false),
            waits: [const { WaitRecord::new() }; WAIT_SLOTS],
        }
    }
}

/// Waits one CPU can have under way at once, each with its own record (nested or
/// alternating waits of tasks that yield to each other while waiting).
pub const WAIT_SLOTS: usize = 4;

/// How far one wait checked through [`crate::watchdog::check_since`] has got.
pub struct WaitRecord {
    /// Its start (TSC; `u64::MAX`: unused).
    pub(crate) since: AtomicU64,
    /// Check points passed, times two, plus one once it has its verdict.
    pub(crate) checks: AtomicU64,
    /// Its laggards' progress fingerprint at the last check point.
    pub(crate) seen: AtomicU64,
    /// When it was last checked (TSC): the least recent record is reused first.
    pub(crate) checked_at: AtomicU64,
}

impl WaitRecord {
    const fn new() -> Self {
        Self {
            since: AtomicU64::new(u64::MAX),
            checks: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
        }
    }
}

impl Default for WatchdogCpu {
    fn default() -> Self {
        Self::new()
    }
}
