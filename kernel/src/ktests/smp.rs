//! In-kernel tests of SMP bring-up, the tick and the cross-call framework.

extern crate alloc;
use alloc::vec::Vec;
use arch::cpus;
use arch::ipi::{call_on_cpu, call_on_each_cond, call_on_many};
use arch::stats::IpiReason;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::cpumask::CpuMask;

use crate::smp::{self, run_on};

/// A matrix of counters, `hits[dst * n + src]`.
fn matrix(n: usize) -> &'static [AtomicU64] {
    Vec::leak((0..n * n).map(|_| AtomicU64::new(0)).collect())
}

ktest::kernel_test!(
    needs(scale()) fn every_reported_cpu_is_online() {
        let s = smp::summary();
        assert_eq!(
            s.online, s.total,
            "only {}/{} CPUs came online",
            s.online, s.total
        );
        assert_eq!(cpus::online_count(), cpus::count());
    }
);

ktest::kernel_test!(
    needs(scale()) fn every_cpu_takes_timer_ticks() {
        // Every CPU must take a tick; how soon is the host's business (under TCG a vCPU
        // of 288 on a busy 2-core host may not run for a while), so the test waits for
        // all of them and fails only on one that takes none in a minute, naming it.
        const BOUND_MS: u64 = 60_000;
        let before: Vec<u64> = (0..cpus::count())
            .map(|c| cpus::get(c).ticks.load(Ordering::Relaxed))
            .collect();
        let silent = |before: &[u64]| -> Vec<usize> {
            (0..before.len())
                .filter(|&c| cpus::get(c).ticks.load(Ordering::Relaxed) <= before[c])
                .collect()
        };
        let mut waited_ms = 0;
        while !silent(&before).is_empty() && waited_ms < BOUND_MS {
            arch::timer::delay_us(10_000);
            waited_ms += 10;
        }
        let left = silent(&before);
        assert!(left.is_empty(), "cpus {left:?} took no timer tick in {BOUND_MS} ms");
        log::info!("smp: every cpu ticked within {waited_ms} ms");
    }
);

ktest::kernel_test!(
    needs(scale()) fn every_cpu_runs_a_call_from_every_other_cpu() {
        let n = cpus::count();
        let hits = matrix(n);
        let before = arch::cpus::ipi_totals();
        let all = CpuMask::first(n);
        for src in 0..n {
            let body = move || {
                let mut others = all;
                others.clear(src);
                call_on_many(&others, IpiReason::Call, &|| {
                    hits[arch::percpu::cpu_index() * n + src].fetch_add(1, Ordering::Relaxed);
                });
            };
            if src == 0 { body() } else { run_on(src, body) }
        }
        for dst in 0..n {
            for src in 0..n {
                let want = u64::from(dst != src);
                assert_eq!(
                    hits[dst * n + src].load(Ordering::Relaxed),
                    want,
                    "cpu {dst} ran calls from cpu {src}"
                );
            }
        }
        let d = arch::cpus::ipi_totals() - before;
        let expected = (n * (n - 1)) as u64;
        assert_eq!(d.sent[IpiReason::Call as usize], expected);
        assert_eq!(d.received[IpiReason::Call as usize], expected);
    }
);

ktest::kernel_test!(
    needs(scale()) fn call_on_cpu_and_conditional_calls_reach_exactly_their_targets() {
        let n = cpus::count();
        let hits = matrix(n);
        for cpu in 0..n {
            call_on_cpu(cpu, IpiReason::Call, &|| {
                hits[arch::percpu::cpu_index()].fetch_add(1, Ordering::Relaxed);
            });
        }
        call_on_each_cond(|c| c % 2 == 1, IpiReason::Call, &|| {
            hits[arch::percpu::cpu_index()].fetch_add(10, Ordering::Relaxed);
        });
        for (c, hit) in hits.iter().enumerate().take(n) {
            let want = 1 + if c % 2 == 1 { 10 } else { 0 };
            assert_eq!(hit.load(Ordering::Relaxed), want, "cpu {c}");
        }
    }
);

ktest::kernel_test!(
    needs(scale()) fn call_storm_all_to_all_loses_nothing_and_does_not_deadlock() {
        let n = cpus::count();
        // Enough rounds to overlap heavily; fewer with many CPUs (TCG on two host cores).
        let rounds = (400 / n as u64).clamp(2, 50);
        let hits = matrix(n);
        let all = CpuMask::first(n);
        let storm = move || {
            let me = arch::percpu::cpu_index();
            for _ in 0..rounds {
                call_on_many(&all, IpiReason::Call, &|| {
                    hits[arch::percpu::cpu_index() * n + me].fetch_add(1, Ordering::Relaxed);
                });
            }
        };
        // Every AP starts its storm, then this CPU joins: all call all at the same time.
        let posted: Vec<_> = (1..n)
            .map(|c| crate::sched::spawn("storm", c, None, storm))
            .collect();
        storm();
        // A stuck CPU fails the run from the watchdog in its cross call (no progress over
        // two bounds); the join's own bound is only against a silent hang, so generous:
        // at 288 CPUs on a busy two-core host the storm took over 56 s here.
        posted.into_iter().for_each(|p| p.join(crate::sched::JOIN_BOUND_MS));
        for (i, hit) in hits.iter().enumerate() {
            assert_eq!(hit.load(Ordering::Relaxed), rounds, "dst {} src {}", i / n, i % n);
        }
    }
);

ktest::kernel_test!(needs(scale()) should_panic(expected = "waits for a cross call with interrupts disabled") fn waiting_for_a_call_with_interrupts_off_is_caught() {
    arch::irq::disable();
    call_on_many(&CpuMask::first(cpus::count()), IpiReason::Call, &|| {});
});

