//! The remote-flush backend (`pv_ops.mmu.flush_tlb_multi`) and the static key: chosen
//! once, on the boot CPU, before the APs start.
//!
//! INVLPGB when CPUID has it (emulated when only an override says so), otherwise the
//! paravirt flush if `tlb.backend=pv`, otherwise native IPIs. The key
//! `tlb_table_flush_implies_ipi_broadcast` is true only for native IPIs without INVLPGB
//! (`mm::table_free::flush_implies_ipi_broadcast`).

use arch::cpuid::CpuFeatures;

use crate::options::BootOptions;

/// Picks the flush backend and fixes the static key: boot CPU, before the APs start.
pub fn choose_backend(features: &CpuFeatures, opts: &BootOptions) -> &'static dyn mm::hw::FlushBackend {
    static NATIVE: arch::backend::native::NativeIpi = arch::backend::native::NativeIpi;
    static PV: arch::backend::pv::Paravirt = arch::backend::pv::Paravirt;
    static INVLPGB: spin::Once<arch::backend::invlpgb::Invlpgb> = spin::Once::new();
    let real_invlpgb = CpuFeatures::detect().invlpgb;
    let backend: &'static dyn mm::hw::FlushBackend = if features.invlpgb {
        INVLPGB.call_once(|| arch::backend::invlpgb::Invlpgb {
            hardware: real_invlpgb,
        })
    } else if opts.tlb_backend == "pv" {
        &PV
    } else {
        &NATIVE
    };
    let skip = mm::table_free::flush_implies_ipi_broadcast(backend.kind(), features.invlpgb);
    arch::static_key::decide_tlb_ipi_broadcast(skip);
    log::info!(
        "tlb: backend={} invlpgb={} table-sync={} sync-form={}",
        backend.kind().name(),
        if features.invlpgb { "yes" } else { "no" },
        if arch::static_key::tlb_table_flush_implies_ipi_broadcast() {
            "skip"
        } else {
            "ipi"
        },
        opts.sync_form.name()
    );
    if opts.table_sync != crate::tlb::faults::TableSync::Mode(mm::table_free::SyncMode::Decided) {
        log::warn!("tlb: table sync mode overridden: {:?}", opts.table_sync);
    }
    backend
}
