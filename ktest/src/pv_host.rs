//! A model of the hypervisor under the paravirt backend (`arch::backend::pv`), for
//! tests and benchmarks: it "deschedules" a vCPU (sets `PREEMPTED` in its steal-time
//! word, [`pv::host_deschedule`]) and, on resume, performs the flush a flusher deferred
//! to it, as KVM's `record_steal_time` does with `KVM_VCPU_FLUSH_TLB`. Nothing on the product path
//! preempts a vCPU: only tests, benchmarks and the walker's [`preemption_point`] (where
//! a real host could deschedule a vCPU in the middle of an interrupts-off walk) do.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use mm::cpumask::MAX_CPUS;

use arch::backend::pv;

static WALKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Every how many walks a CPU is "preempted by the host" (0: never).
static PREEMPT_EVERY: AtomicU32 = AtomicU32::new(0);
/// For how long, in microseconds.
static PREEMPT_US: AtomicU32 = AtomicU32::new(0);

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
    let cpu = arch::percpu::cpu_index();
    if !WALKS[cpu]
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(every as u64)
    {
        return;
    }
    enter_preempted();
    arch::timer::delay_us(PREEMPT_US.load(Ordering::Relaxed) as u64);
    leave_preempted();
}

/// The running vCPU counts as "descheduled by the host" from now on: flushes aimed at
/// it are deferred to [`leave_preempted`] instead of interrupting it (the benchmark's
/// model of preempted vCPUs, and the walker's [`preemption_point`]).
pub fn enter_preempted() {
    pv::host_deschedule(arch::percpu::cpu_index());
}

/// Resumes the running vCPU: the "host" performs a flush that was deferred meanwhile.
pub fn leave_preempted() {
    if pv::host_resume(arch::percpu::cpu_index()) {
        x86_64::instructions::tlb::flush_all();
    }
}
