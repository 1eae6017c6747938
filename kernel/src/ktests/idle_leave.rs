//! In-kernel tests of the idle policy (`idle.leave_mm=`, `crate::sched::idle`): what an
//! idle CPU does with the address space it held lazily, seen on the machine.
//!
//! Each test sets the policy for its run (`sched::set_idle_policy`) and restores the one
//! in force after ([`with_policy`]). A failing test panics, which ends the boot (the
//! harness resumes in a new boot): that boot starts again from the boot option's policy,
//! so no later test inherits the one a failed test set.
//!
//! What is observed is the machine, not mm's bookkeeping: CPU k's CR3, read on CPU k in a
//! cross call (`Cr3::read`), arch's per-CPU count of flush IPIs taken, the value a task
//! reads through its own TLB, and CPU k's own tick count. (mm's CPU mask is checked too:
//! it is what a flusher reads.)
//!
//! - [`idle_cpu_lets_go_with_always_and_keeps_with_never`]: a task of mm runs on CPU 1
//!   and ends; CPU 1 idles. With `always` its CR3 holds the kernel's root, it is out of
//!   mm's mask, and an unmap that frees a table sends it no flush IPI; with `never` its
//!   CR3 still holds mm's root and the same unmap interrupts it.
//! - [`a_cpu_that_left_on_idle_catches_up_when_mm_runs_on_it_again`]: after CPU 1 let go,
//!   a page of mm is remapped to another frame (its table freed, or kept); a task of mm on
//!   CPU 1 reads the new frame.
//! - [`deep_keeps_the_address_space_until_a_tick_of_idleness`]: with `deep` CPU 1 still
//!   holds mm right after going idle (no tick since its task ended) and has let go once
//!   three of its ticks have passed.
//! - [`the_race_detector_and_the_oracle_stay_at_zero_under_every_policy`]: the race
//!   workload (a short run on the fallback path) and the coherence oracle (unmap with
//!   freed tables and with kept tables, and release, in scenarios A and C) under
//!   `never`, `deep` and `always`.
//!
//! CPU 0 runs the harness in its boot context, which is its idle task: `sleep_ticks`
//! does not sleep there, so the tests wait for CPU 1's own tick count instead (which is
//! also what `deep` reads).

use arch::cpus;
use arch::ipi::call_on_cpu;
use arch::stats::IpiReason;
use bench_spec::Idle;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr_space::AddressSpace;
use mm::hw::PhysMem;
use x86_64::registers::control::Cr3;

use crate::ktests::oracle::{Op, Scenario, Tables, check_each_idle_policy};
use crate::mem::phys::MEM;
use crate::workload::{RaceConfig, log_result, race};
use crate::{mem, sched, tlb, user_space};

/// The CPU that runs the task and goes idle.
const K: usize = 1;
/// The user address every test maps.
const X: u64 = 0x4000_0000;

/// Runs `f` with the idle policy `policy`, then restores the one in force before.
fn with_policy<R>(policy: Idle, f: impl FnOnce() -> R) -> R {
    let before = sched::idle_policy();
    sched::set_idle_policy(policy);
    let r = f();
    sched::set_idle_policy(before);
    r
}

/// CPU `cpu`'s CR3 (the root's address) and tick count, read on that CPU in a cross call.
fn cr3_and_ticks_on(cpu: usize) -> (u64, u64) {
    static CR3: AtomicU64 = AtomicU64::new(0);
    static TICKS: AtomicU64 = AtomicU64::new(0);
    call_on_cpu(cpu, IpiReason::Call, &|| {
        CR3.store(Cr3::read().0.start_address().as_u64(), Ordering::SeqCst);
        let ticks = arch::percpu::current().map_or(0, |c| c.ticks.load(Ordering::Relaxed));
        TICKS.store(ticks, Ordering::SeqCst);
    });
    (CR3.load(Ordering::SeqCst), TICKS.load(Ordering::SeqCst))
}

fn cr3_on(cpu: usize) -> u64 {
    cr3_and_ticks_on(cpu).0
}

fn ticks_of(cpu: usize) -> u64 {
    cpus::get(cpu).ticks.load(Ordering::Relaxed)
}

fn flush_ipis_received(cpu: usize) -> u64 {
    cpus::get(cpu).ipis.snapshot().received[IpiReason::Flush as usize]
}

fn kernel_root() -> u64 {
    tlb::kernel_mm().root().as_u64()
}

