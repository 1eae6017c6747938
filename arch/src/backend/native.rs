//! The native backend: a flush IPI to every target, waiting for each
//! (`native_flush_tlb_multi`). Every target took an interrupt, so a walker with
//! interrupts off on any of them has finished: this flush can stand in for the
//! table-free sync.

use mm::cpumask::CpuMask;
use mm::flush::FlushInfo;
use mm::hw::{BackendKind, FlushBackend};
use mm::irq::{Handler, IrqsOn};
use mm::round::Round;

use crate::call_queue::EarlyCall;
use crate::ipi::{call_handler_on_many, call_round};
use crate::stats::IpiReason;

/// IPI-based remote flush.
pub struct NativeIpi;

impl FlushBackend for NativeIpi {
    fn kind(&self) -> BackendKind {
        BackendKind::NativeIpi
    }

    fn flush_others(&self, on: &IrqsOn, targets: &CpuMask, handler: &Handler) -> CpuMask {
        // The targets are mm's decision (`flush.rs`, rule 2), taken as given; what comes
        // back is exactly who took the interrupt.
        call_handler_on_many(on, targets, IpiReason::Flush, handler)
    }

    fn flush_round(
        &self,
        on: &IrqsOn,
        targets: &CpuMask,
        round: &Round<'_, '_>,
        local: &mut dyn FnMut(),
    ) -> CpuMask {
        call_round(
            on,
            targets,
            IpiReason::Flush,
            round.handler,
            early_call(round),
            local,
        )
    }
}

/// The early acknowledgement a round allows, as the cross call carries it.
pub(crate) fn early_call(round: &Round<'_, '_>) -> Option<EarlyCall> {
    round.early.map(|respond| EarlyCall {
        respond,
        // Only the lifetime is erased: the cross call reads `info` only until the
        // responder acknowledged, and the initiator's round waits for that.
        info: (round.info as *const FlushInfo<'_>).cast(),
    })
}
