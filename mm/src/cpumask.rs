//! Sets of CPUs, sized for hundreds of CPUs.
//!
//! [`CpuMask`] is a plain value (a snapshot); [`AtomicCpuMask`] is shared and updated
//! concurrently, like Linux's `mm_cpumask`: CPUs set and clear their own bit while
//! flushers read it.

use crate::sync::Ordering::SeqCst;
use crate::sync::{AtomicU64, Site, atomic_array, const_unless_loom, ord};

/// Most CPUs gatherOS supports.
#[cfg(not(any(loom, tso)))]
pub const MAX_CPUS: usize = 512;
/// Most CPUs gatherOS supports; under loom and tso 4 (the models run 2 or 3 CPUs, and
/// every per-CPU atomic is a model object created again in each explored execution).
#[cfg(any(loom, tso))]
pub const MAX_CPUS: usize = 4;
const WORDS: usize = MAX_CPUS.div_ceil(64);

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

    /// CPUs 0..63 as bits (a trace event's CPU set, [`trace::event`]).
    pub fn low_word(&self) -> u64 {
        self.bits[0]
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
    const_unless_loom! {
        /// The empty set.
        pub fn new() -> Self {
            Self {
                bits: atomic_array!(AtomicU64::new(0); WORDS),
            }
        }
    }

    /// Adds `cpu`.
    pub fn set(&self, cpu: usize) {
        // SeqCst: a CPU switching in sets its bit, then reads the generation; a flusher
        // bumps the generation, then reads the mask (flush.rs, rule 1). That is store
        // buffering: with only AcqRel here, both may read the old values, the flusher
        // skips this CPU and the CPU misses the bump.
        self.bits[cpu / 64].fetch_or(1 << (cpu % 64), ord(SeqCst, Site::MaskSet));
    }

    /// Removes `cpu`.
    pub fn clear(&self, cpu: usize) {
        // Needs Release: the CPU's walks from the root it just left (before its CR3
        // load, program order) must happen before whatever a releaser does once it reads
        // the mask empty (Acquire, in `load`): free the root. AcqRel would also be
        // correct: nothing reads after a clear that must see another CPU's store (a
        // flusher that still sees the bit interrupts a CPU that left, whose handler
        // finds `has_loaded` false). SeqCst is kept for uniformity with `set`.
        self.bits[cpu / 64].fetch_and(!(1 << (cpu % 64)), ord(SeqCst, Site::MaskClear));
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        // mm asks only `cpu` itself about its own bit (`switch_mm`), which only `cpu`
        // writes: read-coherence returns its own last write whatever the ordering, so
        // Acquire, even Relaxed, would also be correct. (Tests that ask about another
        // CPU's bit do so after joining that CPU's work, which orders the read.)
        self.bits[cpu / 64].load(ord(SeqCst, Site::MaskContains)) & (1 << (cpu % 64)) != 0
    }

    /// A snapshot of the set.
    pub fn load(&self) -> CpuMask {
        // SeqCst: the flusher's side of the store buffering in `set` (read after the
        // generation bump). Acquire at least for `release`: an empty mask must carry
        // the leaving CPUs' clears (see `clear`) before the root is freed.
        CpuMask {
            bits: core::array::from_fn(|i| self.bits[i].load(ord(SeqCst, Site::MaskLoad))),
        }
    }
}

impl Default for AtomicCpuMask {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "cpumask_tests.rs"]
mod tests;
