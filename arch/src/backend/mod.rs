//! Remote TLB flush backends (implementations of mm's `FlushBackend`, the
//! `pv_ops.mmu.flush_tlb_multi` hook): native IPIs, a KVM-like paravirt flush, INVLPGB.

pub mod invlpgb;
pub mod native;
pub mod pv;
