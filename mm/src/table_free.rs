//! Freeing page tables safely against lock-free walkers.
//!
//! A lock-free walker (see [`crate::walker`]) reads page tables with interrupts off and
//! takes no lock, so a table unlinked from its parent may still be read by a walker that
//! loaded the parent entry just before. A table frame may therefore return to the
//! allocator only when no interrupts-off region that began before the unlink can still
//! be running on any CPU. gatherOS has two ways to know that:
//!
//! * **Grace period** (the normal, batched path; Linux's RCU table free). Every CPU
//!   counts the timer ticks it takes ([`TableSyncHw::quiescent_count`]); a tick can only
//!   be taken with interrupts enabled, so once every online CPU's count has moved past a
//!   snapshot taken after the unlink, every interrupts-off region that was open at the
//!   snapshot has closed. Tables are collected in a batch (a page of table addresses);
//!   a batch waits for the first grace period that *starts* after it was queued, and is
//!   freed by whoever polls next ([`TableFreer::poll`]). The CPU that polls counts as
//!   quiescent itself (it polls from task context with interrupts on).
//!   With the `targeted` and `wait` sync forms the batch waits instead for a *walk
//!   period*: a snapshot of every CPU's walk marker ([`crate::walk_marker`]) taken after
//!   it was queued, complete once every CPU that was inside a walk at the snapshot has
//!   left it. Walks are short (interrupts are off for them), ticks are not: the tables
//!   come back sooner.
//! * **Sync** (the fallback when no batch page can be had, and for collapse and
//!   unsharing; Linux's `tlb_remove_table_sync_one`): [`crate::table_sync`], in the
//!   boot's form, skipped where the flush's receipt excuses it.
//!
//! Every path hands a table here in the one sequence of [`crate::unlinked_table`]:
//! [`TableFreer::release`] (sync, then free) or [`TableFreer::defer`] and
//! [`TableFreer::queue_batch`] (a grace or walk period, then free).
//!
//! Deadlock rules: the sync, the grace-period wait and the drain run with interrupts
//! enabled (they take the capability [`IrqsOn`], which no holder of an interrupts-off
//! proof can use: [`crate::irq`]) and hold no lock that an IPI handler takes.

use core::panic::Location;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::addr::PhysAddr;
use crate::addr_space::AddressSpace;
use crate::cpumask::{CpuMask, MAX_CPUS};
use crate::hw::{PhysMem, TableSyncHw};
use crate::irq::IrqsOn;
use crate::level::ENTRIES;
use crate::receipt::{FlushReceipt, UnlinkMark};
use crate::stats::{TlbEvent, TlbStats};
use crate::sync::Ordering::SeqCst;
use crate::sync::{AtomicU8, AtomicU64, Site, const_unless_loom, ord};
use crate::unlinked_table::UnlinkedTable;
use crate::walk_marker::WalkMarkers;

// The sync's settings, defined with the sync and used here too.
pub use crate::table_sync::{SyncForm, SyncMode, flush_implies_ipi_broadcast};

/// Table addresses per batch page. The last four words of the page are the batch's
/// header: the count, when its first table was unlinked, the grace period it waits for,
/// and the link to the next queued batch (Linux's `struct mmu_table_batch`, whose
/// `rcu_head` links it likewise).
pub const TABLE_BATCH: usize = ENTRIES - 4;
/// Slot of a batch page holding the number of tables in it.
pub const BATCH_COUNT: usize = ENTRIES - 4;
const BATCH_SINCE: usize = ENTRIES - 3;
const BATCH_GP: usize = ENTRIES - 2;
const BATCH_NEXT: usize = ENTRIES - 1;

struct GraceState {
    /// Highest grace period someone waits for.
    requested: u64,
    started: u64,
    completed: u64,
    /// The period in progress is a walk period (markers), not a tick grace period.
    by_markers: bool,
    /// Per CPU at the period's start: its tick count, or its walk-marker word.
    snapshot: [u64; MAX_CPUS],
    /// Queued batch pages, oldest first, linked through their `BATCH_NEXT` slot (0 ends
    /// the list). Grace periods only grow, so the list is ordered by the one each needs.
    head: u64,
    tail: u64,
    /// The grace period the newest queued batch waits for.
    newest_gp: u64,
}

