//! Faults injected on purpose: one TLB mechanism switched off, so that a test can show
//! that the oracle or the race detector catches what it prevents. Never set in a normal
//! run (the kernel logs a warning when a boot option sets one).
//!
//! # The seam
//!
//! mm names no fault. The kernel assembles mm's context from its parts on every use
//! ([`super::mmu`], [`super::freer`], [`super::gather_ctx`]); a fault in force makes that
//! assembly put one double from this file in place of one part, and the double wraps the
//! real part:
//!
//! | fault ([`Fault`]) | set by | part replaced | double |
//! |---|---|---|---|
//! | `Stride` | `tlb.break=stride` | `GatherCtx::flushes` | [`OwnStride`] |
//! | `Lazy` | `tlb.break=lazy` | `Mmu::backend` | [`SkipLazy`] |
//! | `NoFlush` | `tlb.break=noflush` | `Mmu::backend` | [`NoRemoteFlush`] |
//! | `LateFlush` | `tlb.break=late`, the trace order tests | `Mmu::backend` | [`LateFlush`] |
//! | `EarlyAckTables` | `tlb.break=early-tables`, the trace order tests | `Mmu::backend` | [`EarlyAckTables`] |
//! | `ForceSkip` | `tlb.table_sync=force-skip`, the race's `force_skip` | `TableFreer::hw`, `TableFreer::walks` | [`SyncDoesNothing`], [`NO_WALKS`] |
//! | `NoBatchPages` | `tlb.table_batch=fail`, the race's `fallback`, `unmap-nobatch` | `TableFreer::mem` | [`NoBatchPages`] |
//! | `NoMarker` | `tlb.break=nomarker`, the race's `no_marker` | the walker's markers | [`UNWATCHED`] |
//!
//! A fault set at run time takes effect at the next assembly (the next gather, the next
//! `tlb::mmu()`). mm's host tests have their own doubles of the same parts
//! (`mm/src/sim.rs`: `SkipLazy`, `NoFrames`, `SimSync::sync_does_nothing`).
//!
//! `NoBatchPages` is also how the benchmark measures the fallback path (`unmap-nobatch`):
//! a real machine may run out of batch pages; it only cannot choose when.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use mm::addr::PhysAddr;
use mm::cpumask::CpuMask;
use mm::flush::Mmu;
use mm::gather::{FlushCause, FlushRequest, FlushRequests};
use mm::hw::{BackendKind, FlushBackend, PhysMem, RunningCpu, TableSyncHw};
use mm::irq::{Handler, IrqsOn};
use mm::level::Level;
use mm::receipt::FlushReceipt;
use mm::round::Round;
use mm::stats::TlbEvent;

use super::hw::SYNC_HW;
use crate::mem::phys::MEM;

/// One fault; several may be in force at once (each is one bit of [`ACTIVE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Collapse and unshare flush with the cleared entry's own stride (2 MiB, 1 GiB)
    /// instead of the stride of the leaves under it: one INVLPG where hundreds are due.
    Stride = 1 << 0,
    /// Flushes skip lazy CPUs even when page tables were freed or unshared.
    Lazy = 1 << 1,
    /// Flushes leave out the remote flush altogether (only the local TLB is flushed).
    NoFlush = 1 << 2,
    /// The table-free sync reaches no CPU, even where it is needed: its IPIs go nowhere
    /// and the freer sees no walker (so `wait` waits for none).
    ForceSkip = 1 << 3,
    /// No page can be had for a table batch: every freed table takes the fallback path
    /// (flush, sync, free at once).
    NoBatchPages = 1 << 4,
    /// Walkers publish their walk markers where no freer looks: the `targeted` and `wait`
    /// syncs and the walk periods see no walker.
    NoMarker = 1 << 5,
    /// Flushes return before any target ran the handler, reporting them interrupted;
    /// the handlers run only when a test sends them ([`run_late_flushes`]): the flusher
    /// syncs and frees first (the order "handler, then free" reversed).
    LateFlush = 1 << 6,
    /// Responders acknowledge early even for flushes that free or unshare page tables
    /// (`mm::flush` rule 8 forbids it), and wait, after acknowledging, until the flusher
    /// freed a table, then flush: the free that a paging-structure cache could still
    /// point into, made certain.
    EarlyAckTables = 1 << 7,
}

