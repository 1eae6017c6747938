//! The scheduler: per-CPU run queues of pinned tasks, round-robin, preempted by the
//! LAPIC tick, with voluntary yield and sleep.
//!
//! It exists to make TLB state real. Switching to a task with an address space calls
//! `switch_mm` (join its CPU mask, load CR3, catch up with its generation); switching to a
//! kernel thread keeps the previous address space loaded and marks the CPU lazy
//! (`enter_lazy_tlb`), as Linux does. Each CPU's boot context is its idle task.
//!
//! Rules: run-queue locks are taken with interrupts off; `schedule` runs with interrupts
//! off; tasks never migrate, so a task's CPU index is stable (the cross-call and flush
//! code rely on that). Preemption happens only where interrupts are enabled, so code
//! holding an interrupts-off lock is never preempted.

mod idle;
mod task;

pub use idle::{DEFAULT_IDLE, idle_loop, idle_policy, set_idle_policy};

extern crate alloc;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use arch::irq as interrupts;
use core::sync::atomic::Ordering;
use mm::addr_space::AddressSpace;

pub use task::Task;
use task::{DEAD, RUNNABLE, SLEEPING};

struct RunQueue {
    current: Arc<Task>,
    idle: Arc<Task>,
    ready: VecDeque<Arc<Task>>,
    sleeping: Vec<Arc<Task>>,
    zombie: Option<Arc<Task>>,
    /// Switches to a task other than idle so far: the idle loop's way to see that a task
    /// ran since it last looked, also one a reschedule IPI or a tick switched to from
    /// inside its halt (`idle::idle_loop`, the `deep` policy).
    switches: u64,
}

static RQS: spin::Once<Vec<spin::Mutex<Option<RunQueue>>>> = spin::Once::new();

fn rq(cpu: usize) -> &'static spin::Mutex<Option<RunQueue>> {
    &RQS.call_once(|| (0..arch::cpus::count()).map(|_| spin::Mutex::new(None)).collect())[cpu]
}

fn this_cpu() -> usize {
    arch::percpu::cpu_index()
}

/// Makes the running context CPU `cpu`'s idle task. Once per CPU, at bring-up.
pub fn init_cpu(cpu: usize) {
    let idle = Arc::new(Task::boot_context(cpu));
    interrupts::without_interrupts(|| {
        *rq(cpu).lock() = Some(RunQueue {
            current: idle.clone(),
            idle,
            ready: VecDeque::new(),
            sleeping: Vec::new(),
            zombie: None,
            switches: 0,
        })
    });
}

/// The scheduler's tick (from the LAPIC timer, through `crate::hooks`): wakes the
/// sleepers whose time has come, and preempts the running task if another is ready.
pub fn on_tick() {
    let now = arch::percpu::current().map_or(0, |p| p.ticks.load(Ordering::Relaxed));
    let cpu = this_cpu();
    let preempt = {
        let mut guard = rq(cpu).lock();
        let Some(q) = guard.as_mut() else { return };
        let mut i = 0;
        while i < q.sleeping.len() {
            if q.sleeping[i].wake_tick.load(Ordering::Relaxed) <= now {
                let t = q.sleeping.swap_remove(i);
                t.state.store(RUNNABLE, Ordering::Release);
                q.ready.push_back(t);
            } else {
                i += 1;
            }
        }
        !q.ready.is_empty()
    };
    if preempt {
        schedule();
    }
}

/// Picks the next task on this CPU and switches to it (round robin; idle if none).
pub fn schedule() {
    let cpu = this_cpu();
    let was_enabled = interrupts::are_enabled();
    interrupts::disable();
    let (prev_rsp, next_rsp, next_mm) = {
        let mut guard = rq(cpu).lock();
        let Some(q) = guard.as_mut() else {
            drop(guard);
            if was_enabled {
                interrupts::enable();
            }
            return;
        };
        let prev = q.current.clone();
        let is_idle = Arc::ptr_eq(&prev, &q.idle);
        match prev.state.load(Ordering::Acquire) {
            RUNNABLE if !is_idle => q.ready.push_back(prev.clone()),
            SLEEPING => q.sleeping.push(prev.clone()),
            DEAD => q.zombie = Some(prev.clone()),
            _ => {}
        }
        let next = q.ready.pop_front().unwrap_or_else(|| q.idle.clone());
        if Arc::ptr_eq(&next, &prev) {
            drop(guard);
            if was_enabled {
                interrupts::enable();
            }
            return;
        }
        q.current = next.clone();
        if !Arc::ptr_eq(&next, &q.idle) {
            q.switches += 1;
        }
        (prev.rsp.get(), unsafe_rsp(&next), next.mm())
    };
    let mmu = crate::tlb::mmu();
    match next_mm {
        Some(mm) => {
            mm::irq::IrqsOff::entered(&arch::cpu::X86Cpu, "switches tasks", |off| mmu.switch_mm(off, mm))
        }
        None => mmu.enter_lazy_tlb(),
    }
    // The release step this task may be in is its own, not the next task's.
    let teardown_step = arch::teardown_record::suspend();
    // SAFETY: interrupts are off; `prev_rsp` belongs to a task kept alive by the run
    // queue (ready, sleeping or zombie); `next_rsp` was saved by a switch or prepared
    // by `Task::spawn`.
    unsafe { arch::context::switch_stack(prev_rsp, next_rsp) };
    arch::teardown_record::resume(teardown_step);
    after_switch();
    if was_enabled {
        interrupts::enable();
    }
}

