//! Cross-CPU calls over IPIs, in the spirit of Linux's `smp_call_function_many_cond`.
//!
//! Every CPU has a queue of call requests. A caller pushes one request (shared by all
//! targets) onto each target's queue and sends the call IPI only to targets whose queue
//! was empty (a non-empty queue already has an IPI on its way). The target's interrupt
//! handler runs every request in its queue.
//!
//! Waiting rules:
//! - A waiting caller keeps serving its *own* queue while it spins, so two CPUs that call
//!   each other at the same time (two TLB flushes, say) both make progress.
//! - Waiting with interrupts disabled is refused: mm's waits hold the capability
//!   [`IrqsOn`] ([`call_handler_on_many`]), [`call_on_many`] makes it from the flag, and
//!   the wait itself reads the flag once more (`IrqsOn::confirm`, for a path that turned
//!   interrupts off around a holder), with a panic that names the caller if they are off:
//!   a target that spins with interrupts off on a lock the caller holds would never
//!   answer, and the caller would wait forever. Callers that cannot enable interrupts
//!   must not wait. (The table-sync IPI relies on the other side of this rule: a CPU with
//!   interrupts off — a lock-free walker — does not answer until it is done.)
//! - Handlers run with interrupts off, always: before each one the proof ([`IrqsOff`]) is
//!   made from the flag (so a handler that left interrupts on stops the next), and mm's
//!   handlers receive it. They run from the IPI handler, and from a waiter's loop, which
//!   serves its queue with interrupts disabled for the duration (a tick there could
//!   schedule in the middle of a flush handler or of `switch_mm`). Handlers must not wait
//!   for other calls (they cannot hold an [`IrqsOn`]: it is not `Sync`).

extern crate alloc;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};
use mm::cpumask::CpuMask;
use mm::irq::{Handler, IrqsOff, IrqsOn};
use x86_64::structures::idt::InterruptStackFrame;

use crate::apic::CALL_VECTOR;
use crate::call_queue::{Ack, CallFn, EarlyCall, OwnedCallFn, Request, RequestPtr};
use crate::cpu::X86Cpu;
use crate::cpus;
use crate::percpu::{self, with_lapic};
use crate::stats::IpiReason;
use crate::watchdog::Wait;

/// Runs every request queued for the running CPU, with interrupts off (the caller's
/// duty: the interrupt entry's, or the waiter's; checked where each handler's proof is
/// made). Returns how many ran.
fn serve_own_queue() -> usize {
    let Some(me) = percpu::current() else { return 0 };
    let mut ran = 0;
    while let Some(RequestPtr(ptr)) = me.calls.pop(&me.running_call) {
        // SAFETY: the request stays alive until `pending` reaches zero, which cannot
        // happen before this CPU's decrement below.
        let req = unsafe { &*ptr };
        trace::event!(IpiRun, req.reason as u8, req.trace_id, req.trace_id >> 48);
        if let Some((info, respond, mut acknowledgement)) = req.copy_for_early_ack() {
            let (reason, trace_id) = (req.reason, req.trace_id);
            // From the acknowledgement on, the request and the initiator's frame may be
            // gone: only the copy is read (`req` is not used again).
            let mut ack = || {
                // Owed nothing more once acknowledged: the watchdog must not count this
                // CPU as running the request (whose address a later request may take).
                acknowledgement.give(|| me.running_call.store(0, Ordering::Relaxed))
            };
            // The acknowledgement, given once: by the responder as soon as it may (mm's
            // `flush.rs`, rule 8), else here when it returned.
            IrqsOff::entered(&X86Cpu, "runs an early-acknowledged flush", |off| {
                respond(off, &info, &mut ack)
            });
            ack();
            trace::event!(IpiRan, reason as u8, trace_id);
            me.ipis.count_received(reason);
            ran += 1;
            continue;
        }
        // The proof, made from the flag before each handler: one that left interrupts on
        // must not pass it to the next.
        IrqsOff::entered(&X86Cpu, "runs a cross-call handler", |off| {
            // SAFETY: `func` points into the waiting caller's frame or into `owned`, both
            // alive while `pending` is non-zero.
            unsafe { (*req.func)(off) }
        });
        trace::event!(IpiRan, req.reason as u8, req.trace_id);
        me.running_call.store(0, Ordering::Relaxed);
        me.ipis.count_received(req.reason);
        ran += 1;
        // Read before the decrement: a waiting caller's request lives in its stack frame,
        // which may be gone the moment `pending` reaches zero.
        let heap = req.owned.is_some();
        if req.pending.0.fetch_sub(1, Ordering::AcqRel) == 1 && heap {
            // SAFETY: last runner of a heap request; nobody else refers to it now.
            drop(unsafe { Box::from_raw(ptr as *mut Request) });
        }
    }
    ran
}

