//! The idle loop, and what an idle CPU does with the address space it holds lazily
//! (`idle.leave_mm=`, [`Idle`]).
//!
//! A CPU whose last task ended keeps that task's address space loaded, lazily (Linux's
//! lazy TLB): a flush without freed tables skips it, but one that frees or unshares tables
//! must interrupt it (its paging-structure caches could reach the freed table), so every
//! unmap that frees a table costs an IPI to each idle CPU (the benchmark's scenario C).
//! With `always` the CPU lets go of the address space each time it is about to halt
//! (`mm::flush::Mmu::leave_lazy_on_idle`: a `switch_mm` to the kernel's tables; the
//! safety argument is rule 7 of `mm/src/flush.rs`); with `deep` only once it has stayed
//! idle through a whole tick (nothing ran, no task woke: it expects to stay idle, and a
//! CPU that is only briefly between tasks of one address space does not pay a CR3 load
//! and a catch-up for nothing); with `never` it keeps it (Linux since 4.14).

use core::sync::atomic::{AtomicU8, Ordering};

use arch::irq as interrupts;
use bench_spec::Idle;

use super::{rq, schedule, this_cpu};

/// The policy a boot runs with unless `idle.leave_mm=` says otherwise: `deep`, from the
/// benchmark (docs/benchmarks.md, issue 23): with it, as with `always`, an unmap that
/// frees a table interrupts no CPU that has slept through a tick (0 flush IPIs per unmap
/// in scenario C at 2, 4 and 8 CPUs, against N-1 with `never`), while a CPU idle for
/// less than a tick between tasks keeps the address space and pays no CR3 load and no
/// catch-up when the next task of it runs.
pub const DEFAULT_IDLE: Idle = Idle::Deep;

/// The policy in force (an [`Idle`] as its index). Relaxed: a setting read at each halt,
/// which publishes nothing; a CPU that reads the old one for one more halt is harmless.
static POLICY: AtomicU8 = AtomicU8::new(0);

/// Sets the policy (boot option `idle.leave_mm=`; the benchmark sets each in turn).
pub fn set_idle_policy(policy: Idle) {
    let i = Idle::ALL.iter().position(|&p| p == policy).unwrap_or(0);
    POLICY.store(i as u8, Ordering::Relaxed);
}

/// The policy in force.
pub fn idle_policy() -> Idle {
    Idle::ALL[POLICY.load(Ordering::Relaxed) as usize]
}

/// The idle loop of a CPU: run ready tasks, else (after the policy's leave) halt until an
/// interrupt.
pub fn idle_loop() -> ! {
    // The tick count when this CPU last found nothing to run after having work, and the
    // run queue's switch count then: a task may also have run without this loop seeing
    // work (a reschedule IPI or a tick switches to it from inside the halt below), and
    // the count says so.
    let mut idle_since: Option<(u64, u64)> = None;
    loop {
        interrupts::disable();
        let (has_work, switches) = rq(this_cpu())
            .lock()
            .as_ref()
            .map_or((false, 0), |q| (!q.ready.is_empty(), q.switches));
        if has_work {
            idle_since = None;
            interrupts::enable();
            schedule();
            continue;
        }
        let ticks = arch::percpu::current().map_or(0, |c| c.ticks.load(Ordering::Relaxed));
        if idle_since.is_some_and(|(_, seen)| seen != switches) {
            idle_since = None;
        }
        let (since, _) = *idle_since.get_or_insert((ticks, switches));
        let leave = match idle_policy() {
            Idle::Never => false,
            Idle::Always => true,
            // The second tick taken while idle: a whole tick period has passed with
            // nothing to run (the first may come at once after the CPU went idle).
            Idle::Deep => ticks >= since + 2,
        };
        if leave {
            mm::irq::IrqsOff::entered(&arch::cpu::X86Cpu, "lets go of a lazy address space", |off| {
                crate::tlb::mmu().leave_lazy_on_idle(off)
            });
        }
        arch::cpu::wait_for_interrupt();
    }
}