/// What the table freer keeps between calls (one per machine, static in the kernel):
/// batches waiting for grace periods, the grace periods themselves, and the sync mode.
/// It is used through a [`TableFreer`], which adds the hardware, memory and counters.
pub struct TableFreerState {
    state: spin::Mutex<GraceState>,
    mode: AtomicU8,
    form: AtomicU8,
    in_flight: AtomicU64,
}

/// The table freer at work: its state, with the machine it runs on (sync IPIs and
/// grace-period counters, the memory its batch pages come from and go back to, the
/// counters). Built per use by whoever wires mm to a machine (the kernel's
/// `tlb::freer`, the host tests' `World::freer`); the gather holds one in its
/// [`crate::gather::GatherCtx`].
#[derive(Clone, Copy)]
pub struct TableFreer<'a> {
    /// Grace periods, queued batches, sync mode.
    pub state: &'a TableFreerState,
    /// Sync IPIs, grace-period counters, the static key.
    pub hw: &'a dyn TableSyncHw,
    /// Where batch pages come from, and where batches' tables go back to.
    pub mem: &'a dyn PhysMem,
    /// Counters.
    pub stats: &'a TlbStats,
    /// The walk markers the `targeted` and `wait` forms read.
    pub walks: &'a WalkMarkers,
}

// Orderings of the freer's own atomics: `mode` is a setting (a boot option, or a
// benchmark's choice set and reset on the CPU that then frees); it publishes no data, a
// reader only branches on it, so Relaxed would also be correct. `in_flight` is a count:
// the tables themselves go from queue to freeing under `state`'s lock, and the count only
// tells `drain` when to stop; Release on the decrement (after the frees) and Acquire on
// the load make the frees happen before `drain` returns, so SeqCst weakened one step
// (Release / Acquire) is also correct.
impl TableFreerState {
    const_unless_loom! {
        /// Nothing pending; mode `Decided`.
        pub fn new() -> Self {
            Self {
                state: spin::Mutex::new(GraceState {
                    requested: 0,
                    started: 0,
                    completed: 0,
                    by_markers: false,
                    snapshot: [0; MAX_CPUS],
                    head: 0,
                    tail: 0,
                    newest_gp: 0,
                }),
                mode: AtomicU8::new(SyncMode::Decided as u8),
                form: AtomicU8::new(SyncForm::Broadcast as u8),
                in_flight: AtomicU64::new(0),
            }
        }
    }

    /// Sets the sync mode.
    pub fn set_mode(&self, mode: SyncMode) {
        // A setting (see above): Release or Relaxed would also be correct.
        self.mode.store(mode as u8, ord(SeqCst, Site::ModeStore));
    }

    /// The sync mode.
    pub fn mode(&self) -> SyncMode {
        // A setting (see above): Acquire or Relaxed would also be correct.
        match self.mode.load(ord(SeqCst, Site::ModeLoad)) {
            1 => SyncMode::Always,
            _ => SyncMode::Decided,
        }
    }

    /// Sets the sync form.
    pub fn set_form(&self, form: SyncForm) {
        // A setting, like the mode (see above).
        self.form.store(form as u8, ord(SeqCst, Site::ModeStore));
    }

    /// The sync form.
    pub fn form(&self) -> SyncForm {
        // A setting, like the mode (see above).
        SyncForm::from_u8(self.form.load(ord(SeqCst, Site::ModeLoad)))
    }

    /// Tables queued and not yet freed.
    pub fn tables_in_flight(&self) -> u64 {
        // A count (see above): Acquire would also be correct.
        self.in_flight.load(ord(SeqCst, Site::InFlightLoad))
    }
}

