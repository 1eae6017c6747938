use super::*;

fn rec(i: u64) -> Record {
    Record {
        cpu: 2,
        tsc: 100 + i,
        kind: Kind::EntryClear,
        args: [1, i << 12, 1, 0, 0, 0, 0, 0],
    }
}

#[test]
fn reads_back_what_was_written_oldest_first() {
    let ring = Ring::new(8);
    (0..5).for_each(|i| ring.push(&rec(i)));
    let mut out = Vec::new();
    assert_eq!(ring.read_since(0, &mut out), Lost::default());
    assert_eq!(out, (0..5).map(rec).collect::<Vec<_>>());
    out.clear();
    ring.read_since(3, &mut out);
    assert_eq!(out, vec![rec(3), rec(4)]);
}

#[test]
fn a_full_ring_drops_the_oldest_and_counts_them() {
    let ring = Ring::new(4);
    (0..10).for_each(|i| ring.push(&rec(i)));
    let mut out = Vec::new();
    let lost = ring.read_since(0, &mut out);
    assert_eq!(lost.overwritten, 6);
    assert_eq!(out, (6..10).map(rec).collect::<Vec<_>>());
}

#[test]
fn a_slot_being_written_is_not_read_torn() {
    let ring = Ring::new(4);
    ring.push(&rec(0));
    // Write number 1 has claimed its slot and is half done (as if an interrupted writer).
    ring.head.store(2, Ordering::Relaxed);
    ring.slots[1].seq.store(3, Ordering::Relaxed);
    let mut out = Vec::new();
    let lost = ring.read_since(0, &mut out);
    assert_eq!((out.len(), lost.torn), (1, 1));
}

#[test]
fn concurrent_writers_and_a_reader_never_see_a_torn_event() {
    // Two writers stand in for a CPU and an interrupt nested in it; each event's words
    // are derived from its tsc, so a torn one shows.
    let ring = std::sync::Arc::new(Ring::new(64));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let t = w << 32 | i;
                    ring.push(&Record {
                        cpu: w as u32,
                        tsc: t,
                        kind: Kind::GpDone,
                        args: [t ^ 0x5555; ARGS],
                    });
                }
            })
        })
        .collect();
    let mut seen = 0;
    while seen < 200 {
        let mut out = Vec::new();
        ring.read_since(0, &mut out);
        for r in &out {
            assert!(r.args.iter().all(|&a| a == r.tsc ^ 0x5555), "torn: {r:?}");
            assert_eq!(r.cpu as u64, r.tsc >> 32, "torn: {r:?}");
        }
        seen += 1;
    }
    writers.into_iter().for_each(|w| w.join().unwrap());
}

#[test]
fn a_reader_racing_writers_on_a_small_ring_never_returns_a_torn_event() {
    // A one-slot ring that a writer laps constantly, read for as long as they write: a slot
    // overwritten while it is copied must be counted as torn, never returned mixed.
    use std::sync::atomic::AtomicBool;
    let ring = std::sync::Arc::new(Ring::new(1));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..1u64)
        .map(|w| {
            let (ring, done) = (ring.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let t = w << 32 | i;
                    ring.push(&Record {
                        cpu: w as u32,
                        tsc: t,
                        kind: Kind::GpDone,
                        args: [t ^ 0x5555; ARGS],
                    });
                    i += 1;
                }
            })
        })
        .collect();
    let (mut read, mut torn) = (0u64, 0u64);
    let start = std::time::Instant::now();
    // One second of reading, however many events that is on this host.
    while start.elapsed() < std::time::Duration::from_secs(1) {
        let mut out = Vec::new();
        let since = ring.written().saturating_sub(1);
        torn += ring.read_since(since, &mut out).torn;
        for r in &out {
            assert!(
                r.args.iter().all(|&a| a == r.tsc ^ 0x5555),
                "torn after {read} reads: {r:?}"
            );
            assert_eq!(r.cpu as u64, r.tsc >> 32, "torn after {read} reads: {r:?}");
        }
        read += out.len() as u64;
    }
    done.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    println!("read {read} events, {torn} slots seen mid-write");
}

#[test]
fn concurrent_writers_each_get_their_own_slot() {
    // Two writers (a CPU and an interrupt nested in it) that pushed at the same time: each
    // event has its own index, so a ring big enough for all of them holds every one.
    const N: u64 = 200_000;
    let ring = std::sync::Arc::new(Ring::new(2 * N as usize));
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (ring, start) = (ring.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..N {
                    let t = w << 32 | i;
                    ring.push(&Record {
                        cpu: w as u32,
                        tsc: t,
                        kind: Kind::GpDone,
                        args: [t; ARGS],
                    });
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let mut out = Vec::new();
    let lost = ring.read_since(0, &mut out);
    let mut tscs: Vec<u64> = out.iter().map(|r| r.tsc).collect();
    tscs.sort_unstable();
    tscs.dedup();
    assert_eq!(
        (ring.written(), lost, tscs.len() as u64),
        (2 * N, Lost::default(), 2 * N),
        "(events written, lost, distinct events read) after 2 x {N} pushes"
    );
}

#[test]
fn a_write_whose_slot_an_earlier_lap_still_fills_is_dropped_not_mixed_in() {
    let ring = Ring::new(2);
    ring.push(&rec(0));
    // Write number 1 claims its slot and is preempted before its words...
    let i = ring.head.fetch_add(1, Ordering::Relaxed);
    ring.slots[1].seq.store(2 * i + 1, Ordering::Relaxed);
    // ... while the ring goes round: write 3 lands in the same slot and must not.
    (2..4).for_each(|n| ring.push(&rec(n)));
    let mut out = Vec::new();
    let lost = ring.read_since(0, &mut out);
    assert_eq!(lost.busy, 1, "{lost:?}");
    assert_eq!(out, vec![rec(2)], "only whole events: {out:?}");
    // The preempted writer finishes; the next lap writes again.
    ring.slots[1].seq.store(2 * i + 2, Ordering::Release);
    ring.push(&rec(4));
    ring.push(&rec(5));
    out.clear();
    ring.read_since(4, &mut out);
    assert_eq!(out, vec![rec(4), rec(5)]);
}
