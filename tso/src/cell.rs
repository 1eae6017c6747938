//! The storage behind every atomic of this crate: a 64-bit value outside a model, and
//! the location it has in the execution being run (made on first use in each
//! execution, from the value outside).

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::exec;

/// One atomic location (any width; the typed atomics in [`crate::sync::atomic`] convert).
pub(crate) struct Cell {
    /// The value outside any model (also each execution's initial value).
    outside: AtomicU64,
    /// `(execution id << 32) | (location + 1)` in the execution that last used it.
    slot: AtomicU64,
    /// Where it was made, to name it in traces.
    made_at: &'static Location<'static>,
}

impl Cell {
    #[track_caller]
    pub(crate) fn new(v: u64) -> Self {
        Self {
            outside: AtomicU64::new(v),
            slot: AtomicU64::new(0),
            made_at: Location::caller(),
        }
    }

    /// Its location in execution `exec` (`fresh(initial value, made at)` makes one).
    pub(crate) fn loc(
        &self,
        exec: u32,
        fresh: impl FnOnce(u64, &'static Location<'static>) -> usize,
    ) -> usize {
        // Plain std atomics: only the one running model thread touches a cell at a time
        // (the checker's lock orders them); Relaxed is enough for a cache.
        let slot = self.slot.load(Ordering::Relaxed);
        if (slot >> 32) as u32 == exec && slot as u32 != 0 {
            return (slot as u32 - 1) as usize;
        }
        let loc = fresh(self.outside.load(Ordering::Relaxed), self.made_at);
        self.slot
            .store(((exec as u64) << 32) | (loc as u64 + 1), Ordering::Relaxed);
        loc
    }

    /// A load with ordering `o` (any: every x86 load is a `mov`).
    #[track_caller]
    pub(crate) fn load(&self, o: Ordering) -> u64 {
        assert!(
            !matches!(o, Ordering::Release | Ordering::AcqRel),
            "there is no such thing as a {o:?} load"
        );
        match exec::current() {
            Some((e, me)) => e.load(me, self, Location::caller()),
            None => self.outside.load(Ordering::SeqCst),
        }
    }

    /// A store with ordering `o`: `mov` (Relaxed, Release) or `xchg` (SeqCst).
    #[track_caller]
    pub(crate) fn store(&self, v: u64, o: Ordering) {
        assert!(
            !matches!(o, Ordering::Acquire | Ordering::AcqRel),
            "there is no such thing as a {o:?} store"
        );
        match exec::current() {
            Some((e, me)) if o == Ordering::SeqCst => {
                e.locked(me, self, "xchg (SeqCst store)", &mut |_| v, Location::caller());
            }
            Some((e, me)) => e.store(me, self, v, Location::caller()),
            None => self.outside.store(v, Ordering::SeqCst),
        }
    }

    /// A locked read-modify-write (any ordering): `new(old)` is written, `old` returned.
    #[track_caller]
    pub(crate) fn rmw(&self, what: &str, new: &mut dyn FnMut(u64) -> u64) -> u64 {
        match exec::current() {
            Some((e, me)) => e.locked(me, self, what, new, Location::caller()),
            None => {
                let mut old = self.outside.load(Ordering::SeqCst);
                loop {
                    match self
                        .outside
                        .compare_exchange(old, new(old), Ordering::SeqCst, Ordering::SeqCst)
                    {
                        Ok(v) => return v,
                        Err(v) => old = v,
                    }
                }
            }
        }
    }

    /// The value outside a model (for `Debug`).
    pub(crate) fn outside(&self) -> u64 {
        self.outside.load(Ordering::SeqCst)
    }
}
