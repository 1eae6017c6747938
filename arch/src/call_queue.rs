//! A CPU's queue of cross-call requests (see [`crate::ipi`] for the protocol): a fixed
//! ring of pointers to requests shared by all their targets, behind a spin lock taken
//! with interrupts off. The data structure alone, so that the per-CPU record can hold
//! one without importing the cross-call code that uses it.

extern crate alloc;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};
use mm::flush::FlushInfo;
use mm::irq::IrqsOff;
use mm::round::EarlyResponder;

use crate::stats::IpiReason;

/// A call's function: it runs with interrupts off, and is handed the proof.
pub(crate) type CallFn = dyn Fn(IrqsOff<'_>) + Sync;
/// A call's function owned by the request (fire-and-forget calls).
pub(crate) type OwnedCallFn = dyn Fn(IrqsOff<'_>) + Send + Sync;

/// One call, shared by all its targets: what they read in one cache line, and the
/// acknowledgement they write in the next ([`Ack`]), so that one responder's
/// acknowledgement does not take the line the others are still reading away from them
/// (mm's `flush.rs`, rule 8; Linux keeps `flush_tlb_info` in one line for the same
/// reason).
#[repr(C, align(64))]
pub(crate) struct Request {
    pub(crate) func: *const CallFn,
    pub(crate) reason: IpiReason,
    /// The request's number in trace events (`ipi_send` .. `ipi_ran`): the sending CPU
    /// in the top 16 bits, its count of traced requests below; 0 when not traced.
    pub(crate) trace_id: u64,
    /// Heap-allocated (fire-and-forget): the last target to finish frees it.
    pub(crate) owned: Option<Box<OwnedCallFn>>,
    /// A flush whose responders may acknowledge early ([`EarlyCall`]); None: they
    /// acknowledge after `func`.
    pub(crate) early: Option<EarlyCall>,
    /// Targets that have not acknowledged (finished running `func`; for an early call,
    /// taken their copy of the request and either found that they hold its address space
    /// or finished).
    pub(crate) pending: Ack,
}

/// A request's acknowledgement counter, alone in its cache line.
#[repr(C, align(64))]
pub(crate) struct Ack(pub(crate) AtomicUsize);

/// What a responder of an early-acknowledged flush runs: it copies `info` (one line) and
/// runs `respond` on the copy, handing it the acknowledgement, which mm gives before it
/// flushes once it knows the CPU holds the address space (mm's `flush.rs`, rule 8), else
/// the responder gives after `respond`.
#[derive(Clone, Copy)]
pub(crate) struct EarlyCall {
    pub(crate) respond: EarlyResponder,
    /// The initiator's request, alive until this responder acknowledges.
    pub(crate) info: *const FlushInfo<'static>,
}

impl Request {
    /// For a request whose targets acknowledge early: a copy of its flush request, the
    /// function to run on it, and the one way to acknowledge, which exists only once the
    /// copy was taken (after the acknowledgement the request may be gone). None for any
    /// other request.
    pub(crate) fn copy_for_early_ack(&self) -> Option<(FlushInfo<'static>, EarlyResponder, EarlyAck)> {
        let early = self.early?;
        // Never a heap request (only `call_round` makes early ones): nobody frees it on
        // the responder's side, and the initiator's wait is its only reader after the
        // acknowledgements.
        debug_assert!(self.owned.is_none());
        // SAFETY: `info` lives in the initiator's frame until every target acknowledged,
        // and this one cannot have: its acknowledgement is made below.
        let info = unsafe { *early.info };
        Some((info, early.respond, EarlyAck(Some(&self.pending.0))))
    }
}

/// A responder's acknowledgement of an early request ([`Request::copy_for_early_ack`]).
pub(crate) struct EarlyAck(Option<*const AtomicUsize>);

impl EarlyAck {
    /// Acknowledges, the first time, after running `first` (the responder's own
    /// bookkeeping, done while the request is still owed).
    pub(crate) fn give(&mut self, first: impl FnOnce()) {
        let Some(pending) = self.0.take() else {
            return;
        };
        first();
        // SAFETY: not yet acknowledged, so the request is alive. Release: the copy's reads
        // are done before the initiator may reuse its frame (x86-TSO never moves a load
        // after a later store; the ordering says so for the compiler).
        unsafe { (*pending).fetch_sub(1, Ordering::Release) };
    }
}

// The layout rule 8 asks for: what a responder reads in the first line, the
// acknowledgement in the second.
const _: () = assert!(core::mem::offset_of!(Request, pending) == 64);
const _: () = assert!(core::mem::size_of::<Request>() == 128);

#[derive(Clone, Copy)]
pub(crate) struct RequestPtr(pub(crate) *const Request);
// SAFETY: a Request is only read through shared references and atomics; it outlives
// every queue entry that points at it (the waiter or the last runner frees it).
unsafe impl Send for RequestPtr {}

/// Slots in a CPU's call queue: one waiting call per CPU fits with room to spare.
const QUEUE_SLOTS: usize = 1024;

/// Tries at a queue's lock before a push gives up for now (see [`CallQueue::try_push`]):
/// microseconds when the holder runs, far less than a tick.
const PUSH_TRIES: usize = 1000;

/// A CPU's queue of pending call requests: a fixed ring, so that pushing never
/// allocates (an allocation under the queue lock could wait for a heap lock held by
/// code that this very queue's IPI interrupted).
pub(crate) struct CallQueue(spin::Mutex<Ring>);

struct Ring {
    slots: Box<[Option<RequestPtr>]>,
    head: usize,
    len: usize,
}

impl CallQueue {
    pub(crate) fn new() -> Self {
        let slots = (0..QUEUE_SLOTS).map(|_| None).collect();
        Self(spin::Mutex::new(Ring {
            slots,
            head: 0,
            len: 0,
        }))
    }

    /// Pushes a request; Some(true) if the queue was empty (the target needs an IPI),
    /// None if the ring is full or its lock stayed taken for [`PUSH_TRIES`] tries. The
    /// caller treats both alike: it serves its own queue, with interrupts on between
    /// tries, and pushes again. A pusher never spins on the lock with interrupts off for
    /// long: at `-smp 288` under TCG on a busy host, with all CPUs pushing to all (the
    /// call storm), one did for over 20 s (the lock is unfair and its holders' vCPUs are
    /// descheduled), serving none of the 220 calls queued to it and taking no tick,
    /// which held up every CPU that waited for it.
    pub(crate) fn try_push(&self, r: RequestPtr) -> Option<bool> {
        crate::irq::without_interrupts(|| {
            let mut q = (0..PUSH_TRIES).find_map(|_| {
                let q = self.0.try_lock();
                if q.is_none() {
                    core::hint::spin_loop();
                }
                q
            })?;
            if q.len == QUEUE_SLOTS {
                return None;
            }
            let tail = (q.head + q.len) % QUEUE_SLOTS;
            q.slots[tail] = Some(r);
            q.len += 1;
            Some(q.len == 1)
        })
    }

    /// Requests queued now (None if the lock is taken: the watchdog's report only).
    pub(crate) fn len_now(&self) -> Option<usize> {
        self.0.try_lock().map(|q| q.len)
    }

    /// Whether `r` is queued here (the watchdog's report only). The lock is tried a
    /// bounded number of times: a queue whose lock stays taken counts as holding `r`
    /// (its CPU is a laggard either way), so the report itself never hangs.
    pub(crate) fn holds(&self, r: *const Request) -> bool {
        crate::irq::without_interrupts(|| {
            for _ in 0..100_000 {
                if let Some(q) = self.0.try_lock() {
                    return (0..q.len)
                        .any(|i| q.slots[(q.head + i) % QUEUE_SLOTS].is_some_and(|p| core::ptr::eq(p.0, r)));
                }
                core::hint::spin_loop();
            }
            true
        })
    }

    /// Takes the oldest request and records it in `running` under the same lock, so
    /// that the watchdog sees a request either queued or running, never neither.
    pub(crate) fn pop(&self, running: &AtomicUsize) -> Option<RequestPtr> {
        crate::irq::without_interrupts(|| {
            let mut q = self.0.lock();
            if q.len == 0 {
                return None;
            }
            let head = q.head;
            q.head = (head + 1) % QUEUE_SLOTS;
            q.len -= 1;
            let r = q.slots[head].take();
            // Relaxed: stored under the queue lock, whose release publishes it together
            // with the pop to whoever takes the lock next (`holds`), so the watchdog finds
            // a request queued or running, never neither. Its lock-free read of this word
            // can only be stale for a request popped or finished a moment ago (x86-TSO
            // makes a store visible to all at once, in order); a CPU stuck in a request
            // for a whole bound published it long before.
            running.store(r.map_or(0, |p| p.0 as usize), Ordering::Relaxed);
            r
        })
    }
}
