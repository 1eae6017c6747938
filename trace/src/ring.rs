//! One CPU's ring of trace events: lock-free, fixed size, the oldest events overwritten
//! when it is full (and counted).
//!
//! Protocol. Writers are the ring's own CPU, in thread context and in interrupt handlers
//! that nest inside it (an IPI taken in the middle of a write), and a task preempted in
//! the middle of a write may resume after others ran on the CPU; readers are any CPU (the
//! dump, a test). Each write claims its own number `i` with one `fetch_add` on `head`, so
//! a nested writer takes the next one. Each slot is a little seqlock: its `seq` is `2i+1`
//! while write number `i` fills it and `2i+2` once it is whole. The writer takes the slot
//! with a compare-and-swap from the whole (even) value of an earlier write to `2i+1`: if a
//! writer of an earlier lap is still in the slot (odd: preempted mid-write while the ring
//! went round), or a later write already took it, this write is dropped and counted
//! ([`Lost::busy`]) rather than written over a slot that someone else is filling. So one
//! writer at a time owns a slot. A reader accepts slot `i % capacity` as event `i` only if
//! it saw `seq == 2i+2` both before and after copying it; a slot still being written, or
//! already overwritten by a later lap, is counted as lost instead of read torn.
//!
//! Orderings (Rust's model; the kernel's writer and reader usually run on one CPU, after
//! recording stops, where x86-TSO would need none of this): the writer's odd store, then a
//! Release fence, then the words (Relaxed), then the even store (Release); the reader's
//! Acquire load of `seq`, the words (Relaxed), an Acquire fence, then `seq` again. The
//! first pair orders the words before the even `seq` a reader acquires; the fence pair
//! makes a reader that saw any word of a later write also see that write's odd `seq` in
//! its second load (the standard seqlock argument).

extern crate alloc;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering, fence};

use crate::event::{ARGS, Kind, Record};

/// Words in a slot besides `seq`: TSC, CPU and kind, arguments.
const WORDS: usize = 2 + ARGS;

struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A fixed-size ring of events for one CPU.
pub struct Ring {
    head: AtomicU64,
    /// Writes dropped because their slot was still owned by an earlier lap's writer.
    busy: AtomicU64,
    slots: Box<[Slot]>,
}

/// What a read could not return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Events overwritten by newer ones before the read (the ring was full).
    pub overwritten: u64,
    /// Events being written, or overwritten, while read (their slot changed under the
    /// reader, or was not whole yet).
    pub torn: u64,
    /// Events never written: their slot was still being filled by a write of an earlier
    /// lap (a writer preempted while the ring went round).
    pub busy: u64,
}

impl Ring {
    /// A ring of `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Ring {
        let slots = (0..capacity.max(1))
            .map(|_| Slot {
                seq: AtomicU64::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            })
            .collect();
        Ring {
            head: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            slots,
        }
    }

    /// How many events it holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Events written so far (the next event's number): a mark to read from.
    pub fn written(&self) -> u64 {
        // Relaxed: a count; the slots' seqs say what is whole.
        self.head.load(Ordering::Relaxed)
    }

    /// Writes `rec`, overwriting the oldest event if the ring is full.
    pub fn push(&self, rec: &Record) {
        // Relaxed: the index only has to be unique (fetch_add is atomic); a nested writer
        // on this CPU takes the next one.
        let i = self.head.fetch_add(1, Ordering::Relaxed);
        let cap = self.slots.len() as u64;
        let slot = &self.slots[(i % cap) as usize];
        // Relaxed: the claim only has to be exclusive (an RMW on `seq`); the fence below
        // orders the odd seq before the words, as a plain store would need.
        let seen = slot.seq.load(Ordering::Relaxed);
        let free = seen & 1 == 0 && seen < 2 * i + 1;
        if !free
            || slot
                .seq
                .compare_exchange(seen, 2 * i + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            // Relaxed: a count.
            self.busy.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Release fence: the odd seq is ordered before the words below (seqlock writer).
        fence(Ordering::Release);
        slot.words[0].store(rec.tsc, Ordering::Relaxed);
        slot.words[1].store((rec.cpu as u64) << 8 | rec.kind as u64, Ordering::Relaxed);
        for (w, a) in slot.words[2..].iter().zip(rec.args) {
            w.store(a, Ordering::Relaxed);
        }
        // Release: a reader that acquires the even seq sees every word above.
        slot.seq.store(2 * i + 2, Ordering::Release);
    }

    /// Appends to `out` every whole event numbered `since` or later still in the ring, oldest
    /// first, and says what it could not return.
    pub fn read_since(&self, since: u64, out: &mut Vec<Record>) -> Lost {
        let head = self.written();
        let cap = self.slots.len() as u64;
        let first = since.max(head.saturating_sub(cap));
        let mut lost = Lost {
            overwritten: first - since,
            torn: 0,
            // Relaxed: a count (drops since the ring began, not only since `since`).
            busy: self.busy.load(Ordering::Relaxed),
        };
        for i in first..head {
            match self.read_slot(i) {
                Some(r) => out.push(r),
                None => lost.torn += 1,
            }
        }
        lost
    }

    fn read_slot(&self, i: u64) -> Option<Record> {
        let slot = &self.slots[(i % self.slots.len() as u64) as usize];
        // Acquire: pairs with the writer's even Release store.
        let before = slot.seq.load(Ordering::Acquire);
        if before != 2 * i + 2 {
            return None;
        }
        let words: [u64; WORDS] = core::array::from_fn(|w| slot.words[w].load(Ordering::Relaxed));
        // Acquire fence: a word of a later write read above makes its odd seq visible below.
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != before {
            return None;
        }
        Some(Record {
            tsc: words[0],
            cpu: (words[1] >> 8) as u32,
            kind: Kind::from_u8(words[1] as u8)?,
            args: core::array::from_fn(|a| words[2 + a]),
        })
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
