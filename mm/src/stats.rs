//! TLB counters, per CPU and summed, and the `tlb-stats:` line.

// Core atomics even under loom (not `crate::sync`): counters order nothing, so loom need
// not explore them, and as it runs one thread at a time they stay exact under it.
use core::sync::atomic::{AtomicU64, Ordering};

use crate::cpumask::MAX_CPUS;

/// What the flush and switch paths count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum TlbEvent {
    /// A flush IPI sent to a remote CPU.
    FlushIpi,
    /// A lazy CPU not interrupted by a flush without freed tables.
    LazySkipped,
    /// A lazy CPU that switched to the kernel's tables because a flush freed tables.
    LazyLeft,
    /// A CPU switching back to an address space flushed to catch up.
    Catchup,
    /// Full flush on the initiating CPU.
    LocalFull,
    /// Ranged (per page) flush on the initiating CPU.
    LocalPartial,
    /// Full flush by a remote handler.
    RemoteFull,
    /// Ranged flush by a remote handler.
    RemotePartial,
    /// A table-free sync IPI round (`table_sync_one`) that was sent.
    SyncSent,
    /// A table-free sync skipped because the flush already was an IPI broadcast.
    SyncSkipped,
    /// An `MmuGather` finished.
    Gathers,
    /// A data page freed after its flush.
    PagesFreed,
    /// A page table returned to the allocator (after a grace period or a sync).
    TablesFreed,
    /// A page table queued in a batch for a grace period.
    TablesDeferred,
    /// A lock-free walker read a poisoned (freed) table entry: a use-after-free.
    PoisonHits,
    /// A grace-period wait (`table_sync_rcu`) that was performed.
    SyncRcuWaits,
    /// CPUs a sync IPI was sent to (a broadcast counts every other online CPU).
    SyncIpiCpus,
    /// Other online CPUs a `targeted` sync did not interrupt.
    SyncSpared,
    /// A `wait` sync performed (instead of an IPI).
    SyncWaits,
    /// CPUs a `wait` sync waited for (their marker named the address space).
    SyncWaitCpus,
    /// Clock cycles (the TSC in the kernel) spent in `wait` syncs.
    SyncWaitCycles,
    /// A batch of tables freed after its grace or walk period.
    BatchesFreed,
    /// Clock cycles from each freed batch's first unlink to its free, summed.
    UnlinkToFreeCycles,
    /// A `targeted` sync that found no CPU to interrupt (no walker, or only ones the
    /// flush interrupted after the unlink). Every sync asked for ends as exactly one of
    /// `syncs_skipped`, `sync_ipis`, `sync_waits` and this.
    SyncUnneeded,
    /// A CPU about to halt that let go of the address space it held lazily
    /// (`Mmu::leave_lazy_on_idle`, the kernel's `idle.leave_mm=`).
    IdleLeft,
    /// A responder that acknowledged a flush on entering its handler, before flushing
    /// (`tlb.early_ack=on`, [`crate::flush`] rule 8).
    EarlyAcks,
}

const EVENTS: usize = 26;
/// Events printed on the `tlb-stats:` line (the rest go on `mmu-gather-stats:`).
const TLB_EVENTS: usize = 8;
const NAMES: [&str; EVENTS] = [
    "flush_ipis",
    "lazy_skipped",
    "lazy_left",
    "catchups",
    "local_full",
    "local_partial",
    "remote_full",
    "remote_partial",
    "sync_ipis",
    "syncs_skipped",
    "gathers",
    "pages_freed",
    "tables_freed",
    "tables_deferred",
    "poison_hits",
    "sync_rcu_waits",
    "sync_ipi_cpus",
    "sync_spared",
    "sync_waits",
    "sync_wait_cpus",
    "sync_wait_cycles",
    "batches_freed",
    "unlink_to_free_cycles",
    "syncs_unneeded",
    "idle_left",
    "early_acks",
];

/// Per-CPU counters.
pub struct TlbStats {
    counts: [[AtomicU64; EVENTS]; MAX_CPUS],
}

impl TlbStats {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            counts: [const { [const { AtomicU64::new(0) }; EVENTS] }; MAX_CPUS],
        }
    }

    /// Counts `event` on `cpu`.
    pub fn count(&self, cpu: usize, event: TlbEvent) {
        self.counts[cpu][event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` events on `cpu`.
    pub fn add(&self, cpu: usize, event: TlbEvent, n: u64) {
        self.counts[cpu][event as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// One CPU's counter.
    pub fn get(&self, cpu: usize, event: TlbEvent) -> u64 {
        self.counts[cpu][event as usize].load(Ordering::Relaxed)
    }

    /// Sum over all CPUs.
    pub fn total(&self) -> TlbTotals {
        TlbTotals(core::array::from_fn(|e| {
            self.counts.iter().map(|c| c[e].load(Ordering::Relaxed)).sum()
        }))
    }
}

impl Default for TlbStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters summed over CPUs; subtract two to measure an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlbTotals([u64; EVENTS]);

impl TlbTotals {
    /// One summed counter.
    pub fn get(&self, event: TlbEvent) -> u64 {
        self.0[event as usize]
    }
}

impl core::ops::Sub for TlbTotals {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self(core::array::from_fn(|i| self.0[i] - o.0[i]))
    }
}

impl TlbTotals {
    /// The `mmu-gather-stats:` line: `gathers=.. pages_freed=.. tables_freed=..
    /// tables_deferred=.. sync_ipis=.. syncs_skipped=.. poison_hits=..` (then
    /// `sync_rcu_waits=.. sync_ipi_cpus=.. sync_spared=.. sync_waits=.. sync_wait_cpus=..
    /// sync_wait_cycles=.. batches_freed=.. unlink_to_free_cycles=.. syncs_unneeded=..`).
    pub fn gather_line(&self) -> GatherLine {
        GatherLine(*self)
    }
}

/// `tlb-stats: flush_ipis=.. lazy_skipped=.. lazy_left=.. catchups=.. local_full=..
/// local_partial=.. remote_full=.. remote_partial=.. idle_left=.. early_acks=..`
impl core::fmt::Display for TlbTotals {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("tlb-stats:")?;
        for (name, v) in NAMES.iter().zip(self.0).take(TLB_EVENTS) {
            write!(f, " {name}={v}")?;
        }
        // Lazy-TLB, like `lazy_left`, but counted after the gather's events.
        for e in [TlbEvent::IdleLeft, TlbEvent::EarlyAcks] {
            write!(f, " {}={}", NAMES[e as usize], self.get(e))?;
        }
        Ok(())
    }
}

/// See [`TlbTotals::gather_line`].
pub struct GatherLine(TlbTotals);

impl core::fmt::Display for GatherLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use TlbEvent::*;
        f.write_str("mmu-gather-stats:")?;
        for e in [
            Gathers,
            PagesFreed,
            TablesFreed,
            TablesDeferred,
            SyncSent,
            SyncSkipped,
            PoisonHits,
            SyncRcuWaits,
            SyncIpiCpus,
            SyncSpared,
            SyncWaits,
            SyncWaitCpus,
            SyncWaitCycles,
            BatchesFreed,
            UnlinkToFreeCycles,
            SyncUnneeded,
        ] {
            write!(f, " {}={}", NAMES[e as usize], self.0.get(e))?;
        }
        Ok(())
    }
}
