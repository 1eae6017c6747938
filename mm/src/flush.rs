//! `flush_tlb_mm_range` and its handler: the x86 TLB shootdown protocol, portable.
//!
//! Protocol (who does what, in which order):
//! 1. The flusher bumps the address space's generation, *then* reads its CPU mask and
//!    the lazy flags. A CPU switching in sets its mask bit / clears its lazy flag, *then*
//!    reads the generation. With both sides sequentially consistent, either the flusher
//!    sees the CPU (and interrupts it) or the CPU sees the new generation (and catches
//!    up when it switches in): a completed flush is never missed.
//! 2. The targets are decided here, once: the CPUs in the address space's mask but the
//!    running one; the backend acts on them as given. Lazy CPUs (kernel thread on a
//!    borrowed address space) are skipped unless the
//!    flush frees (or unshares) page tables: they touch no user mapping and catch up on
//!    switch-in. With freed tables they are interrupted too, since speculative walks
//!    through their paging-structure caches could reach the freed table; they then leave
//!    the address space (load the kernel's tables) instead of flushing.
//! 3. A handler flushes only the range if it is exactly one generation behind and the
//!    request is the newest; otherwise everything. It never moves its generation back.
//! 4. Ranges over [`FLUSH_CEILING`] pages become a full flush.
//! 5. Every handler runs with interrupts off: a tick in the middle of `flush_tlb_func`
//!    could schedule and `switch_mm` under it. The handlers take the proof
//!    ([`IrqsOff`]); the flush, which waits for the targets, takes the capability to wait
//!    ([`IrqsOn`]), which a handler cannot hold ([`crate::irq`]).
//! 6. `switch_mm` leaves the previous address space's mask only after CR3 holds the new
//!    root: an empty mask is what lets `release` free a root (see [`crate::release`]).
//! 7. An idle CPU may let go of the address space it holds lazily
//!    ([`Mmu::leave_lazy_on_idle`], the kernel's `idle.leave_mm=` policy): it is a
//!    `switch_mm` to the kernel's tables, so rule 6 orders it. Why that is safe:
//!    - *Nothing left to hold or walk.* The CR3 load of the kernel's root drops every
//!      non-global translation (user mappings are never global) and, without PCID, every
//!      paging-structure cache entry, so from the moment the CR3 write retires the CPU
//!      can neither use a stale translation nor walk a table of the address space
//!      (speculatively or not: its walks start from the kernel's root). Its mask bit is
//!      cleared only after that, so a flusher that no longer sees the bit skips a CPU
//!      that holds nothing.
//!    - *A flusher already choosing its targets* may have read the mask (or the lazy
//!      flag) before the clear and interrupt the CPU anyway: its handler finds the
//!      address space no longer loaded and returns ("away" in a trace). One IPI too
//!      many, never one too few: a flush's correctness needs only the CPUs that hold the
//!      address space to be in the mask it reads after its generation bump (rule 1), and
//!      the leaving CPU stays in the mask until it holds nothing.
//!    - *`release`* frees a root only once the mask is empty (rule 6): the leaving CPU's
//!      bit goes last, after its CR3 holds the kernel's root, so the root is never freed
//!      while in a CR3. An idle leave also spares `release` the cross call to that lazy
//!      holder (`shoot_lazy_holders`).
//!    - *Coming back*: a task of the address space that runs on the CPU again goes
//!      through `switch_mm`, which joins the mask, then reads the generation (rule 1), and
//!      loads CR3 (a full flush): whatever it missed while away is caught up.
//!
//! 8. **The round** ([`crate::round`], the machine's [`RoundMode`]): the initiator sends
//!    the requests, flushes its own TLB while the responders work, then waits (Linux
//!    since 5.10; "serial" flushes locally after the wait). The request a responder reads
//!    (range, stride, generation, flags, initiator) is one aligned cache line
//!    ([`FlushInfo`]); the backend keeps the acknowledgement in a line of its own.
//!    With `early_ack`, a responder acknowledges early, at the start of its handler and
//!    before it flushes, for a flush that frees no page table: it copies the request (the
//!    initiator's frame may be gone once it acknowledged), checks that it holds the
//!    address space loaded and not lazily, acknowledges, then flushes
//!    ([`Mmu::flush_tlb_func_acked`]; away or lazy, it acknowledges after the handler,
//!    as always). Why the initiator may go on (and free the unmapped pages) before the
//!    responders have flushed:
//!    - *The interrupted context cannot run in between.* The handler runs with
//!      interrupts off from the interrupt's entry (or from a waiter's loop, which serves
//!      its queue with interrupts off, and resumes its own wait only after the handler)
//!      to its end; between the acknowledgement and the flush the CPU executes only the
//!      handler, which reads its own stack (the copy of the request), its per-CPU TLB
//!      state and the address space's generation, and forms no user address. The
//!      address space is alive: this CPU holds it loaded, with interrupts off it cannot
//!      switch away before the handler returns, and `release` lets go of an address
//!      space only once no CPU has it loaded (rule 6). (The only other code that can
//!      run there is the watchdog's NMI report, which reads per-CPU records and prints.)
//!      So no instruction of the interrupted task, kernel or user, can use a stale
//!      translation of a page the initiator frees after the acknowledgement: the task
//!      resumes only after the flush. A lock-free walker is not in between either: it
//!      runs with interrupts off, so it finished its walk before the interrupt was taken.
//!    - *What the hardware can still do in between* is use the stale translations
//!      speculatively. A speculative load through a stale leaf entry may read a page the
//!      initiator has already freed, and which may already be reused (by another address
//!      space): it retires nothing, but it is a transient-execution exposure that Linux
//!      does not have (it frees the pages only after every responder flushed), accepted
//!      here because the handler forms no user address, so no speculation in it is
//!      steered at one, and it lasts as long as the handler's flush (up to
//!      [`FLUSH_CEILING`] `invlpg`s, or a CR3 write) and its bookkeeping. The same
//!      hardware may also walk page tables speculatively, through its paging-structure
//!      caches: harmless while
//!      every table it can reach is still a page table, which is why the early
//!      acknowledgement is *not* given for a flush that frees or unshares tables: the
//!      initiator frees the table right after the acknowledgements, the page may be
//!      reused at once (as data, a table of another address space), and a
//!      paging-structure cache entry still pointing into it would have the walker read
//!      its new contents as entries (and set accessed bits in them). Those flushes
//!      acknowledge after the flush, as before.
//!    - *What the initiator learns is unchanged for the table-free sync:* an early
//!      acknowledgement still means the responder took the interrupt, so a walker that
//!      had interrupts off there has finished; but the skip ([`FlushReceipt`]) only
//!      follows flushes that free tables, which never acknowledge early.
//!    - *Generations stay monotonic*: the responder's flush still records its own
//!      generation after flushing (rule 3); a later request that finds it behind
//!      flushes again.
//!    - *Caught if broken*: an early acknowledgement of a flush that frees tables is
//!      reported by the trace's order check (`early-ack-of-tables`, at the `early_ack`
//!      event), and the test-only variant that also holds its flush back until the free
//!      (the kernel's `Fault::EarlyAckTables`) by `flush-before-free` as well: a table
//!      freed before a responder's handler ran.
//!
//! The flush returns a [`FlushReceipt`] describing whom it reached.