fn unsafe_rsp(t: &Task) -> u64 {
    // SAFETY: the task is not running (it is being switched to), so its saved stack
    // pointer is stable; only this CPU touches it, with interrupts off.
    unsafe { *t.rsp.get() }
}

/// Frees the task that died before this switch (its stack is no longer in use).
fn after_switch() {
    let z = rq(this_cpu()).lock().as_mut().and_then(|q| q.zombie.take());
    drop(z);
}

/// First code of every spawned task.
extern "C" fn task_entry() -> ! {
    after_switch();
    let me = current();
    let f = me.entry.lock().take().expect("task started twice");
    interrupts::enable();
    f();
    me.done.store(true, Ordering::Release);
    me.state.store(DEAD, Ordering::Release);
    drop(me);
    schedule();
    unreachable!("a dead task was scheduled again");
}

/// The running task.
pub fn current() -> Arc<Task> {
    interrupts::without_interrupts(|| {
        rq(this_cpu())
            .lock()
            .as_ref()
            .expect("scheduler not ready")
            .current
            .clone()
    })
}

/// Gives the CPU to the next ready task, if any.
pub fn yield_now() {
    schedule();
}

/// Sleeps for at least `ticks` timer ticks.
pub fn sleep_ticks(ticks: u64) {
    let now = arch::percpu::current().map_or(0, |p| p.ticks.load(Ordering::Relaxed));
    let me = current();
    me.wake_tick.store(now + ticks.max(1), Ordering::Relaxed);
    me.state.store(SLEEPING, Ordering::Release);
    drop(me);
    schedule();
}

/// Makes the running task use `mm` (`kthread_use_mm`), or drop back to being a kernel
/// thread (None: the CPU keeps the address space lazily).
pub fn use_mm(mm: Option<&'static AddressSpace>) {
    interrupts::without_interrupts(|| {
        let me = current();
        // SAFETY: the task's own CPU, interrupts off.
        unsafe { *me.mm.get() = mm };
        let mmu = crate::tlb::mmu();
        match mm {
            Some(mm) => mm::irq::IrqsOff::entered(&arch::cpu::X86Cpu, "uses an address space", |off| {
                mmu.switch_mm(off, mm)
            }),
            None => mmu.enter_lazy_tlb(),
        }
    });
}

/// The bound every join uses: only against a silent hang, past the watchdog's last word
/// (310 s by default), so that the watchdog names a stuck CPU first. What the joined tasks wait
/// for is bounded by the watchdog, and under TCG on a busy host a vCPU may be off its
/// host core for seconds, so a tighter bound would make host load a verdict.
pub const JOIN_BOUND_MS: u64 = 600_000;

/// The TSC at which a wait bounded like a join ([`JOIN_BOUND_MS`] from now) gives up: for
/// tests' waits on other CPUs, which a loaded host may starve for long.
pub fn join_deadline() -> u64 {
    arch::cpu::rdtsc() + JOIN_BOUND_MS * (arch::timer::tsc_hz() / 1000)
}

/// A spawned task, to wait for.
pub struct JoinHandle(Arc<Task>);

impl JoinHandle {
    /// Waits until the task's function returned; panics with a message after
    /// `timeout_ms` (no silent hangs).
    pub fn join(self, timeout_ms: u64) {
        let end = arch::cpu::rdtsc() + timeout_ms * arch::timer::tsc_hz() / 1000;
        let same_cpu = self.0.cpu == this_cpu();
        while !self.0.done.load(Ordering::Acquire) {
            assert!(
                arch::cpu::rdtsc() < end,
                "sched: task '{}' on cpu {} did not finish in {timeout_ms} ms",
                self.0.name,
                self.0.cpu
            );
            if same_cpu {
                yield_now();
            }
            core::hint::spin_loop();
        }
    }
}

/// Starts `f` as a task on `cpu`, in address space `mm` (None: a kernel thread).
pub fn spawn(
    name: &'static str,
    cpu: usize,
    mm: Option<&'static AddressSpace>,
    f: impl FnOnce() + Send + 'static,
) -> JoinHandle {
    let t = Arc::new(Task::spawn(name, cpu, mm, Box::new(f)));
    interrupts::without_interrupts(|| {
        rq(cpu)
            .lock()
            .as_mut()
            .expect("sched: cpu not initialised")
            .ready
            .push_back(t.clone())
    });
    if cpu != this_cpu() {
        arch::smp::send_reschedule(cpu);
    }
    JoinHandle(t)
}
