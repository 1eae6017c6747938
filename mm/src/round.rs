//! One shootdown round as the initiator and its responders run it: whether the initiator
//! flushes its own TLB while the IPIs fly (Linux since 5.10, `native_flush_tlb_multi`
//! with the local `flush_tlb_func` between sending and waiting) or after the wait, and
//! whether a responder may acknowledge on entering its handler (the EuroSys 2020 paper
//! "Don't shoot down TLB shootdowns!"; Linux did not take it). Why early acknowledgement
//! is safe, and only for flushes that free no page table, is written in [`crate::flush`]
//! (rule 8).

use crate::cpumask::CpuMask;
use crate::flush::FlushInfo;
use crate::irq::{Handler, IrqsOff};

/// How the rounds of a machine run (`tlb.local_flush=`, `tlb.early_ack=`; the benchmark
/// sets it per measurement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundMode {
    /// The initiator flushes its own TLB between sending the IPIs and waiting for the
    /// acknowledgements (else after the wait: "serial").
    pub concurrent_local: bool,
    /// Responders acknowledge a flush that frees no page table on entering the handler,
    /// before flushing (rule 8 of [`crate::flush`]).
    pub early_ack: bool,
}

impl RoundMode {
    /// Send, wait, then flush locally: gatherOS before issue 24.
    pub const SERIAL: Self = Self {
        concurrent_local: false,
        early_ack: false,
    };
    /// Send, flush locally, wait (Linux): the default.
    pub const CONCURRENT: Self = Self {
        concurrent_local: true,
        early_ack: false,
    };
    /// [`RoundMode::CONCURRENT`], and responders acknowledge early where it is safe.
    pub const EARLY: Self = Self {
        concurrent_local: true,
        early_ack: true,
    };

    /// Name in log and benchmark lines: `serial`, `concurrent`, `early` (`serial-early`
    /// for the fourth combination, which no option names but a test may set).
    pub fn name(self) -> &'static str {
        match (self.concurrent_local, self.early_ack) {
            (false, false) => "serial",
            (true, false) => "concurrent",
            (true, true) => "early",
            (false, true) => "serial-early",
        }
    }
}

/// What a responder of an early-acknowledged round runs instead of the round's handler:
/// the machine's `flush_tlb_func` on the responder's own copy of the request, with its
/// own [`crate::flush::Mmu`], handed the acknowledgement to call once it may (the
/// kernel's calls [`crate::flush::Mmu::flush_tlb_func_acked`]). A plain function: after
/// the acknowledgement it must not refer to anything in the initiator's frame, which may
/// be gone. The caller acknowledges after it returns if it did not.
///
/// Its contract (rule 8), which the type cannot hold: after calling the acknowledgement
/// it may use `info.mm` only while this CPU holds that address space loaded (interrupts
/// are off, so it cannot let go of it meanwhile); an address space is kept alive by the
/// CPUs that hold it, not by the flusher, who may have gone on.
pub type EarlyResponder = for<'o, 'i, 'k> fn(IrqsOff<'o>, &FlushInfo<'i>, &'k mut dyn FnMut());

/// One round as a backend receives it ([`crate::hw::FlushBackend::flush_round`]).
pub struct Round<'r, 'a> {
    /// The request every responder reads: one cache line ([`FlushInfo`]).
    pub info: &'r FlushInfo<'a>,
    /// The handler a responder runs before it acknowledges (`flush_tlb_func` on `info`).
    pub handler: &'r Handler<'r>,
    /// Set when responders may acknowledge early: the function they run instead of
    /// `handler`, on their own copy of `info`, with the acknowledgement.
    pub early: Option<EarlyResponder>,
}

/// The default [`crate::hw::FlushBackend::flush_round`] for a backend with no round of
/// its own: its remote flush, then `local`; never early (see [`Round::early`]).
pub fn remote_then_local(
    remote: impl FnOnce(&Handler<'_>) -> CpuMask,
    round: &Round<'_, '_>,
    local: &mut dyn FnMut(),
) -> CpuMask {
    let hit = remote(round.handler);
    local();
    hit
}