/// The faults in force, one bit each. Relaxed: a setting that publishes no data; it is
/// set before the work it affects, on the CPU that then does it or before that CPU
/// spawns the tasks that do (which orders it).
static ACTIVE: AtomicU8 = AtomicU8::new(0);

impl Fault {
    /// Parses a `tlb.break=` value (`none` is `Some(None)`).
    pub fn parse_break(s: &str) -> Option<Option<Self>> {
        Some(match s {
            "none" => None,
            "stride" => Some(Self::Stride),
            "lazy" => Some(Self::Lazy),
            "noflush" => Some(Self::NoFlush),
            "nomarker" => Some(Self::NoMarker),
            "late" => Some(Self::LateFlush),
            "early-tables" => Some(Self::EarlyAckTables),
            _ => return None,
        })
    }

    /// Name in log lines (a `tlb.break=` value for the first three, `nomarker` and `late`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Stride => "stride",
            Self::Lazy => "lazy",
            Self::NoFlush => "noflush",
            Self::ForceSkip => "force-skip",
            Self::NoBatchPages => "no-batch-pages",
            Self::NoMarker => "nomarker",
            Self::LateFlush => "late",
            Self::EarlyAckTables => "early-tables",
        }
    }

    /// Puts the fault in force (`on`) or lifts it.
    pub fn set(self, on: bool) {
        if on {
            ACTIVE.fetch_or(self as u8, Relaxed);
        } else {
            ACTIVE.fetch_and(!(self as u8), Relaxed);
        }
    }

    /// Whether the fault is in force.
    pub fn active(self) -> bool {
        ACTIVE.load(Relaxed) & self as u8 != 0
    }
}

/// `tlb.table_sync=`: one of the product's modes, or the `force-skip` fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSync {
    /// `decided` / `always`.
    Mode(mm::table_free::SyncMode),
    /// `force-skip`: [`Fault::ForceSkip`].
    ForceSkip,
}

/// The flush backend to assemble: `real`, or a double of it.
pub(super) fn backend(real: &'static dyn FlushBackend) -> &'static dyn FlushBackend {
    if Fault::NoFlush.active() {
        &NoRemoteFlush
    } else if Fault::LateFlush.active() {
        &LateFlush
    } else if Fault::Lazy.active() {
        &SkipLazy
    } else if Fault::EarlyAckTables.active() {
        &EarlyAckTables
    } else {
        real
    }
}

/// The walk markers no freer reads: where walkers publish under [`Fault::NoMarker`].
pub static UNWATCHED: mm::walk_marker::WalkMarkers = mm::walk_marker::WalkMarkers::new();

/// The walk markers the freer reads under [`Fault::ForceSkip`]: no walker publishes into
/// them, so the `targeted` sync finds no CPU to interrupt, the `wait` sync no walk to wait
/// for, and a walk period (the batched path's sync in those forms) ends at once.
///
/// Why the fault reaches the markers and not only the IPI: `force-skip` is the sync
/// switched off where it is needed, and in the `wait` form the sync is a wait on the
/// markers, which never goes through the freer's hardware ([`SyncDoesNothing`]); blinding
/// the freer is the one seam that switches off every form (`broadcast` and `targeted`
/// IPIs, `wait`, walk periods) while mm stays as it is. Tick grace periods (the batched
/// path under `broadcast`) stay real.
pub static NO_WALKS: mm::walk_marker::WalkMarkers = mm::walk_marker::WalkMarkers::new();

/// The walk markers the freer reads: the walkers', or [`NO_WALKS`].
pub(super) fn freer_markers() -> &'static mm::walk_marker::WalkMarkers {
    if Fault::ForceSkip.active() {
        &NO_WALKS
    } else {
        &super::WALKS
    }
}

