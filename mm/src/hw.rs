//! The hardware mm needs, as small traits: the running CPU's TLB and identity, and a
//! way to run a function on other CPUs. `arch` implements them for x86_64; mm's tests
//! implement them for simulated CPUs.

use crate::cpumask::CpuMask;

/// TLB and page-table-root operations on the *running* CPU.
pub trait LocalTlb: Sync {
    /// Logical index of the running CPU.
    fn this_cpu(&self) -> usize;
    /// Invalidates the translation of one page (INVLPG).
    fn flush_page(&self, va: u64);
    /// Invalidates all non-global translations (CR3 reload).
    fn flush_all(&self);
    /// Loads page-table root `root` (CR3 write; implies `flush_all` without PCID).
    fn load_root(&self, root: u64);
    /// Runs `f` with interrupts disabled on the running CPU.
    fn with_irqs_off(&self, f: &mut dyn FnMut());
    /// Whether interrupts are enabled on the running CPU (handlers assert they are not).
    fn irqs_enabled(&self) -> bool;
}

/// A plain cross call (`smp_call_function_many`), for work that must run on other CPUs
/// whatever the flush backend does: with INVLPGB no flush runs anything remotely, yet
/// lazy holders of a dying address space must still be made to leave it
/// (`MMU_LAZY_TLB_SHOOTDOWN`).
pub trait CrossCall: Sync {
    /// Runs `f` on every CPU in `targets` (not the running one), interrupts off, and waits.
    fn call_others(&self, targets: &CpuMask, f: &(dyn Fn() + Sync));
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

/// The `pv_ops.mmu.flush_tlb_multi` hook: makes `handler` take effect on `targets` (not
/// the running CPU) and waits. Returns the CPUs that actually took an interrupt for it.
pub trait FlushBackend: Sync {
    /// What kind of backend this is.
    fn kind(&self) -> BackendKind;
    /// Runs `handler` on (or on behalf of) every CPU in `targets`; returns the CPUs that
    /// were interrupted (ran it with an IPI).
    fn flush_others(&self, targets: &CpuMask, handler: &(dyn Fn() + Sync)) -> CpuMask;
}