/// The call-IPI handler.
pub extern "x86-interrupt" fn call_interrupt(_frame: InterruptStackFrame) {
    with_lapic(|l| l.eoi());
    if let Some(me) = percpu::current() {
        me.ipis.call_interrupts.fetch_add(1, Ordering::Relaxed);
    }
    serve_own_queue();
}

/// A filter on the call IPIs this CPU sends: what a test installs to inject a fault on the
/// way (`ktest::lost_ipi` loses one, for the watchdog's tests). The product installs
/// none. Asked in [`enqueue`] once per target that needs an IPI, on the sending CPU,
/// with interrupts in either state; a dropped IPI leaves the request queued, unserved,
/// until the watchdog's kick resends it.
pub trait CallIpiFilter: Sync {
    /// Whether the call IPI to CPU `target` is dropped instead of sent.
    fn drops(&self, target: usize) -> bool;
}

/// The installed filter (none in the product).
static CALL_IPI_FILTER: spin::Once<&'static dyn CallIpiFilter> = spin::Once::new();

/// Installs `filter` on every CPU's call-IPI send path. The first call wins.
pub fn install_call_ipi_filter(filter: &'static dyn CallIpiFilter) {
    CALL_IPI_FILTER.call_once(|| filter);
}

/// Whether the installed filter drops the call IPI to `t`.
fn filtered(t: usize) -> bool {
    CALL_IPI_FILTER.get().is_some_and(|f| f.drops(t))
}

/// The targets of `req` that have not finished it: still queued, or running it now.
fn laggards(targets: &CpuMask, req: *const Request) -> CpuMask {
    targets
        .iter()
        .filter(|&t| {
            let cpu = cpus::get(t);
            cpu.running_call.load(Ordering::Relaxed) == req as usize || cpu.calls.holds(req)
        })
        .collect()
}

/// Sends CPU `t` its call IPI again (the watchdog's kick after a report).
fn resend_call_ipi(t: usize) {
    with_lapic(|l| l.send_ipi(CALL_VECTOR, cpus::get(t).apic_id));
}

fn enqueue(targets: &CpuMask, req: *const Request) {
    let me = percpu::current().expect("cross call before per-CPU data");
    // A target's full ring is a wait on that CPU too (it must drain): bounded likewise.
    let mut full_wait: Option<Wait> = None;
    for t in targets.iter() {
        let cpu = cpus::get(t);
        me.ipis.count_sent(
            // SAFETY: `req` is alive (the caller still holds it).
            unsafe { (*req).reason },
        );
        let needs_ipi = loop {
            match cpu.calls.try_push(RequestPtr(req)) {
                Some(first) => {
                    full_wait = None; // each target's full ring is its own wait
                    break first;
                }
                // Full: the target is busy with earlier calls; help our own queue drain.
                None => {
                    crate::irq::without_interrupts(serve_own_queue);
                    full_wait
                        .get_or_insert_with(|| Wait::start("call-queue-full"))
                        .check(|| CpuMask::from_iter([t]), resend_call_ipi);
                    core::hint::spin_loop();
                }
            }
        };
        if needs_ipi && !filtered(t) {
            with_lapic(|l| l.send_ipi(CALL_VECTOR, cpu.apic_id));
        }
    }
}

/// Runs `f` on every online CPU in `mask` (this one too, if included: first, with
/// interrupts off) and waits until all have finished. Panics, naming the caller, if
/// called with interrupts disabled (see the module's waiting rules).
#[track_caller]
pub fn call_on_many(mask: &CpuMask, reason: IpiReason, f: &(dyn Fn() + Sync)) {
    let on = IrqsOn::check(&X86Cpu, "waits for a cross call");
    call_handler_on_many(&on, mask, reason, &|_| f());
}

/// [`call_on_many`] for a caller that holds the capability to wait (`on`: interrupts are
/// on) and a handler that takes the proof that interrupts are off (mm's flush and
/// lazy-leave handlers). Returns the other CPUs it interrupted and waited for.
#[track_caller]
pub fn call_handler_on_many(on: &IrqsOn, mask: &CpuMask, reason: IpiReason, f: &Handler) -> CpuMask {
    call_round(on, mask, reason, f, None, &mut || {})
}

