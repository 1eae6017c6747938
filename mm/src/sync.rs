//! The atomics of mm's TLB protocol, in one place: `core::sync::atomic` normally,
//! loom's under `--cfg loom`, so that the loom check (`mm/tests/tlb_protocol_loom.rs`)
//! explores every interleaving and every weak-memory outcome of mm's own code, and the
//! x86-TSO checker's (the workspace crate `tso`) under `--cfg tso`, so that its check
//! (`mm/tests/walk_marker_tso.rs`) runs mm's own code as an x86 CPU runs it.
//!
//! What goes through here: the state that CPUs read and write concurrently in the
//! switch / flush / lazy / release protocol (the per-CPU TLB state, the address space's
//! CPU mask, generation and pending-gather count, the table freer's flags and count).
//! What does not:
//! - the statistics counters (`stats.rs`): they order nothing, and loom runs one thread
//!   at a time, so core atomics stay exact under it; loom need not explore them;
//! - the address-space id allocator (`addr_space.rs`, a `static`, which loom's atomics
//!   cannot be: their `new` is not `const`);
//! - page-table memory ([`crate::hw::PhysMem::word`]): it is the hardware's, read by a
//!   page walker loom does not model; the protocol must supply the ordering through the
//!   generation, the mask and the interrupts, which is what the check asks of it.
//!
//! # Ordering sites
//!
//! Every ordering of the protocol's atomics is written `ord(SeqCst, Site::MaskLoad)`: the
//! ordering the code needs, and the name of that one operation. Normally [`ord`] returns
//! the ordering (a `const fn`, nothing else). Under loom a test may weaken exactly one
//! site for the model it runs next ([`weaken`]), so that a weakened twin runs mm's own
//! code with that one ordering one step weaker and must fail the check.

pub(crate) use core::sync::atomic::Ordering;
#[cfg(not(any(loom, tso)))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize};
#[cfg(tso)]
pub(crate) use tso::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize};
#[cfg(all(loom, tso))]
compile_error!("`--cfg loom` and `--cfg tso` are two checkers: one at a time");