/// The walk markers walkers publish into: the freer's, or [`UNWATCHED`].
pub(super) fn walker_markers() -> &'static mm::walk_marker::WalkMarkers {
    if Fault::NoMarker.active() {
        &UNWATCHED
    } else {
        &super::WALKS
    }
}

/// Where gathers, collapse and unshare send their flushes.
pub(super) fn flushes() -> &'static dyn FlushRequests {
    if Fault::Stride.active() {
        &OwnStride
    } else {
        &mm::gather::AsAsked
    }
}

/// The table freer's hardware.
pub(super) fn table_sync_hw() -> &'static dyn TableSyncHw {
    if Fault::ForceSkip.active() {
        &SyncDoesNothing
    } else {
        &SYNC_HW
    }
}

/// The memory the table freer takes its batch pages from.
pub(super) fn batch_mem() -> &'static dyn PhysMem {
    if Fault::NoBatchPages.active() {
        &NoBatchPages
    } else {
        &MEM
    }
}

/// The `stride` fault: collapse and unshare flush with the cleared entry's own stride
/// (2 MiB, 1 GiB) instead of the stride of the 4 KiB leaves under it: one INVLPG where
/// hundreds are due. Other requests pass as asked.
pub struct OwnStride;

impl FlushRequests for OwnStride {
    fn flush(&self, mmu: &Mmu, on: &mut IrqsOn, req: FlushRequest) -> FlushReceipt {
        let stride = match req.cause {
            FlushCause::Collapse => Level::Pmd,
            FlushCause::Unshare => Level::Pud,
            FlushCause::Unmap => req.stride,
        };
        FlushRequest { stride, ..req }.send(mmu, on)
    }
}

/// The `lazy` fault: the real backend, given only the targets that are not lazy, as a
/// flush that ignored its freed tables would do. Its receipt lists the lazy CPUs as able
/// to walk and not interrupted, so it excuses no sync.
pub struct SkipLazy;

impl FlushBackend for SkipLazy {
    fn kind(&self) -> BackendKind {
        super::real_backend().kind()
    }

    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
        let busy: CpuMask = targets
            .iter()
            .filter(|&c| !super::STATES.cpu(c).is_lazy())
            .collect();
        if busy.is_empty() {
            return CpuMask::new();
        }
        super::real_backend().flush_others(on, &busy, handler)
    }

    fn flush_round(
        &self,
        on: &IrqsOn,
        targets: &CpuMask,
        round: &Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        // The real round (its mode kept), to the targets that are not lazy.
        let busy: CpuMask = targets
            .iter()
            .filter(|&c| !super::STATES.cpu(c).is_lazy())
            .collect();
        super::real_backend().flush_round(on, &busy, round, local)
    }
}

/// The `noflush` fault: a backend of the real one's kind that runs nothing remotely.
pub struct NoRemoteFlush;

impl FlushBackend for NoRemoteFlush {
    fn kind(&self) -> BackendKind {
        super::real_backend().kind()
    }

    fn flush_others(&self, _on: &IrqsOn, _targets: &CpuMask, _handler: &Handler) -> CpuMask {
        CpuMask::new()
    }

    fn flush_round(
        &self,
        _on: &IrqsOn,
        _targets: &CpuMask,
        _round: &Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        local();
        CpuMask::new()
    }
}

/// The `late` fault: a backend of the real one's kind that sends nothing now and returns
/// its targets as interrupted (what the real native backend returns once they all ran
/// the handler), so the flusher goes on to the sync (excused by the receipt under the
/// key, as after a real native broadcast) and to the free; the targets are owed the
/// handler until [`run_late_flushes`] sends it. A reordering, not a lost flush: the
/// handler runs, after the free.
///
/// Why not the real handler, queued without waiting (`call_on_many_nowait`): mm's
/// handler borrows the flush request from the flusher's stack frame, which is gone once
/// the flush returns; [`run_late_flushes`] makes a request of its own that lives while
/// it waits. Between the free and the late handlers the targets may still hold
/// translations of the freed pages and tables: a test that sets this fault touches none
/// of the address space on those CPUs (no walkers, no reads) until the handlers ran.
pub struct LateFlush;

