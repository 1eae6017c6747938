//! Walk markers: which CPUs are inside a lock-free walk of which address space, so that
//! the table-free sync reaches only them (or waits for them, sending nothing).
//!
//! Linux's sync (`tlb_remove_table_sync_one`) interrupts every other CPU, walking or not.
//! Here each CPU has one marker word: the address space it is walking locklessly (its
//! [`WalkTag`], 0 when none) and how many walks it has begun. A walker publishes its
//! marker before it reads the first entry and clears it after the last; a freer, after
//! the entry that pointed to a table is cleared and flushed, reads every marker and
//! deals only with the CPUs whose marker names its address space.
//!
//! # The protocol, and what orders what
//!
//! ```text
//!   walker (interrupts off)                 freer (interrupts on)
//!   W1 marker := (walks, tag)    Release    F1 entry := 0          (the unlink)
//!   W2 fence SeqCst     (locked or)         F2 flush                (receipt)
//!   W3 read entry, the table, the page      F3 fence SeqCst     (locked or)
//!   W4 marker := (walks + 1, 0)  Release    F4 read every marker    Acquire
//!                                           F5 sync / wait for the CPUs marked; free
//! ```
//!
//! Store buffering is the one reordering x86-TSO allows: a store followed by a load of
//! another location may let the load complete while the store still sits in the CPU's
//! store buffer, invisible to others. (A SeqCst fence is a locked instruction on x86-64,
//! `lock or` of 0 to the stack as LLVM emits it, which drains the buffer as `mfence`
//! does.) Without W2, W3 may read the entry (still the table)
//! while W1 is in the walker's buffer, and F4 reads the old marker: the freer frees a
//! table the walker is in. Without F3, F4 may read the marker before F1 has left the
//! freer's buffer, and W3 may still read the table: the same outcome. With both fences
//! (or a locked instruction in their place: any locked read-modify-write drains the
//! buffer), one of the two loads sees the other side's store: either the walker reads the
//! cleared entry (and never reaches the table), or the freer sees the marker (and syncs
//! with, or waits for, that CPU). This is the barrier pairing the upstream series got
//! wrong (a read barrier on the freer's side orders loads only).
//!
//! W4 needs Release (on x86 a plain store: TSO keeps loads before a later store): the
//! walker's reads of the table happen before a freer that reads the cleared marker
//! (Acquire, F4 and the waits) frees it. W1 needs Release for the same reason, for the
//! walk before it: a freer may read the next walk's marker and so learn that the walk
//! it cares about has ended. Rust's model says the same with the pair
//! Release / Acquire; the fences W2 and F3 are SeqCst fences in Rust's model, which order
//! the two store-load pairs in one total order (the rule loom checks).
//!
//! A walk's marker word changes only at W1 and W4, and W4 counts the walk, so a freer
//! that read a word naming its address space knows the walk it saw has ended as soon as
//! the count is another ([`WalkMarkers::wait_out`]) or the word is anything else
//! ([`WalkMarkers::ended_since`]). The count is 32 bits: if a CPU makes exactly a
//! multiple of 2^32 walks while a `wait_out` polls it, the wait goes on until that CPU's
//! next walk ends (never shorter; if the CPU never walks again, the watchdog reports it).
//!
//! The walker never waits: it publishes, walks and clears with interrupts off. Only the
//! freer waits, with interrupts on, bounded by the watchdog.

use crate::addr_space::AddressSpace;
use crate::cpumask::{CpuMask, MAX_CPUS};
use crate::irq::IrqsOff;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{AtomicU64, Site, atomic_array, const_unless_loom, fence, ord};

/// What a marker names: an address space, as a non-zero 32-bit value (0 is "not
/// walking"). Two address spaces may share a tag (ids past 2^32 - 1 wrap): that only makes
/// a freer deal with one more CPU than needed, never fewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkTag(u32);

impl WalkTag {
    /// Any address space: what a freer looks for when the table may be reachable from
    /// other address spaces too (see [`WalkTag::for_freeing`]). No walker publishes it.
    pub const ANY: WalkTag = WalkTag(0);

    /// The tag of `mm`.
    pub fn of(mm: &AddressSpace) -> Self {
        Self((mm.id() % (u32::MAX as usize)) as u32 + 1)
    }

    /// What a freer of one of `mm`'s tables looks for: `mm`'s walks, or every walk if
    /// `mm` has ever shared page tables with another address space (a table of a shared
    /// region, freed by one sharer, may be walked from another's root).
    pub fn for_freeing(mm: &AddressSpace) -> Self {
        if mm.has_shared_tables() {
            Self::ANY
        } else {
            Self::of(mm)
        }
    }
}

/// One CPU's marker word: the tag in the low 32 bits, the walks begun in the high 32.
fn word(walks: u64, tag: Option<WalkTag>) -> u64 {
    (walks << 32) | tag.map_or(0, |t| t.0 as u64)
}

