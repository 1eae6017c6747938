//! Per-CPU TLB state (`cpu_tlbstate`): which address space the CPU has loaded, whether
//! it only keeps it lazily, and the generation it has flushed that address space to.
//!
//! gatherOS uses one TLB context per CPU (no PCID/ASID slots): loading another root
//! flushes everything, so one generation per CPU suffices.

use crate::sync::Ordering::SeqCst;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, Site, atomic_array, const_unless_loom, ord};

use crate::addr_space::AddressSpace;
use crate::cpumask::MAX_CPUS;

/// One CPU's TLB state. Written only by its own CPU; of it, other CPUs need only the lazy
/// flag (flushers, `shoot_lazy_holders`). `loaded` and `generation` are read by their own
/// CPU (kernel tests poll another CPU's, needing only to see it eventually).
pub struct CpuTlbState {
    loaded: AtomicPtr<AddressSpace>,
    lazy: AtomicBool,
    generation: AtomicU64,
}

// Orderings: `lazy` is the one field other CPUs act on; its store and load are SeqCst
// (the lazy side of flush.rs rule 1). `loaded` and `generation` are written and read by
// their own CPU only (the handlers run on it too), so read-coherence gives it its own
// last write whatever the ordering: every access to them would also be correct Relaxed.
// They are SeqCst so that no reader elsewhere needs an argument about them.
impl CpuTlbState {
    const_unless_loom! {
        fn new() -> Self {
            Self {
                loaded: AtomicPtr::new(core::ptr::null_mut()),
                lazy: AtomicBool::new(false),
                generation: AtomicU64::new(0),
            }
        }
    }

    /// Whether `mm` is the loaded address space.
    pub fn has_loaded(&self, mm: &AddressSpace) -> bool {
        // Own CPU only (see above): Acquire or Relaxed would also be correct.
        core::ptr::eq(self.loaded.load(ord(SeqCst, Site::HasLoaded)), mm)
    }

    /// The loaded address space (null before the first switch).
    pub fn loaded(&self) -> *const AddressSpace {
        // Own CPU only (see above): Acquire or Relaxed would also be correct.
        self.loaded.load(ord(SeqCst, Site::Loaded))
    }

    /// Whether the CPU runs a kernel thread on a borrowed address space.
    pub fn is_lazy(&self) -> bool {
        // SeqCst: a flusher bumps the generation, then reads the lazy flags; a CPU
        // back from lazy clears its flag, then reads the generation (store buffering,
        // flush.rs rule 1): with Acquire both may read the old values.
        self.lazy.load(ord(SeqCst, Site::LazyRead))
    }

    /// The generation of the loaded address space this CPU's TLB reflects.
    pub fn generation(&self) -> u64 {
        // Own CPU only (see above): Acquire or Relaxed would also be correct.
        self.generation.load(ord(SeqCst, Site::LocalGenRead))
    }

    pub(crate) fn set_loaded(&self, mm: &AddressSpace, generation: u64) {
        // Own CPU only (see above): Release or Relaxed would also be correct.
        self.generation
            .store(generation, ord(SeqCst, Site::LocalGenStore));
        self.loaded.store(
            mm as *const AddressSpace as *mut AddressSpace,
            ord(SeqCst, Site::LoadedStore),
        );
    }

    pub(crate) fn set_lazy(&self, lazy: bool) {
        // SeqCst: the store half of the store buffering in `is_lazy` (cleared, then
        // the generation is read). Setting it needs at least Release: a flusher that
        // reads `true` skips this CPU and then frees what its earlier user accesses
        // touched (pages, when no tables are freed), so those accesses must happen before
        // the flusher's read (Release here, Acquire or stronger there). A flusher that
        // misses the store interrupts a lazy CPU, which is only slower. (x86-TSO gives the
        // Release for free; Rust's model does not. The loom model frees no data page, so
        // a Relaxed twin of the set could not fail there: this comment is the argument.)
        self.lazy.store(lazy, ord(SeqCst, Site::LazyStore));
    }

    /// Records a flush up to `generation`; never goes backwards.
    pub(crate) fn flushed_to(&self, generation: u64) {
        // Own CPU only (see above): AcqRel or Relaxed would also be correct.
        self.generation
            .fetch_max(generation, ord(SeqCst, Site::LocalGenMax));
    }
}

/// The TLB state of every CPU.
pub struct TlbStates {
    cpus: [CpuTlbState; MAX_CPUS],
}

impl TlbStates {
    const_unless_loom! {
        /// Every CPU with nothing loaded.
        pub fn new() -> Self {
            Self {
                cpus: atomic_array!(CpuTlbState::new(); MAX_CPUS),
            }
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