use crate::addr::VirtAddr;
use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::hw::{CrossCall, FlushBackend, LocalTlb};
use crate::irq::{IrqsOff, IrqsOn};
use crate::level::Level;
use crate::receipt::FlushReceipt;
use crate::round::{EarlyResponder, Round, RoundMode};
use crate::stats::{TlbEvent, TlbStats};
use crate::sync::Ordering::SeqCst;
use crate::sync::{Site, ord, reordered};
use crate::tlb_state::TlbStates;

/// Ranges longer than this many pages are flushed entirely (`tlb_single_page_flush_ceiling`).
pub const FLUSH_CEILING: u64 = 33;
/// `end` value meaning "the whole address space".
pub const FLUSH_ALL: VirtAddr = VirtAddr::new(u64::MAX);

/// Everything the TLB code needs, bundled: the running CPU's TLB, the remote-flush
/// backend, per-CPU states and counters, and the kernel's own address space.
pub struct Mmu<'a> {
    /// The running CPU's TLB.
    pub tlb: &'a dyn LocalTlb,
    /// The remote-flush hook.
    pub backend: &'a dyn FlushBackend,
    /// Per-CPU TLB state.
    pub states: &'a TlbStates,
    /// Counters.
    pub stats: &'a TlbStats,
    /// The kernel's address space (`init_mm`), which lazy CPUs fall back to.
    pub kernel: &'a AddressSpace,
    /// Plain cross calls, for lazy holders that must leave whatever the backend.
    pub calls: &'a dyn CrossCall,
    /// How a shootdown round runs (rule 8).
    pub round: RoundMode,
    /// What a responder runs after acknowledging early: the machine's
    /// [`Mmu::flush_tlb_func_acked`] on its own `Mmu` (None: never early).
    pub responder: Option<EarlyResponder>,
}

