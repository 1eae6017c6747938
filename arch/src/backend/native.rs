//! The native backend: a flush IPI to every target, waiting for each
//! (`native_flush_tlb_multi`). Every target took an interrupt, so a walker with
//! interrupts off on any of them has finished: this flush can stand in for the
//! table-free sync.

use mm::cpumask::CpuMask;
use mm::hw::{BackendKind, FlushBackend};
use mm::irq::{Handler, IrqsOn};

use crate::ipi::call_handler_on_many;
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
}