/// Waits (spinning on CPU 0) until CPU `cpu` has taken `n` more timer ticks than
/// `since`. Bounded against a silent hang only: 10 s of TSC.
fn wait_ticks(cpu: usize, since: u64, n: u64) {
    // Bounded like a join (only against a hang): a loaded host may starve a vCPU for long.
    let end = sched::join_deadline();
    while ticks_of(cpu) < since + n {
        assert!(
            arch::cpu::rdtsc() < end,
            "idle test: cpu {cpu} took {} of {n} ticks in {} ms",
            ticks_of(cpu) - since,
            sched::JOIN_BOUND_MS
        );
        core::hint::spin_loop();
    }
}

fn frame_with(value: u64) -> u64 {
    let f = MEM.alloc_frame().expect("frame").as_u64();
    mem::phys::write_phys(f, value);
    f
}

/// Runs a task of `mm` on CPU [`K`] that reads X; returns what it read and CPU K's tick
/// count when it ended (read by the task on its own CPU).
fn read_x_on_k(mm: &'static AddressSpace) -> (u64, u64) {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static ENDED_AT: AtomicU64 = AtomicU64::new(0);
    sched::spawn("idle-reader", K, Some(mm), || {
        // SAFETY: the task's address space maps X (set up by the test).
        SEEN.store(
            unsafe { core::ptr::read_volatile(X as *const u64) },
            Ordering::SeqCst,
        );
        let ticks = arch::percpu::current().map_or(0, |c| c.ticks.load(Ordering::Relaxed));
        ENDED_AT.store(ticks, Ordering::SeqCst);
    })
    .join(sched::JOIN_BOUND_MS);
    (SEEN.load(Ordering::SeqCst), ENDED_AT.load(Ordering::SeqCst))
}

ktest::kernel_test!(
    needs(native().and_cpus(2).and(up_to_cpus(4)).and(bios())) fn idle_cpu_lets_go_with_always_and_keeps_with_never() {
        for policy in [Idle::Always, Idle::Never] {
            with_policy(policy, || {
                let mm = user_space::new_address_space();
                mem::phys::write_phys(user_space::map_new_page(mm, X), 1);
                let (seen, ended_at) = read_x_on_k(mm);
                assert_eq!(seen, 1);
                // Two of CPU K's ticks: its idle loop has run (and halted) since.
                wait_ticks(K, ended_at, 2);
                let cr3 = cr3_on(K);
                let in_mask = mm.cpumask.contains(K);
                let ipis = flush_ipis_received(K);
                // The page was the only one of its PTE table: the unmap frees tables.
                user_space::unmap(mm, X, X + 4096);
                let got = flush_ipis_received(K) - ipis;
                let name = policy.name();
                match policy {
                    Idle::Always => {
                        assert_eq!(cr3, kernel_root(), "idle={name}: cpu {K}'s CR3 is not the kernel's root (mm's is {:#x})", mm.root().as_u64());
                        assert!(!in_mask, "idle={name}: cpu {K} is still in mm's mask");
                        assert_eq!(got, 0, "idle={name}: the unmap that freed a table interrupted idle cpu {K}");
                    }
                    _ => {
                        assert_eq!(cr3, mm.root().as_u64(), "idle={name}: cpu {K}'s CR3 is not mm's root (kernel's is {:#x})", kernel_root());
                        assert!(in_mask, "idle={name}: cpu {K} is not in mm's mask");
                        assert_eq!(got, 1, "idle={name}: the unmap that freed a table sent idle cpu {K} {got} flush IPIs, not 1");
                    }
                }
                user_space::destroy(mm);
            });
        }
    }
);

ktest::kernel_test!(
    needs(native().and_cpus(2).and(up_to_cpus(4)).and(bios())) fn a_cpu_that_left_on_idle_catches_up_when_mm_runs_on_it_again() {
        with_policy(Idle::Always, || {
            // The remapped page alone in its PTE table (freed by the unmap), or with a
            // neighbour that keeps the table.
            for keep_table in [false, true] {
                let mm = user_space::new_address_space();
                mem::phys::write_phys(user_space::map_new_page(mm, X), 1);
                if keep_table {
                    user_space::map_new_page(mm, X + 4096);
                }
                let (seen, ended_at) = read_x_on_k(mm);
                assert_eq!(seen, 1);
                wait_ticks(K, ended_at, 2);
                assert_eq!(cr3_on(K), kernel_root(), "cpu {K} did not let go on idle");
                let ipis = flush_ipis_received(K);
                user_space::unmap(mm, X, X + 4096);
                user_space::map_frame(mm, X, frame_with(2));
                assert_eq!(flush_ipis_received(K), ipis, "cpu {K}, away, was interrupted (keep_table={keep_table})");
                let (seen, _) = read_x_on_k(mm);
                assert_eq!(seen, 2, "cpu {K} read the old frame's contents after coming back (keep_table={keep_table})");
                user_space::destroy(mm);
            }
        });
    }
);