/// [`call_handler_on_many`] as a flush round (mm's `flush.rs`, rule 8): `local` runs on
/// this CPU once the requests are queued and the IPIs sent, before the wait; with
/// `early`, the targets run `early.respond` on their copy of the request instead of `f`,
/// and it may acknowledge before it finishes (mm's `flush.rs`, rule 8).
#[track_caller]
pub(crate) fn call_round(
    on: &IrqsOn,
    mask: &CpuMask,
    reason: IpiReason,
    f: &Handler,
    early: Option<EarlyCall>,
    local: &mut dyn FnMut(),
) -> CpuMask {
    // The one place the machine waits for other CPUs: the flag is read again here, so a
    // wait reached with interrupts off by a path the types do not see is refused.
    on.confirm(&X86Cpu, "waits for a cross call");
    let me = percpu::cpu_index();
    // Not a decision about whom to reach (the caller made it) but two hardware facts: this
    // CPU runs `f` directly (an IPI to itself would be taken only after the wait), and a
    // CPU not yet online has no handler running to answer, so waiting for it would never
    // end. mm's flush targets in a user address space are online CPUs (a CPU joins one
    // only by switching to its task) and pass through unchanged.
    let targets = mask.and(&cpus::online()).and_not(&CpuMask::from_iter([me]));
    if mask.contains(me) {
        crate::irq::without_interrupts(|| IrqsOff::entered(&X86Cpu, "runs its own cross call", f));
    }
    if targets.is_empty() {
        local();
        return targets;
    }
    // SAFETY: only the lifetime is erased; `req` (and so `f`) outlives every use, because
    // this function returns only after all targets have run it (pending == 0).
    let func: *const CallFn = unsafe { core::mem::transmute(f) };
    let req = Request {
        func,
        pending: Ack(AtomicUsize::new(targets.count())),
        reason,
        trace_id: if trace::on() { trace_id(me) } else { 0 },
        owned: None,
        early,
    };
    let mut wait = Wait::start(reason.wait_name());
    trace::event!(IpiSend, reason as u8, req.trace_id, targets.low_word());
    enqueue(&targets, &req);
    local();
    while req.pending.0.load(Ordering::Acquire) != 0 {
        // Interrupts off while serving (handlers' rule), on between rounds so that the
        // IPIs and ticks this CPU owes others get through.
        crate::irq::without_interrupts(serve_own_queue);
        wait.check(|| laggards(&targets, &req), resend_call_ipi);
        core::hint::spin_loop();
    }
    trace::event!(IpiAcked, reason as u8, req.trace_id);
    targets
}

/// A number for a traced request of CPU `me` (see `Request::trace_id`).
fn trace_id(me: usize) -> u64 {
    static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    // Relaxed: only unique (tracing only).
    (me as u64) << 48 | NEXT.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1)
}

/// Queues `f` on every online CPU in `mask` except this one and returns at once; the last
/// CPU to run it frees it.
pub fn call_on_many_nowait(mask: &CpuMask, reason: IpiReason, f: Box<dyn Fn() + Send + Sync>) {
    let me = percpu::cpu_index();
    let targets = mask.and(&cpus::online()).and_not(&CpuMask::from_iter([me]));
    if targets.is_empty() {
        return;
    }
    let f: Box<OwnedCallFn> = Box::new(move |_| f());
    let func: *const CallFn = &*f;
    let req = Box::into_raw(Box::new(Request {
        func,
        pending: Ack(AtomicUsize::new(targets.count())),
        reason,
        // No `ipi_send` slice (nobody waits), but the runners name the sender.
        trace_id: if trace::on() { trace_id(me) } else { 0 },
        owned: Some(f),
        early: None,
    }));
    crate::irq::without_interrupts(|| enqueue(&targets, req));
}

/// Runs `f` on CPU `cpu` (possibly this one) and waits for it.
#[track_caller]
pub fn call_on_cpu(cpu: usize, reason: IpiReason, f: &(dyn Fn() + Sync)) {
    call_on_many(&CpuMask::from_iter([cpu]), reason, f)
}

/// Runs `f` on every online CPU for which `cond(cpu)` holds, and waits.
#[track_caller]
pub fn call_on_each_cond(cond: impl Fn(usize) -> bool, reason: IpiReason, f: &(dyn Fn() + Sync)) {
    let mask: CpuMask = cpus::online().iter().filter(|&c| cond(c)).collect();
    call_on_many(&mask, reason, f)
}

/// mm's plain cross call ([`mm::hw::CrossCall`]) over these IPIs.
pub struct IpiCalls;

impl mm::hw::CrossCall for IpiCalls {
    #[track_caller]
    fn call_others(&self, on: &IrqsOn, targets: &CpuMask, f: &Handler) {
        // The targets are mm's decision (other CPUs, `Mmu::shoot_lazy_holders`).
        call_handler_on_many(on, targets, IpiReason::Call, f);
    }
}