/// Declares a constructor that is a `const fn` normally and a plain `fn` under loom and
/// tso (their atomics have no `const` `new`).
macro_rules! const_unless_loom {
    ($(#[$m:meta])* $vis:vis fn $name:ident() -> $ret:ty $body:block) => {
        #[cfg(not(any(loom, tso)))]
        $(#[$m])*
        $vis const fn $name() -> $ret $body
        #[cfg(any(loom, tso))]
        $(#[$m])*
        $vis fn $name() -> $ret $body
    };
}
pub(crate) use const_unless_loom;

/// `[$e; $n]` for a non-`Copy` atomic `$e`: a `const` block normally, `from_fn` under
/// loom and tso.
#[cfg(not(any(loom, tso)))]
macro_rules! atomic_array {
    ($e:expr; $n:expr) => {
        [const { $e }; $n]
    };
}
#[cfg(any(loom, tso))]
macro_rules! atomic_array {
    ($e:expr; $n:expr) => {
        core::array::from_fn(|_| $e)
    };
}
pub(crate) use atomic_array;

/// One atomic operation of the protocol, by file and what it does (see the operation
/// itself for the ordering it needs and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `flush.rs` `flush_tlb_mm_range`: the generation bump.
    GenBump,
    /// `addr_space.rs` `AddressSpace::generation`: the generation read.
    GenRead,
    /// `cpumask.rs` `AtomicCpuMask::set`.
    MaskSet,
    /// `cpumask.rs` `AtomicCpuMask::clear`.
    MaskClear,
    /// `cpumask.rs` `AtomicCpuMask::contains`.
    MaskContains,
    /// `cpumask.rs` `AtomicCpuMask::load`.
    MaskLoad,
    /// `tlb_state.rs` `CpuTlbState::has_loaded`.
    HasLoaded,
    /// `tlb_state.rs` `CpuTlbState::loaded`.
    Loaded,
    /// `tlb_state.rs` `CpuTlbState::is_lazy`.
    LazyRead,
    /// `tlb_state.rs` `CpuTlbState::generation`.
    LocalGenRead,
    /// `tlb_state.rs` `CpuTlbState::set_loaded`: the generation store.
    LocalGenStore,
    /// `tlb_state.rs` `CpuTlbState::set_loaded`: the loaded-address-space store.
    LoadedStore,
    /// `tlb_state.rs` `CpuTlbState::set_lazy`.
    LazyStore,
    /// `tlb_state.rs` `CpuTlbState::flushed_to`.
    LocalGenMax,
    /// `table_free.rs` `TableFreerState::set_mode`.
    ModeStore,
    /// `table_free.rs` `TableFreerState::mode`.
    ModeLoad,
    /// `table_free.rs` `TableFreerState::tables_in_flight`.
    InFlightLoad,
    /// `table_free.rs` `TableFreer::queue_batch`.
    InFlightAdd,
    /// `table_free.rs` `TableFreer::poll`.
    InFlightSub,
    /// `walk_marker.rs` `WalkMarkers::walk`: the marker's store (W1).
    WalkPublish,
    /// `walk_marker.rs` `WalkMarkers::walk`: the fence after it (W2).
    WalkFence,
    /// `walk_marker.rs` `WalkMarkers::walk`: the marker's clear (W4).
    WalkEnd,
    /// `walk_marker.rs`: the freer's fence before it reads the markers (F3).
    ScanFence,
    /// `walk_marker.rs`: the freer's first read of a marker (F4).
    ScanLoad,
    /// `walk_marker.rs`: the freer's later reads of a marker (waiting for a walk to end).
    WaitLoad,
    /// `flush.rs` `switch_mm` of an idle leave (`leave_lazy_on_idle`; no other caller's):
    /// not an ordering but an order of code. Weakened (with any ordering), the leave
    /// clears `prev`'s mask bit *before* it loads the kernel's root, the order rule 6
    /// forbids ([`reordered`]), and must fail the loom check (property (b): a root freed
    /// while in a CR3).
    PrevClearBeforeLoad,
}

/// Whether the code at `site` runs in the wrong order a loom test asked for ([`weaken`]
/// with that site, any ordering). Normally a `const fn` that returns false: the code as
/// written, at no cost.
#[cfg(not(any(loom, tso)))]
#[inline(always)]
pub(crate) const fn reordered(_site: Site) -> bool {
    false
}

/// Whether the code at `site` runs in the wrong order a test asked for ([`weaken`] with
/// that site, any ordering).
#[cfg(any(loom, tso))]
pub(crate) fn reordered(site: Site) -> bool {
    weakened_site() == Some(site)
}

/// The ordering `strong` of the operation `site` (see the top of this file).
#[cfg(not(any(loom, tso)))]
#[inline(always)]
pub(crate) const fn ord(strong: Ordering, _site: Site) -> Ordering {
    strong
}

/// The ordering `strong` of the operation `site`, or the weaker one a loom test set for
/// it with [`weaken`].
#[cfg(loom)]
pub(crate) fn ord(strong: Ordering, site: Site) -> Ordering {
    match WEAKENED.with(|w| w.get()) {
        Some((s, weaker)) if s == site => weaker,
        _ => strong,
    }
}

/// A SeqCst fence (on x86-64 a locked instruction, `lock or` to the stack), the one at `site`.
#[cfg(not(any(loom, tso)))]
#[inline(always)]
pub(crate) fn fence(_site: Site) {
    core::sync::atomic::fence(Ordering::SeqCst);
}

/// A SeqCst fence, or, if a loom test weakened `site`, the weaker fence it set (none for
/// Relaxed, which `fence` does not take).
#[cfg(loom)]
pub(crate) fn fence(site: Site) {
    match ord(Ordering::SeqCst, site) {
        Ordering::Relaxed => {}
        o => loom::sync::atomic::fence(o),
    }
}

#[cfg(any(loom, tso))]
extern crate std; // loom and tso need std anyway; mm is `no_std` otherwise

#[cfg(loom)]
std::thread_local! {
    // loom runs a model's threads as coroutines on the thread that calls `loom::model`,
    // so a test thread's setting reaches exactly its own models (tests run in parallel).
    static WEAKENED: core::cell::Cell<Option<(Site, Ordering)>> = const { core::cell::Cell::new(None) };
}

#[cfg(loom)]
fn weakened_site() -> Option<Site> {
    WEAKENED.with(|w| w.get()).map(|(s, _)| s)
}

/// Loom only: makes `site` use `weaker` instead of its own ordering in the models this
/// thread runs until the next call (`None`: the code as written).
#[cfg(loom)]
pub fn weaken(twin: Option<(Site, Ordering)>) {
    WEAKENED.with(|w| w.set(twin));
}

/// The ordering `strong` of the operation `site`, or the weaker one the test running
/// this model set for it with [`weaken`] (tso).
#[cfg(tso)]
pub(crate) fn ord(strong: Ordering, site: Site) -> Ordering {
    match weakened() {
        Some((s, weaker)) if s == site => weaker,
        _ => strong,
    }
}

/// A SeqCst fence (`mfence` under tso), or, if the test weakened `site`, the weaker
/// fence it set (none for Relaxed; Acquire, Release and AcqRel emit no instruction on
/// x86, and tso models them so).
#[cfg(tso)]
#[track_caller]
pub(crate) fn fence(site: Site) {
    match ord(Ordering::SeqCst, site) {
        Ordering::Relaxed => {}
        o => tso::sync::atomic::fence(o),
    }
}

/// The weakened site of each test thread (tso). tso runs a model's CPUs on threads of
/// their own, so the setting is found through the thread that runs the model
/// ([`tso::model_owner`]) rather than a thread-local as under loom.
#[cfg(tso)]
type Weakened = std::sync::Mutex<std::vec::Vec<(std::thread::ThreadId, (Site, Ordering))>>;
#[cfg(tso)]
static WEAKENED: Weakened = std::sync::Mutex::new(std::vec::Vec::new());

#[cfg(tso)]
fn weakened_site() -> Option<Site> {
    weakened().map(|(s, _)| s)
}

#[cfg(tso)]
fn weakened() -> Option<(Site, Ordering)> {
    let owner = tso::model_owner();
    let w = WEAKENED.lock().unwrap_or_else(|e| e.into_inner());
    w.iter().find(|(t, _)| *t == owner).map(|&(_, twin)| twin)
}

/// tso only: makes `site` use `weaker` instead of its own ordering in the models this
/// thread runs until the next call (`None`: the code as written).
#[cfg(tso)]
pub fn weaken(twin: Option<(Site, Ordering)>) {
    let me = std::thread::current().id();
    let mut w = WEAKENED.lock().unwrap_or_else(|e| e.into_inner());
    w.retain(|(t, _)| *t != me);
    if let Some(twin) = twin {
        w.push((me, twin));
    }
}
