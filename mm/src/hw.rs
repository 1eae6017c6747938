//! Everything mm needs from the machine, as small traits: this is the only file that
//! declares them. mm's logic is written against them, so that all of it runs in host
//! unit tests against simulated CPUs and memory (`sim.rs`).
//!
//! Who implements what on x86_64: `arch` implements the CPU-level ones, [`LocalTlb`]
//! (`arch::tlb`), [`FlushBackend`] (`arch::backend`) and [`CrossCall`] (`arch::ipi`); the
//! kernel implements the ones that need its frames, timer ticks, scheduler and options,
//! [`PhysMem`], [`TableSyncHw`] and [`WalkerHw`]. [`RunningCpu`] is implemented once,
//! by `arch::cpu::X86Cpu`, and the others hand it out (`cpu()`). `arch` keeps the per-CPU [`TeardownSteps`] record its fault handlers print.
//! `sim.rs` implements the others for mm's tests.

use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::{PhysAddr, VirtAddr};
use crate::cpumask::CpuMask;
use crate::irq::{Handler, IrqsOff, IrqsOn};
use crate::level::ENTRIES;
use crate::round::{Round, remote_then_local};
use crate::teardown_step::TeardownStep;

/// The running CPU: which one it is and its interrupt flag. Implemented once per machine
/// (`arch::cpu::X86Cpu`, the simulator's `SimCpu`); every other trait here that needs it
/// reaches it through its `cpu()` accessor.
pub trait RunningCpu: Sync {
    /// Logical index of the running CPU.
    fn this_cpu(&self) -> usize;
    /// The primitive behind [`RunningCpu::with_irqs_off`]: runs `f` with interrupts
    /// disabled on the running CPU, then restores them. mm calls it from there, and for
    /// the flusher's own flush inside a round (`flush.rs`, rule 8), where the capability
    /// to wait is lent to the backend.
    fn run_irqs_disabled(&self, f: &mut dyn FnMut());
    /// Whether interrupts are enabled on the running CPU: the hardware flag, read only
    /// where an interrupt-state token is made from it ([`crate::irq`]).
    fn irqs_enabled(&self) -> bool;
    /// Runs `f` with interrupts off, handing it the proof; the caller's capability to wait
    /// is borrowed for the duration, so `f` cannot wait for other CPUs ([`crate::irq`]).
    fn with_irqs_off(&self, _on: &mut IrqsOn, f: &mut dyn FnMut(IrqsOff<'_>)) {
        self.run_irqs_disabled(&mut || f(IrqsOff::new()))
    }
}

/// TLB and page-table-root operations on the *running* CPU.
pub trait LocalTlb: Sync {
    /// The CPU this TLB belongs to (the running one).
    fn cpu(&self) -> &dyn RunningCpu;
    /// Invalidates the translation of one page (INVLPG).
    fn flush_page(&self, va: VirtAddr);
    /// Invalidates all non-global translations (CR3 reload).
    fn flush_all(&self);
    /// Loads page-table root `root` (CR3 write; implies `flush_all` without PCID).
    ///
    /// Contract `release` rests on: when this returns, no page walk of the running CPU
    /// starts from the previous root any more (on x86 the CR3 write is serialising), so
    /// `switch_mm` may leave the previous address space's mask right after it.
    fn load_root(&self, root: PhysAddr);
}

/// A plain cross call (`smp_call_function_many`), for work that must run on other CPUs
/// whatever the flush backend does: with INVLPGB no flush runs anything remotely, yet
/// lazy holders of a dying address space must still be made to leave it
/// (`MMU_LAZY_TLB_SHOOTDOWN`).
pub trait CrossCall: Sync {
    /// Runs `f` on every CPU in `targets` (decided by the caller: never the running one),
    /// interrupts off, and waits (interrupts on: `on`).
    fn call_others(&self, on: &IrqsOn, targets: &CpuMask, f: &Handler);
}

/// Which kind of remote flush a backend performs; decides whether its flush can stand in
/// for the table-free sync IPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// IPIs to every target, waiting for each: every target took an interrupt.
    NativeIpi,
    /// Paravirt-style: targets marked preempted get a deferred flush, no interrupt.
    Paravirt,
    /// AMD INVLPGB + TLBSYNC: hardware broadcast, nobody is interrupted.
    Invlpgb,
}

impl BackendKind {
    /// Name in log lines (`native`, `pv`, `invlpgb`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::NativeIpi => "native",
            BackendKind::Paravirt => "pv",
            BackendKind::Invlpgb => "invlpgb",
        }
    }
}