/// One flush request (`flush_tlb_info`): everything a responder reads of it, in one
/// aligned cache line (rule 8), so that the responders' reads share one line and no
/// write of anyone else's (an acknowledgement, the next request's fields) lands in it.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct FlushInfo<'a> {
    /// The address space.
    pub mm: &'a AddressSpace,
    /// First address.
    pub start: VirtAddr,
    /// End address (exclusive), or [`FLUSH_ALL`].
    pub end: VirtAddr,
    /// The flush stride: the level of the translations that may be cached (one INVLPG
    /// per [`Level::span`] of it).
    pub stride: Level,
    /// Page tables were freed or unshared: lazy CPUs are included.
    pub freed_tables: bool,
    /// The generation this request establishes.
    pub new_gen: u64,
    /// CPU that asked.
    pub initiator: usize,
}

const _: () = assert!(core::mem::size_of::<FlushInfo<'_>>() == 64);

impl Mmu<'_> {
    /// Flushes `[start, end)` of `mm` on every CPU that may cache it, and waits.
    pub fn flush_tlb_mm_range(
        &self,
        on: &mut IrqsOn,
        mm: &AddressSpace,
        start: VirtAddr,
        end: VirtAddr,
        stride: Level,
        freed_tables: bool,
    ) -> FlushReceipt {
        let cpu = self.tlb.cpu().this_cpu();
        let (start, end) = if end == FLUSH_ALL || (end - start) >> stride.shift() > FLUSH_CEILING {
            (VirtAddr::new(0), FLUSH_ALL)
        } else {
            (start, end)
        };
        // SeqCst: the flusher's half of rule 1 (bump, then read mask and lazy flags);
        // with AcqRel the mask and flag reads below may miss a CPU switching in that also
        // misses the bump.
        let new_gen = mm.tlb_gen.fetch_add(1, ord(SeqCst, Site::GenBump)) + 1;
        let info = FlushInfo {
            mm,
            start,
            end,
            stride,
            freed_tables,
            new_gen,
            initiator: cpu,
        };
        let mut others = mm.cpumask.load();
        others.clear(cpu);
        let targets = if others.is_empty() || freed_tables {
            others
        } else {
            let busy: CpuMask = others.iter().filter(|&c| !self.states.cpu(c).is_lazy()).collect();
            self.stats
                .add(cpu, TlbEvent::LazySkipped, (others.count() - busy.count()) as u64);
            busy
        };
        if trace::on() {
            // The lazy CPUs: those skipped, or (freed tables) those the flush reaches lazy,
            // read again for the event only (the flush itself does not need them).
            let lazy = if freed_tables {
                others.iter().filter(|&c| self.states.cpu(c).is_lazy()).collect()
            } else {
                others.and_not(&targets)
            };
            trace::event!(
                FlushBegin,
                mm.id(),
                new_gen,
                start.as_u64(),
                end.as_u64(),
                targets.low_word(),
                lazy.low_word(),
                freed_tables,
                self.backend.kind() as u8
            );
        }
        // The initiator's own flush, interrupts off (rule 5): it turns them off itself,
        // since it may run inside the backend's round, where the capability to wait is
        // lent to the backend.
        let mut local = || {
            self.tlb.cpu().run_irqs_disabled(&mut || {
                if self.states.cpu(cpu).has_loaded(mm) {
                    self.flush_tlb_func(IrqsOff::new(), &info)
                }
            })
        };
        let mut interrupted = CpuMask::new();
        if targets.is_empty() {
            local();
        } else {
            let round = Round {
                info: &info,
                handler: &|off| self.flush_tlb_func(off, &info),
                // Rule 8: never for a flush that frees or unshares tables.
                early: self.responder.filter(|_| self.round.early_ack && !freed_tables),
            };
            if self.round.concurrent_local {
                interrupted = self.backend.flush_round(on, &targets, &round, &mut local);
            } else {
                interrupted = self.backend.flush_round(on, &targets, &round, &mut || {});
                local();
            }
            self.stats
                .add(cpu, TlbEvent::FlushIpi, interrupted.count() as u64);
        }
        trace::event!(FlushEnd, mm.id(), new_gen, interrupted.low_word());
        FlushReceipt {
            mm_id: mm.id(),
            generation: new_gen,
            tables: freed_tables,
            backend: self.backend.kind(),
            could_walk: others,
            interrupted,
        }
    }

    /// [`Mmu::flush_tlb_func`] on a responder that may acknowledge early (rule 8): `info`
    /// is its own copy of the request, and `ack` lets the flusher go on. It is called as
    /// soon as this CPU is known to hold the address space loaded and not lazily (with
    /// interrupts off that stays so until the handler returns: the address space cannot
    /// be released under it), before the flush, and counted as an early
    /// acknowledgement; on the other paths (away, lazy) not at all: the caller
    /// acknowledges after the handler returned, as for any request.
    pub fn flush_tlb_func_acked(&self, off: IrqsOff<'_>, info: &FlushInfo, ack: &mut dyn FnMut()) {
        self.flush_tlb_func_acking(off, info, Some(ack))
    }

    /// The flush handler, run on each target CPU (and locally) with interrupts off.
    pub fn flush_tlb_func(&self, off: IrqsOff<'_>, info: &FlushInfo) {
        self.flush_tlb_func_acking(off, info, None)
    }

    fn flush_tlb_func_acking(&self, off: IrqsOff<'_>, info: &FlushInfo, ack: Option<&mut dyn FnMut()>) {
        let cpu = self.tlb.cpu().this_cpu();
        let local = cpu == info.initiator;
        let st = self.states.cpu(cpu);
        let traced = |result: &str| {
            trace::event!(
                FlushRun,
                info.mm.id(),
                info.new_gen,
                info.initiator,
                trace::event::index_of(trace::event::FLUSH_RESULTS, result)
            )
        };
        if !st.has_loaded(info.mm) {
            traced("away");
            return; // switched away since the mask was read
        }
        if st.is_lazy() {
            // Only freed-table flushes reach lazy CPUs: leave the address space.
            self.switch_mm(off, self.kernel);
            self.stats.count(cpu, TlbEvent::LazyLeft);
            traced("left");
            return;
        }
        if let Some(ack) = ack {
            // Rule 8: loaded here, not lazy, interrupts off: nothing of the interrupted
            // context runs before the flush below, and the address space stays alive.
            ack();
            self.stats.count(cpu, TlbEvent::EarlyAcks);
            trace::event!(EarlyAck, info.mm.id(), info.new_gen, info.initiator);
        }
        let local_gen = st.generation();
        let mm_gen = info.mm.generation();
        if local_gen >= mm_gen || info.new_gen <= local_gen {
            traced("covered");
            return; // an earlier (full) flush covered this one
        }
        let partial = info.end != FLUSH_ALL && info.new_gen == local_gen + 1 && info.new_gen == mm_gen;
        if partial {
            let mut va = info.start;
            while va < info.end {
                self.tlb.flush_page(va);
                va += info.stride.span();
            }
        } else {
            self.tlb.flush_all();
        }
        st.flushed_to(if partial { info.new_gen } else { mm_gen });
        traced(if partial { "partial" } else { "full" });
        let event = match (local, partial) {
            (true, true) => TlbEvent::LocalPartial,
            (true, false) => TlbEvent::LocalFull,
            (false, true) => TlbEvent::RemotePartial,
            (false, false) => TlbEvent::RemoteFull,
        };
        self.stats.count(cpu, event);
    }

    /// Switches the running CPU to `next` (`switch_mm_irqs_off`; interrupts off).
    pub fn switch_mm(&self, off: IrqsOff<'_>, next: &AddressSpace) {
        self.switch_mm_as(off, next, false)
    }

    /// [`Mmu::switch_mm`]; `idle_leave`: called by [`Mmu::leave_lazy_on_idle`] (the only
    /// caller loom's reordering twin changes, so that its failure is the idle leave's).
    fn switch_mm_as(&self, _off: IrqsOff<'_>, next: &AddressSpace, idle_leave: bool) {
        let cpu = self.tlb.cpu().this_cpu();
        let st = self.states.cpu(cpu);
        let prev = st.loaded();
        if core::ptr::eq(prev, next) {
            if st.is_lazy() {
                st.set_lazy(false);
                if !next.cpumask.contains(cpu) {
                    next.cpumask.set(cpu);
                }
                // SeqCst: the lazy flag is cleared before the generation is read (rule 1).
                let g = next.generation();
                let was = st.generation();
                if was < g {
                    self.tlb.flush_all();
                    st.flushed_to(g);
                    self.stats.count(cpu, TlbEvent::Catchup);
                }
                trace::event!(LazyExit, next.id(), was, st.generation());
            }
            return;
        }
        st.set_lazy(false);
        // Join `next` first, then read its generation (SeqCst, rule 1): a flusher either
        // sees our bit or we see its bumped generation, which the CR3 load below covers.
        next.cpumask.set(cpu);
        let g = next.generation();
        // Loom's twin only (`Site::PrevClearBeforeLoad`; always false otherwise, a
        // `const fn`): the forbidden order, `prev`'s bit cleared before the CR3 load, in
        // an idle leave.
        let clear_first = idle_leave && reordered(Site::PrevClearBeforeLoad) && !prev.is_null();
        if clear_first {
            // SAFETY: as below.
            unsafe { (*prev).cpumask.clear(cpu) };
        }
        self.tlb.load_root(next.root());
        st.set_loaded(next, g);
        trace::event!(
            SwitchMm,
            if prev.is_null() {
                0
            } else {
                // SAFETY: as below: `prev` outlives this CPU's hold on it.
                unsafe { (*prev).id() }
            },
            next.id(),
            g
        );
        // Leave `prev` only now that CR3 no longer holds its root: the releaser frees a
        // root once the mask is empty (`release`), so clearing the bit before the CR3
        // load would let it free a table this CPU still walks from. The CR3 write is
        // serialising, so the clear cannot become visible before it.
        if !prev.is_null() && !clear_first {
            // SAFETY: address spaces outlive every CPU that has them loaded, and this CPU
            // still holds `prev` in its mask until this very store.
            unsafe { (*prev).cpumask.clear(cpu) };
        }
    }

    /// Makes every CPU that holds `mm` only lazily leave it now (`MMU_LAZY_TLB_SHOOTDOWN`),
    /// by a cross call, whatever the flush backend; CPUs running a task of `mm` leave when
    /// they switch away. Returns the CPUs that still have `mm` loaded.
    pub fn shoot_lazy_holders(&self, on: &mut IrqsOn, mm: &AddressSpace) -> CpuMask {
        let cpu = self.tlb.cpu().this_cpu();
        let lazy: CpuMask = mm
            .cpumask
            .load()
            .iter()
            .filter(|&c| c != cpu && self.states.cpu(c).is_lazy())
            .collect();
        if !lazy.is_empty() {
            // The handler checks again: a CPU may have switched since the flags were read
            // (one that turned lazy after is caught by the caller's next round).
            self.calls.call_others(on, &lazy, &|off| {
                let st = self.states.cpu(self.tlb.cpu().this_cpu());
                if st.has_loaded(mm) && st.is_lazy() {
                    self.switch_mm(off, self.kernel);
                    self.stats.count(self.tlb.cpu().this_cpu(), TlbEvent::LazyLeft);
                }
            });
        }
        self.tlb.cpu().with_irqs_off(on, &mut |off| {
            let st = self.states.cpu(cpu);
            if st.has_loaded(mm) && st.is_lazy() {
                self.switch_mm(off, self.kernel);
            }
        });
        mm.cpumask.load()
    }

    /// The running CPU is about to halt with nothing to run: if it holds a user address
    /// space only lazily, it lets go of it now (rule 7: a `switch_mm` to the kernel's
    /// tables), so that later flushes, freed tables or not, skip it. Returns whether it
    /// left. Interrupts off (`off`), like every `switch_mm`.
    pub fn leave_lazy_on_idle(&self, off: IrqsOff<'_>) -> bool {
        let cpu = self.tlb.cpu().this_cpu();
        let st = self.states.cpu(cpu);
        let loaded = st.loaded();
        if !st.is_lazy() || loaded.is_null() || core::ptr::eq(loaded, self.kernel) {
            return false;
        }
        self.switch_mm_as(off, self.kernel, true);
        self.stats.count(cpu, TlbEvent::IdleLeft);
        true
    }

    /// The running CPU starts a kernel thread: it keeps its address space loaded but
    /// marks itself lazy (`enter_lazy_tlb`).
    pub fn enter_lazy_tlb(&self) {
        let st = self.states.cpu(self.tlb.cpu().this_cpu());
        if !core::ptr::eq(st.loaded(), self.kernel) && !st.loaded().is_null() {
            st.set_lazy(true);
            // SAFETY: the loaded address space outlives this CPU's hold on it.
            trace::event!(LazyEnter, unsafe { (*st.loaded()).id() }, st.generation());
        }
    }
}

#[cfg(test)]
#[path = "flush_tests.rs"]
mod tests;
