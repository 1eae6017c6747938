//! Sets of CPUs, sized for hundreds of CPUs.
//!
//! [`CpuMask`] is a plain value (a snapshot); [`AtomicCpuMask`] is shared and updated
//! concurrently, like Linux's `mm_cpumask`: CPUs set and clear their own bit while
//! flushers read it.

use core::sync::atomic::{AtomicU64, Ordering};

/// Most CPUs gatherOS supports.
pub const MAX_CPUS: usize = 512;
const WORDS: usize = MAX_CPUS / 64;

/// A set of logical CPU indices.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuMask {
    bits: [u64; WORDS],
}

impl CpuMask {
    /// The empty set.
    pub const fn new() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// CPUs `0..n`.
    pub fn first(n: usize) -> Self {
        let mut m = Self::new();
        (0..n).for_each(|c| m.set(c));
        m
    }

    /// Adds `cpu`.
    pub fn set(&mut self, cpu: usize) {
        self.bits[cpu / 64] |= 1 << (cpu % 64);
    }

    /// Removes `cpu`.
    pub fn clear(&mut self, cpu: usize) {
        self.bits[cpu / 64] &= !(1 << (cpu % 64));
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.bits[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// Number of CPUs in the set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// The CPUs in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            core::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }

    /// Intersection.
    pub fn and(&self, other: &CpuMask) -> CpuMask {
        CpuMask {
            bits: core::array::from_fn(|i| self.bits[i] & other.bits[i]),
        }
    }

    /// Difference: CPUs in `self` but not in `other`.
    pub fn and_not(&self, other: &CpuMask) -> CpuMask {
        CpuMask {
            bits: core::array::from_fn(|i| self.bits[i] & !other.bits[i]),
        }
    }
}

impl core::fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<usize> for CpuMask {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut m = CpuMask::new();
        iter.into_iter().for_each(|c| m.set(c));
        m
    }
}

/// A concurrently updated set of CPUs.
pub struct AtomicCpuMask {
    bits: [AtomicU64; WORDS],
}

impl AtomicCpuMask {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            bits: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    /// Adds `cpu` (full barrier: a flusher that reads the mask afterwards sees it).
    pub fn set(&self, cpu: usize) {
        self.bits[cpu / 64].fetch_or(1 << (cpu % 64), Ordering::SeqCst);
    }

    /// Removes `cpu`.
    pub fn clear(&self, cpu: usize) {
        self.bits[cpu / 64].fetch_and(!(1 << (cpu % 64)), Ordering::SeqCst);
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.bits[cpu / 64].load(Ordering::SeqCst) & (1 << (cpu % 64)) != 0
    }

    /// A snapshot of the set.
    pub fn load(&self) -> CpuMask {
        CpuMask {
            bits: core::array::from_fn(|i| self.bits[i].load(Ordering::SeqCst)),
        }
    }
}

impl Default for AtomicCpuMask {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_iterate_across_words() {
        let mut m = CpuMask::new();
        for c in [0, 63, 64, 287, 511] {
            m.set(c);
        }
        assert_eq!(m.iter().collect::<Vec<_>>(), [0, 63, 64, 287, 511]);
        assert_eq!(m.count(), 5);
        m.clear(64);
        assert!(!m.contains(64) && m.contains(63));
        assert_eq!(
            CpuMask::first(3)
                .and_not(&[1].into_iter().collect())
                .iter()
                .collect::<Vec<_>>(),
            [0, 2]
        );
    }

    #[test]
    fn atomic_mask_snapshots() {
        let a = AtomicCpuMask::new();
        a.set(5);
        a.set(300);
        a.clear(5);
        assert_eq!(a.load().iter().collect::<Vec<_>>(), [300]);
        assert!(a.contains(300));
    }
}