fn walks_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Whether the marker `word` is inside a walk that `tag` looks for.
fn names(word: u64, tag: WalkTag) -> bool {
    match tag.0 {
        0 => word as u32 != 0,
        t => word as u32 == t,
    }
}

/// The walk markers of every CPU (one per machine, static in the kernel).
pub struct WalkMarkers {
    cpus: [AtomicU64; MAX_CPUS],
}

impl WalkMarkers {
    const_unless_loom! {
        /// No CPU walking.
        pub fn new() -> Self {
            Self {
                cpus: atomic_array!(AtomicU64::new(0); MAX_CPUS),
            }
        }
    }

    /// Runs the walk `f` of `mm` on the running CPU `cpu` (interrupts off: `off`) with the
    /// CPU's marker published (W1, W2 at the top of this file) and cleared after it (W4).
    pub fn walk<R>(&self, _off: IrqsOff<'_>, cpu: usize, mm: WalkTag, f: impl FnOnce() -> R) -> R {
        let marker = &self.cpus[cpu];
        // Only this CPU writes its own word: read-coherence returns its last store.
        let before = marker.load(Relaxed);
        debug_assert!(
            before as u32 == 0,
            "cpu {cpu} begins a walk inside a walk (marker {before:#x})"
        );
        let walks = before >> 32;
        // W1: a plain store on x86 (`mov`); the fence below orders it before the walk.
        // Release, not Relaxed, for the walk before this one: a freer that reads this
        // word learns that the previous walk ended (another tag, or the count moved),
        // and must then see that walk's reads as done; W4's Release does not reach
        // through a later plain store (a release sequence continues only through
        // read-modify-writes), so this store carries it (found by the loom check,
        // `mm/tests/walk_marker_loom.rs`, `twin_w1_relaxed_next_walk`).
        marker.store(word(walks, Some(mm)), ord(Release, Site::WalkPublish));
        // W2: the store above must be visible before the walk's first read (the top of
        // this file): SeqCst fence, a locked instruction on x86.
        fence(Site::WalkFence);
        let r = f();
        // W4: Release, so that the walk's reads happen before a freer that reads the
        // cleared marker (Acquire) frees the table.
        marker.store(
            word(walks.wrapping_add(1) & 0xffff_ffff, None),
            ord(Release, Site::WalkEnd),
        );
        r
    }

    /// F3 and F4: after the unlink and its flush, the CPUs of `among` whose marker names
    /// `mm` now (inside a walk of `mm` that may have read the cleared entry before it was
    /// cleared).
    pub fn scan(&self, mm: WalkTag, among: &CpuMask) -> CpuMask {
        // F3: the unlink (a store) must be visible before the markers are read (the top
        // of this file): SeqCst fence, a locked instruction on x86.
        fence(Site::ScanFence);
        among
            .iter()
            .filter(|&c| names(self.cpus[c].load(ord(Acquire, Site::ScanLoad)), mm))
            .collect()
    }

    /// F3, F4 and the wait: after the unlink and its flush, waits until no CPU of `among`
    /// is inside a walk of `mm` that was open at the scan (its walk count moved). Every
    /// marker is read first, right after F3, so the wait lasts as long as the longest of
    /// those walks, not the sum of them and of walks begun since (which read the cleared
    /// entry). `relax(cpu)` runs between polls of a CPU still walking (the caller's
    /// watchdog). Returns the CPUs it waited for.
    pub fn wait_out(&self, mm: WalkTag, among: &CpuMask, relax: &mut dyn FnMut(usize)) -> CpuMask {
        fence(Site::ScanFence);
        let mut open = CpuMask::new();
        // The walk count each marked CPU had at the scan (2 KiB at 512 CPUs): a walk's
        // end stores the next count, so "the count moved" is "that walk ended".
        let mut seen = [0u32; MAX_CPUS];
        for c in among.iter() {
            let w = self.cpus[c].load(ord(Acquire, Site::ScanLoad));
            if names(w, mm) {
                open.set(c);
                seen[c] = walks_of(w);
            }
        }
        for c in open.iter() {
            // Acquire: pairs with W4, so the walk's reads happen before the free.
            while walks_of(self.cpus[c].load(ord(Acquire, Site::WaitLoad))) == seen[c] {
                relax(c);
            }
        }
        open
    }

    /// F3 and every marker of `among`, for a walk period ([`crate::table_free`]'s batched
    /// path): the words to compare later with [`WalkMarkers::ended_since`].
    pub fn snapshot(&self, among: &CpuMask, into: &mut [u64; MAX_CPUS]) {
        fence(Site::ScanFence);
        for c in among.iter() {
            into[c] = self.cpus[c].load(ord(Acquire, Site::ScanLoad));
        }
    }

    /// Whether the walk `cpu` was in when its word was `seen` (if any) has ended.
    pub fn ended_since(&self, cpu: usize, seen: u64) -> bool {
        seen as u32 == 0 || self.cpus[cpu].load(ord(Acquire, Site::WaitLoad)) != seen
    }
}

impl Default for WalkMarkers {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "walk_marker_tests.rs"]
mod tests;
