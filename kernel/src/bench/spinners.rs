//! The benchmarks' busy CPUs: a task of the measured address space on each of some
//! CPUs, waiting in a loop until stopped, so that each CPU keeps the address space loaded
//! and not lazy (every flush of it must interrupt the CPU). A spinner halts between
//! interrupts (`hlt`, which keeps emulated CPUs off the host cores under TCG) or spins
//! (`bench.spin=`). Used by `bench=tlb`'s scenario A ([`super::tlb`]) and by
//! `bench=shootdown`'s targets ([`super::shootdown`]).
//!
//! A spinner on a CPU that counts as preempted by the host (the pv model of scenario A,
//! see [`super::tlb`]) is marked so for its whole run.

extern crate alloc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use mm::addr_space::AddressSpace;

use crate::sched::{self, JoinHandle};

/// Running spinners; [`Spinners::stop`] ends them.
pub struct Spinners {
    // Relaxed: a flag polled in a loop; the join that follows is the synchronisation.
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle>,
}

impl Spinners {
    /// Starts a spinner of `mm` on each of `cpus`, halting between interrupts if `halts`;
    /// one on a CPU for which `preempted` holds counts as preempted by the host until it
    /// stops. Returns once every spinner runs (its CPU then has `mm` loaded).
    pub fn start(
        mm: &'static AddressSpace,
        cpus: impl Iterator<Item = usize>,
        halts: bool,
        preempted: impl Fn(usize) -> bool,
    ) -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        // Relaxed: a count polled until complete; nothing is read through it.
        let running = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<JoinHandle> = cpus
            .map(|cpu| {
                let (stop, running) = (stop.clone(), running.clone());
                let preempted = preempted(cpu);
                sched::spawn("bench-spinner", cpu, Some(mm), move || {
                    if preempted {
                        ktest::pv_host::enter_preempted();
                    }
                    running.fetch_add(1, Ordering::Relaxed);
                    while !stop.load(Ordering::Relaxed) {
                        if halts {
                            arch::cpu::wait_for_interrupt();
                        } else {
                            core::hint::spin_loop();
                        }
                    }
                    if preempted {
                        ktest::pv_host::leave_preempted();
                    }
                })
            })
            .collect();
        let deadline = sched::join_deadline();
        while running.load(Ordering::Relaxed) < tasks.len() {
            assert!(
                arch::cpu::rdtsc() < deadline,
                "bench: {} of {} spinners started",
                running.load(Ordering::Relaxed),
                tasks.len()
            );
            core::hint::spin_loop();
        }
        Spinners { stop, tasks }
    }

    /// Stops the spinners and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tasks.into_iter().for_each(|t| t.join(sched::JOIN_BOUND_MS));
    }
}
