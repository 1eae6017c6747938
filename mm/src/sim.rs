//! Simulated CPUs for host tests: a per-CPU software TLB and a backend that runs remote
//! handlers by switching the simulated "current CPU".

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::addr_space::AddressSpace;
use crate::cpumask::CpuMask;
use crate::flush::Mmu;
use crate::hw::{BackendKind, FlushBackend, LocalTlb};
use crate::stats::TlbStats;
use crate::tlb_state::TlbStates;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` as simulated CPU `cpu`.
pub fn on_cpu<R>(cpu: usize, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(cpu));
    let r = f();
    CURRENT.with(|c| c.set(prev));
    r
}

/// A TLB per simulated CPU: cached (root, page) translations.
pub struct SimTlb {
    pub entries: Vec<Mutex<BTreeSet<(u64, u64)>>>,
    pub root: Vec<Mutex<u64>>,
}

impl SimTlb {
    pub fn new(n: usize) -> Self {
        Self {
            entries: (0..n).map(|_| Mutex::new(BTreeSet::new())).collect(),
            root: (0..n).map(|_| Mutex::new(0)).collect(),
        }
    }

    /// The running CPU touches `va` through its loaded root: the translation is cached.
    pub fn touch(&self, va: u64) {
        let cpu = self.this_cpu();
        let root = *self.root[cpu].lock().unwrap();
        self.entries[cpu].lock().unwrap().insert((root, va & !0xfff));
    }

    pub fn cached(&self, cpu: usize, root: u64, va: u64) -> bool {
        self.entries[cpu].lock().unwrap().contains(&(root, va & !0xfff))
    }
}

impl LocalTlb for SimTlb {
    fn this_cpu(&self) -> usize {
        CURRENT.with(|c| c.get())
    }
    fn flush_page(&self, va: u64) {
        let cpu = self.this_cpu();
        self.entries[cpu]
            .lock()
            .unwrap()
            .retain(|&(_, v)| v != va & !0xfff);
    }
    fn flush_all(&self) {
        self.entries[self.this_cpu()].lock().unwrap().clear();
    }
    fn with_irqs_off(&self, f: &mut dyn FnMut()) {
        f()
    }
    fn load_root(&self, root: u64) {
        let cpu = self.this_cpu();
        *self.root[cpu].lock().unwrap() = root;
        self.entries[cpu].lock().unwrap().clear();
    }
}

/// Native-IPI backend: every target runs the handler ("takes the interrupt").
pub struct SimIpi;

impl FlushBackend for SimIpi {
    fn kind(&self) -> BackendKind {
        BackendKind::NativeIpi
    }
    fn flush_others(&self, targets: &CpuMask, handler: &(dyn Fn() + Sync)) -> CpuMask {
        for t in targets.iter() {
            on_cpu(t, handler);
        }
        *targets
    }
}

/// A complete simulated machine.
pub struct Machine {
    pub tlb: SimTlb,
    pub states: TlbStates,
    pub stats: TlbStats,
    pub kernel: AddressSpace,
    pub backend: Box<dyn FlushBackend>,
}

impl Machine {
    pub fn new(n: usize) -> Self {
        Self::with_backend(n, Box::new(SimIpi))
    }

    pub fn with_backend(n: usize, backend: Box<dyn FlushBackend>) -> Self {
        let m = Self {
            tlb: SimTlb::new(n),
            states: TlbStates::new(),
            stats: TlbStats::new(),
            kernel: AddressSpace::new(0x1000),
            backend,
        };
        for c in 0..n {
            on_cpu(c, || m.mmu().switch_mm(&m.kernel));
        }
        m
    }

    pub fn mmu(&self) -> Mmu<'_> {
        Mmu {
            tlb: &self.tlb,
            backend: &*self.backend,
            states: &self.states,
            stats: &self.stats,
            kernel: &self.kernel,
        }
    }
}