/// The CPUs a [`LateFlush`] owes the flush handler.
static LATE_TARGETS: spin::Mutex<CpuMask> = spin::Mutex::new(CpuMask::new());

impl FlushBackend for LateFlush {
    fn kind(&self) -> BackendKind {
        super::real_backend().kind()
    }

    fn flush_others(&self, _on: &IrqsOn, targets: &CpuMask, _handler: &Handler) -> CpuMask {
        let mut owed = LATE_TARGETS.lock();
        targets.iter().for_each(|c| owed.set(c));
        *targets
    }
}

/// Sends the flush handlers [`LateFlush`] owes, for `mm`, and waits for them: each owed
/// CPU runs mm's handler for a full flush of `mm` with freed tables, at its generation
/// now (a CPU holding it lazily leaves it). Returns the CPUs it ran on. Test-only: with
/// the fault lifted, before `mm` is destroyed.
pub fn run_late_flushes(mm: &mm::addr_space::AddressSpace) -> CpuMask {
    let owed = core::mem::take(&mut *LATE_TARGETS.lock());
    let mmu = super::mmu();
    let info = mm::flush::FlushInfo {
        mm,
        start: mm::addr::VirtAddr::new(0),
        end: mm::flush::FLUSH_ALL,
        stride: Level::Pte,
        freed_tables: true,
        new_gen: mm.generation(),
        initiator: arch::percpu::cpu_index(),
    };
    arch::ipi::call_handler_on_many(
        &super::irqs_on("sends the late flush handlers"),
        &owed,
        arch::stats::IpiReason::Flush,
        &|off| mmu.flush_tlb_func(off, &info),
    )
}

/// The `early-tables` fault: the real backend, with every round acknowledged early,
/// including those that free or unshare tables, whose responders then hold their flush
/// back until the flusher freed a table ([`respond_after_a_free`]).
pub struct EarlyAckTables;

impl FlushBackend for EarlyAckTables {
    fn kind(&self) -> BackendKind {
        super::real_backend().kind()
    }

    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
        super::real_backend().flush_others(on, targets, handler)
    }

    fn flush_round(
        &self,
        on: &IrqsOn,
        targets: &CpuMask,
        round: &Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        let early = Round {
            info: round.info,
            handler: round.handler,
            early: Some(respond_after_a_free),
        };
        super::real_backend().flush_round(on, targets, &early, local)
    }
}

/// Bound on [`respond_after_a_free`]'s wait, in seconds of the TSC: far above the
/// microseconds a flusher takes from its round to its free, so that a busy host only
/// makes it later, and below the watchdog's bound (10 s), so that a flusher that waits
/// for this responder instead (a sync IPI, a tick grace period: the test avoids them)
/// is held up, not reported.
const HOLD_BACK_SECS: u64 = 5;

/// A hold of [`respond_after_a_free`] ran out. Relaxed: read by the test after the
/// handlers ran (their acknowledgements and its joins order it).
static HOLD_BACK_EXPIRED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether a hold of the `early-tables` fault ran out before any table was freed since
/// the last call (which clears it): the free then came after the handler, and the order
/// `flush-before-free` could not be broken.
pub fn hold_back_expired() -> bool {
    HOLD_BACK_EXPIRED.swap(false, Relaxed)
}

