//! A paravirt-style backend modelled on KVM's `kvm_flush_tlb_multi`, and the model of
//! host preemption it depends on.
//!
//! Each CPU has a steal-time-like state word: `PREEMPTED` while "the host has
//! descheduled this vCPU", plus `FLUSH_ON_RESUME` set by a flusher that skipped it. The
//! flusher sets the flush bit only with a compare-and-swap that also sees `PREEMPTED`, so
//! a CPU that resumes either finds the bit (and flushes) or was not skipped (and gets
//! the IPI). A skipped CPU takes no interrupt: if it was inside an interrupts-off walk
//! when the "host" preempted it, this flush did not exclude that walker — exactly why a
//! pv flush cannot stand in for the table-free sync.
//!
//! Host preemption is modelled by [`preemption_point`], which the lock-free walker calls
//! in the middle of a walk with interrupts still off.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use mm::cpumask::{CpuMask, MAX_CPUS};
use mm::hw::{BackendKind, FlushBackend};

use crate::ipi::call_on_many;
use crate::stats::IpiReason;

const PREEMPTED: u8 = 1;
const FLUSH_ON_RESUME: u8 = 2;

static STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];
static WALKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Every how many walks a CPU is "preempted by the host" (0: never).
static PREEMPT_EVERY: AtomicU32 = AtomicU32::new(0);
/// For how long, in microseconds.
static PREEMPT_US: AtomicU32 = AtomicU32::new(0);
/// Flushes deferred to resume so far (all CPUs).
pub static DEFERRED_FLUSHES: AtomicU64 = AtomicU64::new(0);

/// Sets the host-preemption model: every `every`-th walk on a CPU is preempted for `us`.
pub fn set_host_preemption(every: u32, us: u32) {
    PREEMPT_US.store(us, Ordering::SeqCst);
    PREEMPT_EVERY.store(every, Ordering::SeqCst);
}

/// Called by the walker mid-walk (interrupts off): maybe the host deschedules us.
pub fn preemption_point() {
    let every = PREEMPT_EVERY.load(Ordering::Relaxed);
    if every == 0 {
        return;
    }
    let cpu = crate::percpu::cpu_index();
    if !WALKS[cpu]
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(every as u64)
    {
        return;
    }
    enter_preempted();
    crate::timer::delay_us(PREEMPT_US.load(Ordering::Relaxed) as u64);
    leave_preempted();
}

/// The running vCPU counts as "descheduled by the host" from now on: flushes aimed at
/// it are deferred to [`leave_preempted`] instead of interrupting it (the benchmark's
/// model of preempted vCPUs, and the walker's [`preemption_point`]).
pub fn enter_preempted() {
    STATE[crate::percpu::cpu_index()].store(PREEMPTED, Ordering::SeqCst);
}

/// Resumes the running vCPU: the "host" performs a flush that was deferred meanwhile.
pub fn leave_preempted() {
    if STATE[crate::percpu::cpu_index()].swap(0, Ordering::SeqCst) & FLUSH_ON_RESUME != 0 {
        x86_64::instructions::tlb::flush_all();
    }
}

/// The paravirt backend.
pub struct Paravirt;

impl FlushBackend for Paravirt {
    fn kind(&self) -> BackendKind {
        BackendKind::Paravirt
    }

    fn flush_others(&self, targets: &CpuMask, handler: &(dyn Fn() + Sync)) -> CpuMask {
        let me = crate::percpu::cpu_index();
        let mut ipi = CpuMask::new();
        for t in targets.and(&crate::cpus::online()).iter().filter(|&t| t != me) {
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
        call_on_many(&ipi, IpiReason::Flush, handler);
        ipi
    }
}