ktest::kernel_test!(should_panic(expected = "waits for a cross call with interrupts disabled") fn a_wait_reached_with_interrupts_off_around_its_capability_is_caught() {
    // The capability was made with interrupts on; a path the types do not see turns them
    // off around its holder. The wait reads the flag again and refuses.
    let on = mm::irq::IrqsOn::check(&arch::cpu::X86Cpu, "starts a test");
    arch::irq::disable();
    let others = CpuMask::first(cpus::count()).and_not(&CpuMask::from_iter([arch::percpu::cpu_index()]));
    arch::ipi::call_handler_on_many(&on, &others, IpiReason::Call, &|_| {});
});

ktest::kernel_test!(
    needs(scale()) fn a_call_whose_mask_names_cpus_not_online_runs_on_the_online_ones() {
        // `call_on_many` runs on the *online* CPUs of its mask: one that is not online has
        // no handler to answer, and waiting for it would never end (`ipi.rs`).
        let n = cpus::count();
        if n == mm::cpumask::MAX_CPUS {
            return; // no index is left that names no CPU
        }
        static RAN: AtomicU64 = AtomicU64::new(0);
        RAN.store(0, Ordering::SeqCst);
        call_on_many(&CpuMask::first(n + 1), IpiReason::Call, &|| {
            RAN.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(RAN.load(Ordering::SeqCst), n as u64, "CPUs that ran the call");
    }
);

ktest::kernel_test!(needs(scale()) should_panic(expected = "deliberate panic on cpu") fn a_panic_on_another_cpu_is_reported_with_that_cpu() {
    // With one CPU this panics here; with more, on the last CPU (the report names it).
    let last = cpus::count() - 1;
    if last == 0 {
        panic!("deliberate panic on cpu 0");
    }
    run_on(last, move || panic!("deliberate panic on cpu {last}"));
});

/// Cross-call handlers that ran with interrupts enabled (must stay 0).
static HANDLERS_WITH_IRQS_ON: AtomicU64 = AtomicU64::new(0);
/// Cross-call handlers that ran.
static HANDLERS_RUN: AtomicU64 = AtomicU64::new(0);

fn record_interrupt_state() {
    HANDLERS_RUN.fetch_add(1, Ordering::Relaxed);
    if arch::irq::are_enabled() {
        HANDLERS_WITH_IRQS_ON.fetch_add(1, Ordering::Relaxed);
    }
}

ktest::kernel_test!(
    needs(cpus(2).and(scale())) fn cross_call_handlers_run_with_interrupts_off_even_from_a_waiters_loop() {
        // CPUs 0 and 1 call each other at once, over and over: each spends most of its
        // time waiting for its own call, so the other's requests are served from the
        // wait loop as often as from the IPI handler.
        HANDLERS_WITH_IRQS_ON.store(0, Ordering::SeqCst);
        HANDLERS_RUN.store(0, Ordering::SeqCst);
        const ROUNDS: u64 = 500;
        let other = crate::sched::spawn("caller", 1, None, || {
            for _ in 0..ROUNDS {
                call_on_cpu(0, IpiReason::Call, &record_interrupt_state);
            }
        });
        for _ in 0..ROUNDS {
            call_on_cpu(1, IpiReason::Call, &record_interrupt_state);
        }
        // Only against a silent hang (a stuck call fails from the watchdog first):
        // generous, as a loaded host can make 500 TCG round trips slow at -smp 288.
        other.join(crate::sched::JOIN_BOUND_MS);
        let on = HANDLERS_WITH_IRQS_ON.load(Ordering::SeqCst);
        log::info!(
            "ipi: handlers={} with_irqs_on={on}",
            HANDLERS_RUN.load(Ordering::SeqCst)
        );
        assert_eq!(on, 0, "{on} cross-call handlers ran with interrupts enabled");
    }
);

ktest::kernel_test!(
    needs(cpus(2).and(scale())) fn a_waiter_serves_its_queue_with_interrupts_off() {
        // Deterministically through the wait loop: CPU 1 keeps its call IPI pending (task
        // priority 15, interrupts still enabled), so the request CPU 0 queues for it can
        // only run from CPU 1's loop while it waits for its own call to CPU 0, which CPU
        // 0 answers only after 100 ms with interrupts off.
        static STAGE: AtomicU64 = AtomicU64::new(0);
        HANDLERS_WITH_IRQS_ON.store(0, Ordering::SeqCst);
        HANDLERS_RUN.store(0, Ordering::SeqCst);
        STAGE.store(0, Ordering::SeqCst);
        let waiter = crate::sched::spawn("waiter", 1, None, || {
            arch::cpu::set_task_priority(15);
            STAGE.store(1, Ordering::SeqCst);
            while STAGE.load(Ordering::SeqCst) < 2 {
                core::hint::spin_loop();
            }
            call_on_cpu(0, IpiReason::Call, &|| {});
            arch::cpu::set_task_priority(0);
        });
        while STAGE.load(Ordering::SeqCst) < 1 {
            core::hint::spin_loop();
        }
        arch::ipi::call_on_many_nowait(
            &CpuMask::from_iter([1]),
            IpiReason::Call,
            alloc::boxed::Box::new(record_interrupt_state),
        );
        arch::irq::without_interrupts(|| {
            STAGE.store(2, Ordering::SeqCst);
            arch::timer::delay_us(100_000);
        });
        waiter.join(crate::sched::JOIN_BOUND_MS); // against a silent hang only, as above

        assert_eq!(HANDLERS_RUN.load(Ordering::SeqCst), 1);
        assert_eq!(
            HANDLERS_WITH_IRQS_ON.load(Ordering::SeqCst),
            0,
            "the handler served from the wait loop ran with interrupts enabled"
        );
    }
);
