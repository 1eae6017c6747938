//! The atomics of the model: std's API (the subset mm uses), x86's instructions (see the
//! top of the crate): loads are `mov`; Relaxed and Release stores are `mov` into the
//! store buffer; SeqCst stores are `xchg`; every read-modify-write is locked whatever
//! its ordering; `fence(SeqCst)` is `mfence`, the other fences nothing.

use std::marker::PhantomData;
use std::panic::Location;

pub use std::sync::atomic::Ordering;

use crate::cell::Cell;
use crate::exec;

/// A fence: `mfence` for SeqCst, no instruction for Acquire, Release and AcqRel.
#[track_caller]
pub fn fence(order: Ordering) {
    assert!(
        order != Ordering::Relaxed,
        "there is no such thing as a relaxed fence"
    );
    match exec::current() {
        Some((e, me)) if order == Ordering::SeqCst => e.mfence(me, Location::caller()),
        Some((e, me)) => e.no_fence(me, &format!("fence({order:?})"), Location::caller()),
        None => std::sync::atomic::fence(order),
    }
}

macro_rules! atomic_int {
    ($(#[$m:meta])* $name:ident, $t:ty) => {
        $(#[$m])*
        pub struct $name {
            cell: Cell,
        }

        impl $name {
            /// A new atomic holding `v`.
            #[track_caller]
            pub fn new(v: $t) -> Self {
                Self { cell: Cell::new(v as u64) }
            }

            /// `mov` from it (any ordering).
            #[track_caller]
            pub fn load(&self, order: Ordering) -> $t {
                self.cell.load(order) as $t
            }

            /// `mov` to it (Relaxed, Release) or `xchg` (SeqCst).
            #[track_caller]
            pub fn store(&self, v: $t, order: Ordering) {
                self.cell.store(v as u64, order)
            }

            /// `xchg` (locked, any ordering).
            #[track_caller]
            pub fn swap(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("swap", &mut |_| v as u64) as $t
            }

            /// `lock cmpxchg` (locked, any ordering, failed or not; never fails
            /// spuriously).
            #[track_caller]
            pub fn compare_exchange(
                &self,
                current: $t,
                new: $t,
                _success: Ordering,
                _failure: Ordering,
            ) -> Result<$t, $t> {
                let old = self.cell.rmw("compare_exchange", &mut |old| {
                    if old == current as u64 { new as u64 } else { old }
                }) as $t;
                if old == current { Ok(old) } else { Err(old) }
            }

            /// As [`Self::compare_exchange`] (x86's `cmpxchg` does not fail spuriously).
            #[track_caller]
            pub fn compare_exchange_weak(
                &self,
                current: $t,
                new: $t,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$t, $t> {
                self.compare_exchange(current, new, success, failure)
            }

            /// `lock xadd` (any ordering), wrapping.
            #[track_caller]
            pub fn fetch_add(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_add", &mut |old| (old as $t).wrapping_add(v) as u64) as $t
            }

            /// `lock xadd` of the negation (any ordering), wrapping.
            #[track_caller]
            pub fn fetch_sub(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_sub", &mut |old| (old as $t).wrapping_sub(v) as u64) as $t
            }

            /// A locked `or` (any ordering).
            #[track_caller]
            pub fn fetch_or(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_or", &mut |old| ((old as $t) | v) as u64) as $t
            }

            /// A locked `and` (any ordering).
            #[track_caller]
            pub fn fetch_and(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_and", &mut |old| ((old as $t) & v) as u64) as $t
            }

            /// A locked `xor` (any ordering).
            #[track_caller]
            pub fn fetch_xor(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_xor", &mut |old| ((old as $t) ^ v) as u64) as $t
            }

            /// A `lock cmpxchg` loop, one locked step here (any ordering).
            #[track_caller]
            pub fn fetch_max(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_max", &mut |old| (old as $t).max(v) as u64) as $t
            }

            /// A `lock cmpxchg` loop, one locked step here (any ordering).
            #[track_caller]
            pub fn fetch_min(&self, v: $t, _order: Ordering) -> $t {
                self.cell.rmw("fetch_min", &mut |old| (old as $t).min(v) as u64) as $t
            }
        }

        impl Default for $name {
            #[track_caller]
            fn default() -> Self {
                Self::new(0)
            }
        }

        impl core::fmt::Debug for $name {
            /// The value outside a model (printing must not be a model operation).
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.cell.outside() as $t)
            }
        }
    };
}

atomic_int!(
    /// std's `AtomicU8`, on the TSO model.
    AtomicU8,
    u8
);
atomic_int!(
    /// std's `AtomicU32`, on the TSO model.
    AtomicU32,
    u32
);
atomic_int!(
    /// std's `AtomicU64`, on the TSO model.
    AtomicU64,
    u64
);
atomic_int!(
    /// std's `AtomicUsize`, on the TSO model.
    AtomicUsize,
    usize
);

/// std's `AtomicBool`, on the TSO model.
pub struct AtomicBool {
    cell: Cell,
}

impl AtomicBool {
    /// A new atomic holding `v`.
    #[track_caller]
    pub fn new(v: bool) -> Self {
        Self {
            cell: Cell::new(v as u64),
        }
    }

    /// `mov` from it (any ordering).
    #[track_caller]
    pub fn load(&self, order: Ordering) -> bool {
        self.cell.load(order) != 0
    }

    /// `mov` to it (Relaxed, Release) or `xchg` (SeqCst).
    #[track_caller]
    pub fn store(&self, v: bool, order: Ordering) {
        self.cell.store(v as u64, order)
    }

    /// `xchg` (locked, any ordering).
    #[track_caller]
    pub fn swap(&self, v: bool, _order: Ordering) -> bool {
        self.cell.rmw("swap", &mut |_| v as u64) != 0
    }

    /// `lock cmpxchg` (locked, any ordering).
    #[track_caller]
    pub fn compare_exchange(
        &self,
        current: bool,
        new: bool,
        _success: Ordering,
        _failure: Ordering,
    ) -> Result<bool, bool> {
        let old = self.cell.rmw("compare_exchange", &mut |old| {
            if old == current as u64 { new as u64 } else { old }
        }) != 0;
        if old == current { Ok(old) } else { Err(old) }
    }

    /// A locked `or` (any ordering).
    #[track_caller]
    pub fn fetch_or(&self, v: bool, _order: Ordering) -> bool {
        self.cell.rmw("fetch_or", &mut |old| old | v as u64) != 0
    }

    /// A locked `and` (any ordering).
    #[track_caller]
    pub fn fetch_and(&self, v: bool, _order: Ordering) -> bool {
        self.cell.rmw("fetch_and", &mut |old| old & v as u64) != 0
    }
}

impl Default for AtomicBool {
    #[track_caller]
    fn default() -> Self {
        Self::new(false)
    }
}

impl core::fmt::Debug for AtomicBool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AtomicBool({})", self.cell.outside() != 0)
    }
}

