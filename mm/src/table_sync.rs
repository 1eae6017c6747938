//! The table-free sync (Linux's `tlb_remove_table_sync_one`): after a table was unlinked
//! and flushed, make sure no lock-free walker is still inside it, before
//! [`TableFreer::release`] frees it. Used where a table is freed at once: the fallback
//! when no batch page can be had, collapse and unsharing.
//!
//! # The skip
//!
//! When the TLB flush that unlinked the table was itself an IPI to every CPU that could
//! walk, the sync is a second, redundant broadcast. It is skipped
//! ([`TableFreer::table_sync_one`], [`TableFreer::table_sync_rcu`]) only if the
//! boot-time decision says the backend is the native IPI one without INVLPGB
//! ([`flush_implies_ipi_broadcast`], a static key) **and** the caller holds the
//! [`FlushReceipt`] of that flush, for the same address space, made for freed or
//! unshared tables, which interrupted every CPU that could be walking. No receipt, no
//! skip.
//!
//! # The three forms
//!
//! A sync that is not skipped takes the form chosen at boot ([`SyncForm`], `tlb.sync=`):
//! - `broadcast` (Linux): an IPI to every other online CPU, waiting for all: each CPU
//!   takes it only with interrupts on, i.e. outside any walk.
//! - `targeted`: IPIs only to the CPUs whose walk marker ([`crate::walk_marker`]) names
//!   the address space (every walking CPU if it ever shared tables:
//!   [`WalkTag::for_freeing`]), less those the flush's receipt shows took its IPI after
//!   the unlink (a CPU interrupted then is not inside a walk that began before it). No
//!   walker: nothing is sent.
//! - `wait`: no IPI; waits until every CPU whose marker named the address space has left
//!   that walk (bounded by the watchdog, which names the CPU).
//!
//! Each sync asked for ends as exactly one of: skipped (`syncs_skipped`), sent
//! (`sync_ipis`, to `sync_ipi_cpus` CPUs), waited (`sync_waits`), unneeded
//! (`syncs_unneeded`: a targeted sync with nobody to interrupt).
//!
//! Deadlock rules: the sync runs with interrupts enabled (it takes [`IrqsOn`]) and holds
//! no lock that an IPI handler takes; walkers never wait.

use core::panic::Location;

use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::hw::BackendKind;
use crate::irq::IrqsOn;
use crate::receipt::{FlushReceipt, UnlinkMark};
use crate::stats::TlbEvent;
use crate::table_free::TableFreer;
use crate::walk_marker::WalkTag;

/// A sync decision's value in a trace event.
fn decision(name: &str) -> u64 {
    trace::event::index_of(trace::event::SYNC_DECISIONS, name)
}

/// The boot-time decision (Linux's `native_pv_tlb_init`): the table-free sync is
/// redundant after a freed-tables flush iff that flush is the native IPI broadcast and
/// INVLPGB is not in use.
pub fn flush_implies_ipi_broadcast(backend: BackendKind, invlpgb_in_use: bool) -> bool {
    backend == BackendKind::NativeIpi && !invlpgb_in_use
}

/// How the sync behaves (boot option `tlb.table_sync=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncMode {
    /// Skip when the decision and a receipt allow it (the default).
    Decided = 0,
    /// Always send / wait (`always`): for measuring the cost of the redundant sync.
    Always = 1,
}

/// How a sync that is not skipped reaches the walkers (boot option `tlb.sync=`), and what
/// a table batch waits for (see the top of this file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncForm {
    /// An IPI to every other online CPU (Linux); batches wait for a tick grace period.
    Broadcast = 0,
    /// IPIs to the CPUs walking the address space only; batches wait for a walk period.
    Targeted = 1,
    /// No IPI: wait for the walks of the address space to end; batches wait for a walk
    /// period.
    Wait = 2,
}

impl SyncForm {
    /// Every form, in option order.
    pub const ALL: [SyncForm; 3] = [SyncForm::Broadcast, SyncForm::Targeted, SyncForm::Wait];

    /// The option value and log name: `broadcast`, `targeted`, `wait`.
    pub fn name(self) -> &'static str {
        match self {
            SyncForm::Broadcast => "broadcast",
            SyncForm::Targeted => "targeted",
            SyncForm::Wait => "wait",
        }
    }

    /// The form named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => SyncForm::Targeted,
            2 => SyncForm::Wait,
            _ => SyncForm::Broadcast,
        }
    }
}

