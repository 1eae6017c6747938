//! The benchmark's lock-free walkers (`walkers=` in its lines): tasks of the measured
//! address space, one per other CPU, that walk its region with [`tlb::walk`] (the walker's
//! path, which publishes its walk marker) in a loop, interrupts on between walks, until
//! stopped. They only walk: what they read is not checked (the race workload's walkers,
//! `crate::workload`, check it; the benchmark measures).
//!
//! A walker on a CPU that counts as preempted by the host (the pv model of scenario A,
//! see [`super::tlb`]) is marked so for its whole run: the pv flush defers it, and only the
//! table-free sync can reach it.

extern crate alloc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use mm::addr_space::AddressSpace;
use mm::walker::Walk;

use crate::sched::{self, JoinHandle};
use crate::tlb;

/// Running walkers; [`Walkers::stop`] ends them.
pub struct Walkers {
    // Relaxed is enough for all three: `stop` is a flag polled in a loop (the join that
    // follows is the synchronisation), `walks` a count read after the join, `walking` a
    // count polled until it is complete (nothing is read through it).
    stop: Arc<AtomicBool>,
    walks: Arc<AtomicU64>,
    walking: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle>,
}

impl Walkers {
    /// Starts a walker on each of `cpus`, walking the `pages` pages from `va` of `mm` in
    /// turn; one on a CPU for which `preempted` holds counts as preempted by the host
    /// until it stops. Returns once every walker has walked (so that they walk
    /// throughout what follows, even on a host slow to run their vCPUs).
    pub fn start(
        mm: &'static AddressSpace,
        cpus: impl Iterator<Item = usize>,
        va: u64,
        pages: u64,
        preempted: impl Fn(usize) -> bool,
    ) -> Walkers {
        let stop = Arc::new(AtomicBool::new(false));
        let walks = Arc::new(AtomicU64::new(0));
        let walking = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<JoinHandle> = cpus
            .map(|cpu| {
                let (stop, walks, walking) = (stop.clone(), walks.clone(), walking.clone());
                let preempted = preempted(cpu);
                sched::spawn("bench-walker", cpu, Some(mm), move || {
                    if preempted {
                        ktest::pv_host::enter_preempted();
                    }
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let at = va + (n % pages.max(1)) * 4096;
                        let w = tlb::walk(mm, at);
                        assert!(
                            w != Walk::NotLoaded,
                            "bench: walker on cpu {cpu} outside its address space"
                        );
                        if n == 0 {
                            walking.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                    walks.fetch_add(n, Ordering::Relaxed);
                    if preempted {
                        ktest::pv_host::leave_preempted();
                    }
                })
            })
            .collect();
        while walking.load(Ordering::Relaxed) < tasks.len() {
            core::hint::spin_loop();
        }
        Walkers {
            stop,
            walks,
            walking,
            tasks,
        }
    }

    /// How many walkers run (each has walked).
    pub fn count(&self) -> usize {
        self.walking.load(Ordering::Relaxed)
    }

    /// Stops the walkers and waits for them; returns the walks they made.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.tasks.into_iter().for_each(|t| t.join(sched::JOIN_BOUND_MS));
        self.walks.load(Ordering::Relaxed)
    }
}