impl TableFreer<'_> {
    /// A fresh batch for tables of `mm`, or None (the memory has none: the caller falls
    /// back to [`TableFreer::release`] for each table). Called at the batch's first
    /// unlink: the page remembers when, for the unlink-to-free time.
    pub fn alloc_batch<'a>(&self, mm: &'a AddressSpace) -> Option<TableBatch<'a>> {
        let page = self.mem.alloc_frame()?;
        self.mem
            .word(page, BATCH_SINCE)
            .store(self.hw.wait_clock(), Relaxed);
        Some(TableBatch {
            page,
            count: 0,
            mm,
            newest: None,
        })
    }

    /// Step 3 on the batched path ([`crate::unlinked_table`]): puts `table` into
    /// `batch`. Returns true when the batch is full (flush, then [`TableFreer::queue_batch`]).
    pub fn defer(&self, batch: &mut TableBatch<'_>, table: UnlinkedTable<'_>) -> bool {
        assert!(
            core::ptr::eq(batch.mm, table.mm()) && !table.is_shared() && batch.count < TABLE_BATCH,
            "defer: a table of another address space, a shared one, or a full batch"
        );
        batch.newest = Some(table.mark());
        // The batch's words are handed over under the freer's lock (see `queue_batch`).
        self.mem
            .word(batch.page, batch.count)
            .store(table.into_frame().as_u64(), Release);
        batch.count += 1;
        self.stats
            .count(self.hw.cpu().this_cpu(), TlbEvent::TablesDeferred);
        batch.count == TABLE_BATCH
    }

    /// Step 3 ([`crate::unlinked_table`]): after `receipt`'s flush, which must have begun
    /// after `table` was unlinked (panics otherwise, naming both), makes sure no walker
    /// is still inside the table (skipping the sync if the receipt excuses it, else in
    /// the boot's [`SyncForm`]), hands the frame to `last_use` (collapse reads the
    /// table's entries there) and frees it; a shared table (an unshare) is synced and
    /// left to the address spaces that still use it.
    #[track_caller]
    pub fn release(
        &self,
        on: &IrqsOn,
        table: UnlinkedTable<'_>,
        receipt: &FlushReceipt,
        last_use: &mut dyn FnMut(PhysAddr),
    ) {
        let (mm, unlinked, shared) = (table.mm(), table.mark(), table.is_shared());
        assert!(
            receipt.follows_unlink(mm, unlinked),
            "a table of {mm:?} unlinked at {unlinked:?} released after {receipt:?}: the flush \
             must be of its address space, for tables, and begin after the unlink"
        );
        self.table_sync_one(on, Some(receipt), mm, unlinked);
        let frame = table.into_frame();
        if shared {
            return;
        }
        last_use(frame);
        // Stamped before the free: once freed, the frame may be reused (and unlinked
        // again) by another CPU before a later stamp.
        trace::event!(TableFreed, mm.id(), frame.as_u64(), 0);
        self.mem.free_table(frame);
        self.stats.count(self.hw.cpu().this_cpu(), TlbEvent::TablesFreed);
    }

    /// Tables queued and not yet freed.
    pub fn tables_in_flight(&self) -> u64 {
        self.state.tables_in_flight()
    }

    /// `tlb_remove_table_sync_rcu`: wait for a full grace period, with the same skip rule.
    #[track_caller]
    pub fn table_sync_rcu(
        &self,
        _on: &IrqsOn,
        receipt: Option<&FlushReceipt>,
        mm: &AddressSpace,
        unlinked: UnlinkMark,
    ) {
        let flush_gen = receipt.map_or(0, |r| r.generation);
        let grace = trace::event::index_of(trace::event::SYNC_DECISIONS, "grace");
        let skip = trace::event::index_of(trace::event::SYNC_DECISIONS, "skip");
        if self.sync_excused(receipt, mm, unlinked) {
            trace::event!(SyncBegin, mm.id(), flush_gen, skip, 0);
            trace::event!(SyncEnd, mm.id(), skip);
            return;
        }
        trace::event!(SyncBegin, mm.id(), flush_gen, grace, self.hw.online().low_word());
        let target = {
            let mut st = self.state.state.lock();
            st.requested = st.requested.max(st.started + 1);
            st.started + 1
        };
        self.wait_for_gp(target);
        trace::event!(SyncEnd, mm.id(), grace);
        self.stats.count(self.hw.cpu().this_cpu(), TlbEvent::SyncRcuWaits);
    }

    #[track_caller]
    fn wait_for_gp(&self, gp: u64) {
        let at = Location::caller();
        let since = self.hw.wait_clock();
        let mut reported = false;
        loop {
            self.advance();
            if self.state.state.lock().completed >= gp {
                return;
            }
            self.hw.relax();
            if !reported {
                reported = self
                    .hw
                    .wait_expired(since, "grace-period", at, &|| self.gp_laggards());
            }
        }
    }

    /// The CPUs the grace period (or walk period) in progress still waits for (no
    /// quiescent state, or still in the walk it was in, since it started); empty if none
    /// is in progress.
    pub fn gp_laggards(&self) -> CpuMask {
        let hw = self.hw;
        let me = hw.cpu().this_cpu();
        let st = self.state.state.lock();
        if st.started == st.completed {
            return CpuMask::new();
        }
        hw.online()
            .iter()
            .filter(|&c| c != me && !self.passed(&st, c))
            .collect()
    }

    /// Whether `cpu` has passed the period in progress.
    fn passed(&self, st: &GraceState, cpu: usize) -> bool {
        if st.by_markers {
            self.walks.ended_since(cpu, st.snapshot[cpu])
        } else {
            self.hw.quiescent_count(cpu) > st.snapshot[cpu]
        }
    }

    /// Queues a full (or final) batch of tables to be freed after the next grace period
    /// (or walk period) to start (Linux: `call_rcu`, which cannot fail; neither can this:
    /// the batch page is its own queue node). `receipt` is of the flush made after the
    /// batch's last unlink (panics otherwise).
    ///
    /// The batch page's words are memory ([`PhysMem::word`], core atomics even under
    /// loom): the page is written by the gathering CPU, then handed over under `state`'s
    /// lock, whose unlock / lock orders every word written before it for whoever polls.
    /// So the Relaxed ones need no more, and the Acquire loads here and in `free_batch`
    /// would also be correct Relaxed (the count is read by the CPU that wrote it, or
    /// after that lock).
    #[track_caller]
    pub fn queue_batch(&self, batch: TableBatch<'_>, receipt: &FlushReceipt) {
        if let Some(newest) = batch.newest {
            assert!(
                receipt.follows_unlink(batch.mm, newest),
                "a batch of {:?}'s tables, the last unlinked at {newest:?}, queued after \
                 {receipt:?}: the flush must begin after the last unlink",
                batch.mm
            );
        }
        let mem = self.mem;
        let (page, count) = (batch.page, batch.count as u64);
        mem.word(page, BATCH_COUNT).store(count, Release);
        let mut st = self.state.state.lock();
        let need_gp = st.started + 1;
        mem.word(page, BATCH_GP).store(need_gp, Relaxed);
        mem.word(page, BATCH_NEXT).store(0, Relaxed);
        if st.tail == 0 {
            st.head = page.as_u64();
        } else {
            mem.word(PhysAddr::new(st.tail), BATCH_NEXT)
                .store(page.as_u64(), Relaxed);
        }
        st.tail = page.as_u64();
        st.newest_gp = need_gp;
        trace::event!(BatchQueued, page.as_u64(), count, need_gp);
        // A count (see the top of `TableFreerState`'s impl): Release would also be correct.
        self.state
            .in_flight
            .fetch_add(count, ord(SeqCst, Site::InFlightAdd));
    }

    /// Starts or completes grace periods as the CPUs' counters allow.
    fn advance(&self) {
        let hw = self.hw;
        let me = hw.cpu().this_cpu();
        let online = hw.online();
        let mut st = self.state.state.lock();
        if st.started > st.completed {
            let done = online.iter().all(|c| c == me || self.passed(&st, c));
            if done {
                st.completed = st.started;
                trace::event!(GpDone, st.completed);
            }
        }
        let waiting = st.requested > st.completed || (st.head != 0 && st.newest_gp > st.completed);
        if st.started == st.completed && waiting {
            // A walk period only for batches: `table_sync_rcu` asks for a grace period
            // (`requested`), which is ticks.
            st.by_markers = st.requested <= st.completed && self.state.form() != SyncForm::Broadcast;
            if st.by_markers {
                self.walks.snapshot(&online, &mut st.snapshot);
            } else {
                for c in online.iter() {
                    st.snapshot[c] = hw.quiescent_count(c);
                }
            }
            st.started += 1;
            trace::event!(GpStart, st.started, st.by_markers);
        }
    }

    /// Advances grace periods and frees every batch whose grace period has completed.
    /// Task context, interrupts enabled. Returns the tables freed.
    pub fn poll(&self) -> u64 {
        let mem = self.mem;
        self.advance();
        let mut freed = 0;
        loop {
            let ready = {
                let mut st = self.state.state.lock();
                let head = PhysAddr::new(st.head);
                // Batch words under the lock: see `queue_batch`.
                if st.head == 0 || mem.word(head, BATCH_GP).load(Relaxed) > st.completed {
                    None
                } else {
                    st.head = mem.word(head, BATCH_NEXT).load(Relaxed);
                    if st.head == 0 {
                        st.tail = 0;
                    }
                    Some(head)
                }
            };
            let Some(batch) = ready else { break };
            let since = mem.word(batch, BATCH_SINCE).load(Relaxed);
            freed += free_batch(batch, mem);
            let cpu = self.hw.cpu().this_cpu();
            self.stats.count(cpu, TlbEvent::BatchesFreed);
            self.stats.add(
                cpu,
                TlbEvent::UnlinkToFreeCycles,
                self.hw.wait_clock().wrapping_sub(since),
            );
        }
        // A count, after the frees (see the top of `TableFreerState`'s impl): Release
        // would also be correct.
        self.state
            .in_flight
            .fetch_sub(freed, ord(SeqCst, Site::InFlightSub));
        self.stats
            .add(self.hw.cpu().this_cpu(), TlbEvent::TablesFreed, freed);
        freed
    }

    /// Waits until every queued table is freed (end of a workload).
    #[track_caller]
    pub fn drain(&self, _on: &IrqsOn) {
        let at = Location::caller();
        let since = self.hw.wait_clock();
        let mut reported = false;
        while self.tables_in_flight() > 0 {
            self.poll();
            self.hw.relax();
            if !reported {
                reported = self
                    .hw
                    .wait_expired(since, "table-drain", at, &|| self.gp_laggards());
            }
        }
    }
}

