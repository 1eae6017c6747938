//! The boot-time decision "a freed-tables flush already was the table-free sync",
//! frozen in a static key (a patched branch: reading it costs no memory load); and the
//! trace key (`trace::gate::TRACING`), switched on the same way by `trace=tlb`.
//!
//! Set once on the boot CPU, before the APs start (they never see the code change
//! half-done). The kernel's text is mapped read-only, so CR0.WP is lifted while the
//! `static-keys` crate rewrites the branch (a 5-byte JMP becomes a 5-byte NOP).

extern crate alloc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags};

static_keys::define_static_key_false!(TLB_IPI_BROADCAST);
static DECIDED: AtomicBool = AtomicBool::new(false);

/// The 5-byte NOP the branch holds when the key is enabled.
pub const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// Fixes the decision. Boot CPU, once, before any AP is started.
pub fn decide_tlb_ipi_broadcast(enable: bool) {
    assert!(
        crate::cpus::online_count() <= 1,
        "static key: must be decided before the APs start"
    );
    assert!(!DECIDED.swap(true, Ordering::SeqCst), "static key: decided twice");
    // Always: `branch_sites` reads the jump entries, which this makes absolute.
    static_keys::global_init();
    if enable {
        // SAFETY: before the APs start (asserted above).
        unsafe { patch(|| TLB_IPI_BROADCAST.enable()) };
    }
}

/// Switches the trace key on (`trace=tlb`). Boot CPU, before any AP is started.
pub fn enable_tracing() {
    assert!(
        crate::cpus::online_count() <= 1,
        "static key: the trace key must be switched on before the APs start"
    );
    // SAFETY: before the APs start (asserted above).
    unsafe { patch(|| trace::gate::TRACING.enable()) };
}

/// Runs `enable` (a key's patch of the kernel text) with write protection lifted.
///
/// # Safety
/// Only the boot CPU runs (no other CPU executes the text being patched).
unsafe fn patch(enable: impl FnOnce()) {
    static_keys::global_init(); // once; later calls return at once
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cr0 = Cr0::read();
        // SAFETY: only this CPU runs (the caller's promise); write protection is off just
        // for the patch.
        unsafe { Cr0::write(cr0 - Cr0Flags::WRITE_PROTECT) };
        enable();
        // SAFETY: restores the flags read above.
        unsafe { Cr0::write(cr0) };
    });
}

/// `tlb_table_flush_implies_ipi_broadcast()`: a patched branch, no memory load.
/// Kept out of line so that exactly one branch site exists (see [`branch_sites`]).
#[inline(never)]
pub fn tlb_table_flush_implies_ipi_broadcast() -> bool {
    static_keys::static_branch_likely!(TLB_IPI_BROADCAST)
}

/// The key's value as the crate records it (for tests; the hot path never reads it).
pub fn key_enabled() -> bool {
    TLB_IPI_BROADCAST.is_enabled()
}

unsafe extern "C" {
    #[link_name = "__start___static_keys"]
    static JUMP_START: [usize; 3];
    #[link_name = "__stop___static_keys"]
    static JUMP_STOP: [usize; 3];
}

/// The instruction bytes at every branch site of the key (after the decision).
pub fn branch_sites() -> Vec<[u8; 5]> {
    assert!(DECIDED.load(Ordering::SeqCst), "static key: not initialised");
    let key = &raw const TLB_IPI_BROADCAST as usize;
    let (start, stop) = (&raw const JUMP_START, &raw const JUMP_STOP);
    let n = (stop as usize - start as usize) / core::mem::size_of::<[usize; 3]>();
    (0..n)
        .filter_map(|i| {
            // SAFETY: within the jump-entry section; after `global_init` each entry holds
            // absolute (code, target, key | likely-flag) addresses.
            let [code, _target, k] = unsafe { *start.add(i) };
            (k & !1 == key).then(|| {
                // SAFETY: `code` is the address of the 5-byte branch in kernel text.
                unsafe { core::ptr::read_volatile(code as *const [u8; 5]) }
            })
        })
        .collect()
}