/// std's `AtomicPtr`, on the TSO model (the address is the value; provenance is
/// exposed, as a pointer stored in memory on a real machine is just its address).
pub struct AtomicPtr<T> {
    cell: Cell,
    // Send and Sync for every `T`, as std's.
    _t: PhantomData<fn(*mut T) -> *mut T>,
}

impl<T> AtomicPtr<T> {
    /// A new atomic holding `p`.
    #[track_caller]
    pub fn new(p: *mut T) -> Self {
        Self {
            cell: Cell::new(p.expose_provenance() as u64),
            _t: PhantomData,
        }
    }

    /// `mov` from it (any ordering).
    #[track_caller]
    pub fn load(&self, order: Ordering) -> *mut T {
        std::ptr::with_exposed_provenance_mut(self.cell.load(order) as usize)
    }

    /// `mov` to it (Relaxed, Release) or `xchg` (SeqCst).
    #[track_caller]
    pub fn store(&self, p: *mut T, order: Ordering) {
        self.cell.store(p.expose_provenance() as u64, order)
    }

    /// `xchg` (locked, any ordering).
    #[track_caller]
    pub fn swap(&self, p: *mut T, _order: Ordering) -> *mut T {
        let v = p.expose_provenance() as u64;
        std::ptr::with_exposed_provenance_mut(self.cell.rmw("swap", &mut |_| v) as usize)
    }
}

impl<T> Default for AtomicPtr<T> {
    #[track_caller]
    fn default() -> Self {
        Self::new(std::ptr::null_mut())
    }
}

impl<T> core::fmt::Debug for AtomicPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AtomicPtr({:#x})", self.cell.outside())
    }
}