/// Tries of [`deep_keeps_the_address_space_until_a_tick_of_idleness`]'s checks: CPU K is
/// asked for its CR3 right after its task ended (and again right after its first tick),
/// and a try where one more of its ticks came first says nothing (it may have let go,
/// rightly); under a loaded host that happens now and then. A try that sees both ends
/// the loop, so the tries cost time only on a host that keeps getting in the way.
const DEEP_TRIES: usize = 30;

ktest::kernel_test!(
    needs(native().and_cpus(2).and(up_to_cpus(4)).and(bios())) fn deep_keeps_the_address_space_until_a_tick_of_idleness() {
        with_policy(Idle::Deep, || {
            let mm = user_space::new_address_space();
            mem::phys::write_phys(user_space::map_new_page(mm, X), 1);
            let mut kept_seen = None;
            let mut one_tick_seen = None;
            for i in 1..=DEEP_TRIES {
                let (_, ended_at) = read_x_on_k(mm);
                let (cr3, ticks) = cr3_and_ticks_on(K);
                if ticks == ended_at {
                    // No tick of CPU K since its task ended: it must still hold mm.
                    assert_eq!(cr3, mm.root().as_u64(), "idle=deep: cpu {K} let go before a tick of idleness (try {i})");
                    assert!(mm.cpumask.contains(K), "idle=deep: cpu {K} left mm's mask before a tick of idleness");
                    kept_seen.get_or_insert(i);
                }
                // One tick of CPU K since its task ended is not a whole tick period of
                // idleness (that tick may have come right after the task ended): it must
                // still hold mm then too.
                wait_ticks(K, ended_at, 1);
                let (cr3, ticks) = cr3_and_ticks_on(K);
                if ticks == ended_at + 1 {
                    assert_eq!(
                        cr3,
                        mm.root().as_u64(),
                        "idle=deep: cpu {K} let go after one tick of idleness, not a whole tick period (try {i})"
                    );
                    one_tick_seen.get_or_insert(i);
                }
                // Three of its ticks later it has stayed idle through a whole one.
                wait_ticks(K, ended_at, 3);
                assert_eq!(cr3_on(K), kernel_root(), "idle=deep: cpu {K} still holds mm after 3 ticks of idleness (try {i})");
                assert!(!mm.cpumask.contains(K), "idle=deep: cpu {K} is still in mm's mask after 3 ticks");
                if kept_seen.is_some() && one_tick_seen.is_some() {
                    break;
                }
            }
            let i = kept_seen.unwrap_or_else(|| panic!("idle=deep: a tick of cpu {K} came before every one of {DEEP_TRIES} checks"));
            let j = one_tick_seen.unwrap_or_else(|| {
                panic!("idle=deep: cpu {K}'s second tick came before every one of {DEEP_TRIES} one-tick checks")
            });
            log::info!("idle: deep kept_seen_on_try={i} one_tick_seen_on_try={j} tries={DEEP_TRIES}");
            user_space::destroy(mm);
        });
    }
);

/// Rounds of the race workload per policy (the fallback path: a flush and a sync per
/// table): a few seconds in all.
const RACE_ROUNDS: u64 = 4;

ktest::kernel_test!(
    needs(native().and_cpus(2).and(up_to_cpus(4)).and(bios())) fn the_race_detector_and_the_oracle_stay_at_zero_under_every_policy() {
        for &policy in Idle::ALL {
            let r = with_policy(policy, || race(RaceConfig::new(RACE_ROUNDS, true, 200)));
            log_result(&alloc::format!("idle-{}", policy.name()), &r);
            assert_eq!(r.frames_leaked, 0, "idle={}: frames leaked", policy.name());
            assert_eq!(
                (r.delta.get(mm::stats::TlbEvent::PoisonHits), r.bad_reads),
                (0, 0),
                "idle={}: poison hits, bad reads: {}",
                policy.name(),
                r.delta.gather_line()
            );
        }
        let unmap = |tables| Op::Unmap { pages: 1, tables, batch: true };
        for (op, scen) in [
            (unmap(Tables::Free), Scenario::C),
            (unmap(Tables::Keep), Scenario::C),
            (Op::Release, Scenario::A),
            (Op::Release, Scenario::C),
        ] {
            check_each_idle_policy(op, scen);
        }
    }
);
