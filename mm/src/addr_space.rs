//! Address spaces: a page-table root, the CPUs that use it, and its flush generation.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::addr::PhysAddr;
use crate::cpumask::AtomicCpuMask;
use crate::pt_lock::{PageTableGuard, PageTableLock};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// One address space (Linux's `mm_struct`, the parts TLB shootdown needs).
pub struct AddressSpace {
    id: usize,
    root: PhysAddr,
    /// CPUs that have this address space loaded, or lazily keep it loaded
    /// (`mm_cpumask`). A CPU sets its bit before reading `tlb_gen` when it switches in.
    pub cpumask: AtomicCpuMask,
    /// Flush generation, bumped by every flush request *before* the flusher reads
    /// `cpumask` and the lazy flags (`context.tlb_gen`). Starts at 1.
    pub tlb_gen: AtomicU64,
    /// Gathers in flight on this address space (`tlb_flush_pending`).
    pub flush_pending: AtomicUsize,
    /// The page-table lock ([`crate::pt_lock`]): taken through [`AddressSpace::lock`].
    pt_lock: PageTableLock,
}

impl AddressSpace {
    /// A new address space whose top-level table is at physical `root`.
    pub fn new(root: PhysAddr) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            root,
            cpumask: AtomicCpuMask::new(),
            tlb_gen: AtomicU64::new(1),
            flush_pending: AtomicUsize::new(0),
            pt_lock: PageTableLock::new(),
        }
    }

    /// A unique, never reused identifier.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Physical address of the top-level page table.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Takes the page-table lock; writing this address space's entries needs the guard.
    pub fn lock(&self) -> PageTableGuard<'_> {
        self.pt_lock.lock(self)
    }

    /// The current flush generation.
    pub fn generation(&self) -> u64 {
        self.tlb_gen.load(Ordering::SeqCst)
    }
}

impl core::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "AddressSpace(id={} root={:#x} gen={})",
            self.id,
            self.root,
            self.generation()
        )
    }
}