/// [`EarlyAckTables`]'s responder: acknowledges on entering, whatever the flush (the
/// product waits until it knows the CPU holds the address space, and never acknowledges
/// a flush of freed tables early); for a flush that frees tables it then waits until
/// some CPU freed a table (or [`HOLD_BACK_SECS`] passed), and runs the handler. It reads
/// `info.mm` after acknowledging even where this CPU does not hold it, which rule 8
/// forbids a responder: sound here only because the kernel never frees an
/// `AddressSpace` (`user_space` leaks them); test-only.
///
/// Whether its hold ran out before a free (the flusher starved by the host) is
/// [`hold_back_expired`].
fn respond_after_a_free(off: mm::irq::IrqsOff<'_>, info: &mm::flush::FlushInfo<'_>, ack: &mut dyn FnMut()) {
    let freed = || super::STATS.total().get(TlbEvent::TablesFreed);
    let before = freed();
    ack();
    super::STATS.count(arch::percpu::cpu_index(), TlbEvent::EarlyAcks);
    trace::event!(EarlyAck, info.mm.id(), info.new_gen, info.initiator);
    if info.freed_tables {
        let since = arch::cpu::rdtsc();
        let bound = HOLD_BACK_SECS * arch::timer::tsc_hz();
        while freed() == before {
            if arch::cpu::rdtsc() - since >= bound {
                HOLD_BACK_EXPIRED.store(true, Relaxed);
                break;
            }
            core::hint::spin_loop();
        }
    }
    super::mmu().flush_tlb_func(off, info)
}

/// The `force-skip` fault: the freer's hardware, whose sync IPI reaches no CPU. The
/// protocol still counts it as sent (`SyncSent` counts the syncs it asks for); the double
/// counts what it dropped ([`syncs_dropped`]). Grace periods are the real ones.
pub struct SyncDoesNothing;

/// Syncs the `force-skip` double dropped. Relaxed: a count that orders nothing.
static SYNCS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Syncs dropped by the `force-skip` fault since boot.
pub fn syncs_dropped() -> u64 {
    SYNCS_DROPPED.load(Relaxed)
}

impl TableSyncHw for SyncDoesNothing {
    fn cpu(&self) -> &dyn RunningCpu {
        SYNC_HW.cpu()
    }

    fn flush_implies_ipi_broadcast(&self) -> bool {
        SYNC_HW.flush_implies_ipi_broadcast()
    }

    fn sync_ipi(&self, _on: &IrqsOn, _targets: &CpuMask) {
        SYNCS_DROPPED.fetch_add(1, Relaxed);
    }

    fn online(&self) -> CpuMask {
        SYNC_HW.online()
    }

    fn quiescent_count(&self, cpu: usize) -> u64 {
        SYNC_HW.quiescent_count(cpu)
    }

    fn relax(&self) {
        SYNC_HW.relax()
    }

    fn wait_clock(&self) -> u64 {
        SYNC_HW.wait_clock()
    }

    fn wait_expired(
        &self,
        since: u64,
        what: &'static str,
        at: &'static core::panic::Location<'static>,
        laggards: &dyn Fn() -> CpuMask,
    ) -> bool {
        SYNC_HW.wait_expired(since, what, at, laggards)
    }
}

/// The `table_batch=fail` fault: the kernel's memory as the table freer sees it, with no
/// page to give; frees and word accesses are the real ones (batches queued before the
/// fault still get freed, poisoned).
pub struct NoBatchPages;

impl PhysMem for NoBatchPages {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        None
    }

    fn free_frame(&self, frame: PhysAddr) {
        MEM.free_frame(frame)
    }

    fn word(&self, frame: PhysAddr, index: usize) -> &core::sync::atomic::AtomicU64 {
        MEM.word(frame, index)
    }

    fn free_table(&self, table: PhysAddr) {
        MEM.free_table(table)
    }

    fn alloc_huge(&self) -> Option<PhysAddr> {
        None
    }

    fn copy_frame(&self, dst: PhysAddr, src: PhysAddr) {
        MEM.copy_frame(dst, src)
    }

    fn free_huge(&self, block: PhysAddr) {
        MEM.free_huge(block)
    }
}