/// The `pv_ops.mmu.flush_tlb_multi` hook: makes `handler` take effect on `targets` and
/// waits. Returns the CPUs that actually took an interrupt for it.
///
/// `targets` is decided once, by `flush_tlb_mm_range` ([`crate::flush`], rule 2): CPUs in
/// the address space's mask other than the running one, lazy ones only for freed tables.
/// A backend acts on them as given and filters nothing.
pub trait FlushBackend: Sync {
    /// What kind of backend this is.
    fn kind(&self) -> BackendKind;
    /// Runs `handler` on (or on behalf of) every CPU in `targets`, with interrupts off
    /// there, and waits (interrupts on here: `on`); returns the CPUs that were
    /// interrupted (ran it with an IPI).
    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask;
    /// One shootdown round (`flush_tlb_multi` with the initiator's own flush inside):
    /// makes `round.handler` take effect on `targets` like [`FlushBackend::flush_others`],
    /// runs `local` on the running CPU (it turns interrupts off itself) once the requests
    /// are on their way and before waiting for them, and returns who was interrupted.
    /// Where `round.early` is set, a responder may run it on its own copy of
    /// `round.info` instead, which may acknowledge before it flushes ([`crate::flush`],
    /// rule 8); a backend may always ignore it. The default has no round of its own: its remote flush, then
    /// `local`, never early.
    fn flush_round(
        &self,
        on: &IrqsOn,
        targets: &CpuMask,
        round: &Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        remote_then_local(|h| self.flush_others(on, targets, h), round, local)
    }
}

/// Physical memory as mm sees it: zeroed frames, freeing, and word access to frames
/// (page-table entries go through [`crate::entry::EntrySlot`], which is built on
/// [`PhysMem::word`]).
pub trait PhysMem: Sync {
    /// A zeroed 4 KiB frame for a page table (or a data page).
    fn alloc_frame(&self) -> Option<PhysAddr>;
    /// Returns a frame. The caller guarantees nothing (TLB, walker) can reach it.
    fn free_frame(&self, frame: PhysAddr);
    /// Word `index` (0..512) of the 4 KiB frame at `frame`.
    fn word(&self, frame: PhysAddr, index: usize) -> &AtomicU64;
    /// Returns a page-table frame. Implementations may poison it (fill it with
    /// [`crate::entry::Entry::POISON`]) and hold it back for a while, so that a walker
    /// still reading it is caught; the default frees it at once.
    fn free_table(&self, table: PhysAddr) {
        self.free_frame(table)
    }
    /// A 2 MiB-aligned, physically contiguous 2 MiB block (for huge mappings). Its
    /// contents are unspecified: the caller fills all of it (collapse copies 512 pages).
    fn alloc_huge(&self) -> Option<PhysAddr> {
        None
    }
    /// Copies the 4 KiB frame `src` to `dst`. The default goes word by word through
    /// [`PhysMem::word`]; implementations with a direct map do one block copy.
    fn copy_frame(&self, dst: PhysAddr, src: PhysAddr) {
        for w in 0..ENTRIES {
            let word = self.word(src, w).load(Ordering::Relaxed);
            self.word(dst, w).store(word, Ordering::Relaxed);
        }
    }
    /// Returns a block from [`PhysMem::alloc_huge`].
    fn free_huge(&self, _block: PhysAddr) {}
}

/// What the table-freeing code ([`crate::table_free`]) needs from the machine.
pub trait TableSyncHw: Sync {
    /// The running CPU.
    fn cpu(&self) -> &dyn RunningCpu;
    /// The boot-time decision, frozen in a static key.
    fn flush_implies_ipi_broadcast(&self) -> bool;
    /// IPI every CPU of `targets` (never the running one) with an empty function and wait
    /// for all (interrupts on: `on`).
    fn sync_ipi(&self, on: &IrqsOn, targets: &CpuMask);
    /// Online CPUs.
    fn online(&self) -> CpuMask;
    /// Interrupts-enabled events (timer ticks) taken by `cpu` so far.
    fn quiescent_count(&self, cpu: usize) -> u64;
    /// Called while waiting for a grace period (yield or pause).
    fn relax(&self);
    /// A timestamp for the watchdog: when a wait for other CPUs begins (host default: 0).
    fn wait_clock(&self) -> u64 {
        0
    }
    /// The watchdog's check on a wait (at `at`) for other CPUs that began at `since`: past the
    /// machine's bound it reports `what` and the CPUs `laggards()` names and fails the
    /// run (the kernel's), or returns true once it has reported (tests). The host
    /// default never expires.
    fn wait_expired(
        &self,
        _since: u64,
        _what: &'static str,
        _at: &'static Location<'static>,
        _laggards: &dyn Fn() -> CpuMask,
    ) -> bool {
        false
    }
}

/// What the lock-free walker ([`crate::walker`]) needs from the running CPU.
pub trait WalkerHw: Sync {
    /// The running CPU.
    fn cpu(&self) -> &dyn RunningCpu;
    /// Called between reading the level-2 entry and the PTE: where a host may deschedule
    /// this vCPU (the paravirt model sets the CPU's "preempted" flag for a while here).
    fn preemption_point(&self);
    /// The page-table root the running CPU has loaded (CR3).
    fn loaded_root(&self) -> PhysAddr;
}

/// Where the running CPU records which step of an address space's release it is in
/// ([`crate::teardown_step`]), so that a fault there can say so. Called only on the CPU
/// doing the release, between its steps.
pub trait TeardownSteps: Sync {
    /// The running CPU starts `step` of releasing the address space `mm_id` (root `root`).
    fn enter(&self, mm_id: usize, root: PhysAddr, step: TeardownStep);
    /// The running CPU is not (or no longer) in a step: done, or about to wait.
    fn leave(&self);
}
