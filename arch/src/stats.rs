//! Per-CPU IPI counters, by reason, and their `ipi-stats:` line.

use core::sync::atomic::{AtomicU64, Ordering};

/// Why an IPI was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum IpiReason {
    /// A generic cross call (`call_on_cpu` and friends).
    Call = 0,
    /// A TLB flush request.
    Flush = 1,
    /// A page-table-free synchronisation (`table_sync_one`).
    Sync = 2,
    /// A reschedule request.
    Reschedule = 3,
}

/// Number of [`IpiReason`]s.
pub const REASONS: usize = 4;

impl IpiReason {
    /// Every reason, in counter order.
    pub const ALL: [IpiReason; REASONS] = [
        IpiReason::Call,
        IpiReason::Flush,
        IpiReason::Sync,
        IpiReason::Reschedule,
    ];

    /// What a caller waiting on such a call waits for (the watchdog's `for=`).
    pub fn wait_name(self) -> &'static str {
        match self {
            IpiReason::Call => "cross-call",
            IpiReason::Flush => "tlb-flush-ipi",
            IpiReason::Sync => "table-sync-ipi",
            IpiReason::Reschedule => "reschedule-ipi",
        }
    }

    /// Name used in log lines.
    pub fn name(self) -> &'static str {
        match self {
            IpiReason::Call => "call",
            IpiReason::Flush => "flush",
            IpiReason::Sync => "sync",
            IpiReason::Reschedule => "resched",
        }
    }
}

/// One CPU's IPI counters.
pub struct IpiCounters {
    /// Requests this CPU sent, by reason (one per target CPU).
    pub sent: [AtomicU64; REASONS],
    /// Requests this CPU ran for others, by reason.
    pub received: [AtomicU64; REASONS],
    /// Cross-call interrupts this CPU took (one interrupt may run several requests).
    pub call_interrupts: AtomicU64,
}

impl IpiCounters {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            sent: [const { AtomicU64::new(0) }; REASONS],
            received: [const { AtomicU64::new(0) }; REASONS],
            call_interrupts: AtomicU64::new(0),
        }
    }

    /// Counts one request sent for `reason`.
    pub fn count_sent(&self, reason: IpiReason) {
        self.sent[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request run for `reason`.
    pub fn count_received(&self, reason: IpiReason) {
        self.received[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters: (sent, received, call interrupts).
    pub fn snapshot(&self) -> IpiSnapshot {
        IpiSnapshot {
            sent: core::array::from_fn(|i| self.sent[i].load(Ordering::Relaxed)),
            received: core::array::from_fn(|i| self.received[i].load(Ordering::Relaxed)),
            call_interrupts: self.call_interrupts.load(Ordering::Relaxed),
        }
    }
}

impl Default for IpiCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// A plain copy of [`IpiCounters`], summable across CPUs and subtractable across time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IpiSnapshot {
    /// See [`IpiCounters::sent`].
    pub sent: [u64; REASONS],
    /// See [`IpiCounters::received`].
    pub received: [u64; REASONS],
    /// See [`IpiCounters::call_interrupts`].
    pub call_interrupts: u64,
}

impl core::ops::Add for IpiSnapshot {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            sent: core::array::from_fn(|i| self.sent[i] + o.sent[i]),
            received: core::array::from_fn(|i| self.received[i] + o.received[i]),
            call_interrupts: self.call_interrupts + o.call_interrupts,
        }
    }
}

impl core::ops::Sub for IpiSnapshot {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            sent: core::array::from_fn(|i| self.sent[i] - o.sent[i]),
            received: core::array::from_fn(|i| self.received[i] - o.received[i]),
            call_interrupts: self.call_interrupts - o.call_interrupts,
        }
    }
}

/// `ipi-stats: call_sent=.. call_recv=.. flush_sent=.. ... cal_irqs=..`
impl core::fmt::Display for IpiSnapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ipi-stats:")?;
        for r in IpiReason::ALL {
            write!(
                f,
                " {0}_sent={1} {0}_recv={2}",
                r.name(),
                self.sent[r as usize],
                self.received[r as usize]
            )?;
        }
        write!(f, " cal_irqs={}", self.call_interrupts)
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
