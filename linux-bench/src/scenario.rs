//! Scenarios A, B and C of the benchmark, for a Linux process (the same definitions as
//! gatherOS's `bench=tlb`): A, a thread of the process spins on every other CPU; B, the
//! process never ran on another CPU; C, before each operation a thread of it runs
//! briefly on every other CPU and goes to sleep, so those CPUs hold its address space
//! lazily (idle, `cpu_tlbstate.is_lazy`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bench_spec::Scenario;

use crate::sys;

/// Threads of one scenario, pinned to CPUs 1..n.
pub struct Threads {
    kind: Scenario,
    stop: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    acks: Vec<Arc<AtomicU64>>,
    threads: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Starts scenario `kind` on `cpus` CPUs; the caller stays on CPU 0.
    pub fn start(kind: Scenario, cpus: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let mut acks = Vec::new();
        let mut threads = Vec::new();
        let threads_run = match kind {
            Scenario::A | Scenario::C => true,
            Scenario::B => false,
        };
        if threads_run {
            for cpu in 1..cpus {
                let (stop, generation) = (stop.clone(), generation.clone());
                let ack = Arc::new(AtomicU64::new(0));
                acks.push(ack.clone());
                threads.push(std::thread::spawn(move || {
                    sys::pin_to(cpu);
                    ack.store(u64::MAX, Ordering::SeqCst);
                    if kind == Scenario::A {
                        // A user thread cannot halt and stay the CPU's current task:
                        // it spins.
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                        return;
                    }
                    loop {
                        std::thread::park();
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        ack.store(generation.load(Ordering::SeqCst), Ordering::SeqCst);
                    }
                }));
            }
            // Every thread reached its CPU.
            while acks.iter().any(|a| a.load(Ordering::SeqCst) != u64::MAX) {
                std::thread::yield_now();
            }
        }
        Self {
            kind,
            stop,
            generation,
            acks,
            threads,
        }
    }

    /// Before an operation: in C, wakes every thread once and waits until all have run
    /// and gone back to sleep (their CPUs idle, holding the address space lazily).
    pub fn before_op(&self) {
        match self.kind {
            Scenario::C => {}
            Scenario::A | Scenario::B => return,
        }
        let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        for t in &self.threads {
            t.thread().unpark();
        }
        while self.acks.iter().any(|a| a.load(Ordering::SeqCst) != g) {
            std::hint::spin_loop();
        }
        // The acknowledgement comes just before each thread parks; give the CPUs time to
        // switch to idle (outside the measured window).
        std::thread::sleep(Duration::from_micros(500));
    }

    /// Stops and joins the threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
