//! The test-only breakage (`tlb.break=`): one TLB mechanism left broken so that the
//! coherence oracle's negative tests can show that it catches it.

use core::sync::atomic::{AtomicU8, Ordering};
use mm::breakage::Breakage;

/// The breakage chosen at boot, as a `Breakage` discriminant.
static BREAKAGE: AtomicU8 = AtomicU8::new(0);

/// Breaks one TLB mechanism for the coherence oracle's negative tests.
pub fn set_breakage(b: Breakage) {
    let v = match b {
        Breakage::None => 0,
        Breakage::Stride => 1,
        Breakage::Lazy => 2,
        Breakage::NoFlush => 3,
    };
    BREAKAGE.store(v, Ordering::SeqCst);
}

/// The breakage in force (`Breakage::None` unless a test boot asked for one).
pub fn breakage() -> Breakage {
    match BREAKAGE.load(Ordering::Relaxed) {
        1 => Breakage::Stride,
        2 => Breakage::Lazy,
        3 => Breakage::NoFlush,
        _ => Breakage::None,
    }
}
