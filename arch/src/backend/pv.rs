//! A paravirt-style backend modelled on KVM's `kvm_flush_tlb_multi`.
//!
//! Each CPU has a steal-time-like state word: `PREEMPTED` while "the host has
//! descheduled this vCPU", plus `FLUSH_ON_RESUME` set by a flusher that skipped it. The
//! flusher sets the flush bit only with a compare-and-swap that also sees `PREEMPTED`, so
//! a CPU that resumes either finds the bit (and flushes) or was not skipped (and gets
//! the IPI). A skipped CPU takes no interrupt: if it was inside an interrupts-off walk
//! when the "host" preempted it, this flush did not exclude that walker — exactly why a
//! pv flush cannot stand in for the table-free sync.
//!
//! The host's side (descheduling a vCPU, flushing on resume) is not here: it is a model
//! of the hypervisor for tests and benchmarks (`ktest::pv_host`), which writes the
//! steal-time words through [`host_deschedule`] and [`host_resume`], as a hypervisor
//! writes guest memory.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use mm::cpumask::{CpuMask, MAX_CPUS};
use mm::hw::{BackendKind, FlushBackend};
use mm::irq::{Handler, IrqsOn};

use mm::round::Round;

use crate::backend::native::early_call;
use crate::ipi::{call_handler_on_many, call_round};
use crate::stats::IpiReason;

/// Steal-time bit: the host has descheduled this vCPU.
const PREEMPTED: u8 = 1;
/// Steal-time bit: a flusher skipped this vCPU; the host flushes on resume.
const FLUSH_ON_RESUME: u8 = 2;

/// Each vCPU's steal-time word, shared with the "host" ([`host_deschedule`],
/// [`host_resume`]).
static STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];
/// Flushes deferred to resume so far (all CPUs).
pub static DEFERRED_FLUSHES: AtomicU64 = AtomicU64::new(0);

/// The host's write when it deschedules vCPU `cpu`: from now on flushes aimed at it are
/// deferred to its resume instead of interrupting it. SeqCst, like the flusher's
/// compare-and-swap it races with (the state word is the one location both sides use).
pub fn host_deschedule(cpu: usize) {
    STATE[cpu].store(PREEMPTED, Ordering::SeqCst);
}

/// The host's write when it resumes vCPU `cpu`: clears the word and returns whether a
/// flusher deferred a flush to the resume (the host then flushes the vCPU's TLB before it
/// runs). SeqCst: see [`host_deschedule`].
pub fn host_resume(cpu: usize) -> bool {
    STATE[cpu].swap(0, Ordering::SeqCst) & FLUSH_ON_RESUME != 0
}

/// The paravirt backend.
pub struct Paravirt;

impl FlushBackend for Paravirt {
    fn kind(&self) -> BackendKind {
        BackendKind::Paravirt
    }

    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
        call_handler_on_many(on, &interrupt(targets), IpiReason::Flush, handler)
    }

    fn flush_round(
        &self,
        on: &IrqsOn,
        targets: &CpuMask,
        round: &Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        let ipi = interrupt(targets);
        call_round(
            on,
            &ipi,
            IpiReason::Flush,
            round.handler,
            early_call(round),
            local,
        )
    }
}

/// The targets to interrupt: the targets are mm's decision (`flush.rs`, rule 2); this
/// only chooses, for each, between an IPI and a flush deferred to its resume.
fn interrupt(targets: &CpuMask) -> CpuMask {
    let mut ipi = CpuMask::new();
    for t in targets.iter() {
        let deferred = STATE[t]
            .compare_exchange(
                PREEMPTED,
                PREEMPTED | FLUSH_ON_RESUME,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
            || STATE[t].load(Ordering::SeqCst) == PREEMPTED | FLUSH_ON_RESUME;
        if deferred {
            DEFERRED_FLUSHES.fetch_add(1, Ordering::Relaxed);
        } else {
            ipi.set(t);
        }
    }
    ipi
}
