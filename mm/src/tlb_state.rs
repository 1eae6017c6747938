//! Per-CPU TLB state (`cpu_tlbstate`): which address space the CPU has loaded, whether
//! it only keeps it lazily, and the generation it has flushed that address space to.
//!
//! gatherOS uses one TLB context per CPU (no PCID/ASID slots): loading another root
//! flushes everything, so one generation per CPU suffices.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::addr_space::AddressSpace;
use crate::cpumask::MAX_CPUS;

/// One CPU's TLB state. Written only by its own CPU; read by flushers on other CPUs.
pub struct CpuTlbState {
    loaded: AtomicPtr<AddressSpace>,
    lazy: AtomicBool,
    generation: AtomicU64,
}

impl CpuTlbState {
    const fn new() -> Self {
        Self {
            loaded: AtomicPtr::new(core::ptr::null_mut()),
            lazy: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    /// Whether `mm` is the loaded address space.
    pub fn has_loaded(&self, mm: &AddressSpace) -> bool {
        core::ptr::eq(self.loaded.load(Ordering::SeqCst), mm)
    }

    /// The loaded address space (null before the first switch).
    pub fn loaded(&self) -> *const AddressSpace {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Whether the CPU runs a kernel thread on a borrowed address space.
    pub fn is_lazy(&self) -> bool {
        self.lazy.load(Ordering::SeqCst)
    }

    /// The generation of the loaded address space this CPU's TLB reflects.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn set_loaded(&self, mm: &AddressSpace, generation: u64) {
        self.generation.store(generation, Ordering::SeqCst);
        self.loaded
            .store(mm as *const AddressSpace as *mut AddressSpace, Ordering::SeqCst);
    }

    pub(crate) fn set_lazy(&self, lazy: bool) {
        self.lazy.store(lazy, Ordering::SeqCst);
    }

    /// Records a flush up to `generation`; never goes backwards.
    pub(crate) fn flushed_to(&self, generation: u64) {
        self.generation.fetch_max(generation, Ordering::SeqCst);
    }
}

/// The TLB state of every CPU.
pub struct TlbStates {
    cpus: [CpuTlbState; MAX_CPUS],
}

impl TlbStates {
    /// Every CPU with nothing loaded.
    pub const fn new() -> Self {
        Self {
            cpus: [const { CpuTlbState::new() }; MAX_CPUS],
        }
    }

    /// CPU `cpu`'s state.
    pub fn cpu(&self, cpu: usize) -> &CpuTlbState {
        &self.cpus[cpu]
    }
}

impl Default for TlbStates {
    fn default() -> Self {
        Self::new()
    }
}