/// A page of tables of one address space waiting to be queued (step 3 on the batched
/// path, [`crate::unlinked_table`]): filled by [`TableFreer::defer`], handed over by
/// [`TableFreer::queue_batch`] with the receipt of the flush after its last unlink.
#[must_use = "a table batch goes to TableFreer::queue_batch after the flush of its tables"]
#[derive(Debug)]
pub struct TableBatch<'a> {
    page: PhysAddr,
    count: usize,
    mm: &'a AddressSpace,
    /// The mark of the last table put in, if any.
    newest: Option<UnlinkMark>,
}

impl TableBatch<'_> {
    /// Tables in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no table.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Default for TableFreerState {
    fn default() -> Self {
        Self::new()
    }
}

/// Frees every table listed in a batch page, then the page itself.
/// Its words were handed over under the freer's lock (see [`TableFreer::queue_batch`]):
/// the Acquire loads would also be correct Relaxed.
fn free_batch(batch: PhysAddr, mem: &dyn PhysMem) -> u64 {
    let count = mem.word(batch, BATCH_COUNT).load(Acquire);
    trace::event!(BatchFreed, batch.as_u64(), count);
    for i in 0..count as usize {
        let table = mem.word(batch, i).load(Acquire);
        trace::event!(TableFreed, 0, table, batch.as_u64()); // before the free (see `release`)
        mem.free_table(PhysAddr::new(table));
    }
    mem.free_frame(batch);
    count
}

#[cfg(test)]
#[path = "table_free_tests.rs"]
mod tests;