impl TableFreer<'_> {
    /// The prologue both syncs share: decides whether `receipt` excuses the sync
    /// (counting the skip), and returns true when it does. (That the caller may wait is
    /// the `IrqsOn` both take.)
    pub(crate) fn sync_excused(
        &self,
        receipt: Option<&FlushReceipt>,
        mm: &AddressSpace,
        unlinked: UnlinkMark,
    ) -> bool {
        let skip = match self.state.mode() {
            SyncMode::Always => false,
            SyncMode::Decided => {
                self.hw.flush_implies_ipi_broadcast() && receipt.is_some_and(|r| r.excuses(mm, unlinked))
            }
        };
        if skip {
            self.stats.count(self.hw.cpu().this_cpu(), TlbEvent::SyncSkipped);
        }
        skip
    }

    /// `tlb_remove_table_sync_one`: make sure no lock-free walker of `mm` is still inside
    /// a table unlinked at `unlinked` (and flushed since), in the boot's [`SyncForm`],
    /// unless `receipt` proves that a flush of `mm` made after the unlink already was an
    /// IPI broadcast (and the decision allows it).
    #[track_caller]
    pub fn table_sync_one(
        &self,
        on: &IrqsOn,
        receipt: Option<&FlushReceipt>,
        mm: &AddressSpace,
        unlinked: UnlinkMark,
    ) {
        let flush_gen = receipt.map_or(0, |r| r.generation);
        if self.sync_excused(receipt, mm, unlinked) {
            trace::event!(SyncBegin, mm.id(), flush_gen, decision("skip"), 0);
            trace::event!(SyncEnd, mm.id(), decision("skip"));
            return;
        }
        let me = self.hw.cpu().this_cpu();
        let mut others = self.hw.online();
        others.clear(me);
        let form = self.state.form();
        match form {
            SyncForm::Broadcast => {
                trace::event!(
                    SyncBegin,
                    mm.id(),
                    flush_gen,
                    decision("broadcast"),
                    others.low_word()
                );
                self.sync_ipi(on, &others)
            }
            SyncForm::Targeted => {
                let walking = self.walks.scan(WalkTag::for_freeing(mm), &others);
                let took_flush = receipt.map_or(CpuMask::new(), |r| r.interrupted_after(mm, unlinked));
                let targets = walking.and_not(&took_flush);
                trace::event!(
                    SyncBegin,
                    mm.id(),
                    flush_gen,
                    decision("targeted"),
                    targets.low_word()
                );
                if targets.is_empty() {
                    self.stats.count(me, TlbEvent::SyncUnneeded);
                } else {
                    self.sync_ipi(on, &targets);
                }
                self.stats.add(
                    me,
                    TlbEvent::SyncSpared,
                    (others.count() - targets.count()) as u64,
                );
            }
            SyncForm::Wait => {
                trace::event!(SyncBegin, mm.id(), flush_gen, decision("wait"), others.low_word());
                self.wait_for_walks(mm, &others)
            }
        }
        trace::event!(SyncEnd, mm.id(), decision(form.name()));
    }

    fn sync_ipi(&self, on: &IrqsOn, targets: &CpuMask) {
        let me = self.hw.cpu().this_cpu();
        self.hw.sync_ipi(on, targets);
        self.stats.count(me, TlbEvent::SyncSent);
        self.stats.add(me, TlbEvent::SyncIpiCpus, targets.count() as u64);
    }

    /// The `wait` form: no IPI, wait until the walks of `mm` open on `others` have ended.
    #[track_caller]
    fn wait_for_walks(&self, mm: &AddressSpace, others: &CpuMask) {
        let at = Location::caller();
        let since = self.hw.wait_clock();
        let mut reported = false;
        let waited = self.walks.wait_out(WalkTag::for_freeing(mm), others, &mut |cpu| {
            self.hw.relax();
            if !reported {
                reported = self.hw.wait_expired(since, "walk-wait", at, &|| {
                    let mut m = CpuMask::new();
                    m.set(cpu);
                    m
                });
            }
        });
        let me = self.hw.cpu().this_cpu();
        self.stats.count(me, TlbEvent::SyncWaits);
        self.stats.add(me, TlbEvent::SyncWaitCpus, waited.count() as u64);
        self.stats.add(
            me,
            TlbEvent::SyncWaitCycles,
            self.hw.wait_clock().wrapping_sub(since),
        );
    }
}
