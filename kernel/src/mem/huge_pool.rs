//! 2 MiB blocks reserved at boot for huge mappings (collapse): contiguous physical memory
//! is taken once, while it is still easy to find, and recycled.

extern crate alloc;
use alloc::vec::Vec;

use crate::mem::frames;

static HUGE_POOL: spin::Mutex<Vec<u64>> = spin::Mutex::new(Vec::new());

/// Reserves `n` 2 MiB blocks for huge mappings.
pub fn reserve_huge_blocks(n: usize) {
    let mut pool = HUGE_POOL.lock();
    for _ in 0..n {
        match frames::alloc_huge_block() {
            Some(b) => pool.push(b.as_u64()),
            None => log::warn!("vm: no contiguous 2 MiB block for the huge pool"),
        }
    }
}

/// Takes a block from the pool (not zeroed), if one is left.
pub fn take() -> Option<u64> {
    arch::irq::without_interrupts(|| HUGE_POOL.lock().pop())
}

/// Returns block `pa` to the pool.
pub fn give_back(pa: u64) {
    arch::irq::without_interrupts(|| HUGE_POOL.lock().push(pa));
}
