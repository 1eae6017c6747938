//! Litmus tests of the checker itself: the outcomes x86-TSO allows are found (the check
//! fails on them, with the trace), the ones it forbids are not (every execution passes).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tso::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use tso::sync::atomic::{AtomicU64, fence};
use tso::thread;

/// How each side of the store-buffer litmus orders its store before its load.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// `mov` store, `mov` load.
    Plain,
    /// Store, `fence(SeqCst)` (mfence), load.
    Fence,
    /// A locked RMW (`swap`, Relaxed) as the store, then the load.
    Swap,
    /// A SeqCst store (`xchg`), then the load.
    SeqCstStore,
    /// A Release store and a SeqCst load: still two `mov`s.
    SeqCstLoad,
}

fn side(how: Side, mine: &AtomicU64, other: &AtomicU64) -> u64 {
    match how {
        Side::Plain => {
            mine.store(1, Relaxed);
            other.load(Relaxed)
        }
        Side::Fence => {
            mine.store(1, Relaxed);
            fence(SeqCst);
            other.load(Relaxed)
        }
        Side::Swap => {
            mine.swap(1, Relaxed);
            other.load(Relaxed)
        }
        Side::SeqCstStore => {
            mine.store(1, SeqCst);
            other.load(Relaxed)
        }
        Side::SeqCstLoad => {
            mine.store(1, Release);
            other.load(SeqCst)
        }
    }
}

/// Store buffering: `x = 1; r0 = y` against `y = 1; r1 = x`; asserts not both 0.
fn store_buffering(a: Side, b: Side) -> tso::Explored {
    tso::model(move || {
        let x = Arc::new(AtomicU64::new(0));
        let y = Arc::new(AtomicU64::new(0));
        let (x1, y1) = (x.clone(), y.clone());
        let t = thread::spawn(move || side(b, &y1, &x1));
        let r0 = side(a, &x, &y);
        let r1 = t.join().unwrap();
        assert!(!(r0 == 0 && r1 == 0), "both loads read 0 ({a:?} / {b:?})");
    })
}

/// Every outcome `(r0, r1)` of the store-buffer litmus.
fn sb_outcomes(a: Side, b: Side) -> BTreeSet<(u64, u64)> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let s = seen.clone();
    tso::model(move || {
        let x = Arc::new(AtomicU64::new(0));
        let y = Arc::new(AtomicU64::new(0));
        let (x1, y1) = (x.clone(), y.clone());
        let t = thread::spawn(move || side(b, &y1, &x1));
        let r0 = side(a, &x, &y);
        let r1 = t.join().unwrap();
        s.lock().unwrap().insert((r0, r1));
    });
    seen.lock().unwrap().clone()
}

/// The exploration is exhaustive: every outcome TSO allows shows up, and only those.
#[test]
fn sb_outcomes_are_exactly_tsos() {
    let all: BTreeSet<_> = [(0, 0), (0, 1), (1, 0), (1, 1)].into();
    let fenced: BTreeSet<_> = [(0, 1), (1, 0), (1, 1)].into();
    assert_eq!(sb_outcomes(Side::Plain, Side::Plain), all);
    assert_eq!(sb_outcomes(Side::SeqCstLoad, Side::Plain), all);
    assert_eq!(sb_outcomes(Side::Fence, Side::Fence), fenced);
    assert_eq!(sb_outcomes(Side::Swap, Side::SeqCstStore), fenced);
}

#[test]
fn sb_without_fences_both_loads_read_0() {
    let msg = tso::must_fail(|| store_buffering(Side::Plain, Side::Plain));
    println!("{msg}");
    assert!(msg.contains("both loads read 0"), "{msg}");
    assert!(
        msg.contains("into its store buffer") && msg.contains("drain"),
        "{msg}"
    );
}

#[test]
fn sb_with_mfence_on_both_sides_never() {
    let e = store_buffering(Side::Fence, Side::Fence);
    println!("{e}");
    assert!(e.executions > 1);
}

#[test]
fn sb_with_mfence_on_one_side_only() {
    let msg = tso::must_fail(|| store_buffering(Side::Fence, Side::Plain));
    assert!(msg.contains("both loads read 0"), "{msg}");
}

#[test]
fn sb_locked_rmw_is_a_full_fence_whatever_its_ordering() {
    store_buffering(Side::Swap, Side::Fence);
    store_buffering(Side::Swap, Side::Swap);
    store_buffering(Side::SeqCstStore, Side::Fence);
}

#[test]
fn sb_seqcst_load_does_not_fence() {
    let msg = tso::must_fail(|| store_buffering(Side::SeqCstLoad, Side::Fence));
    assert!(msg.contains("both loads read 0"), "{msg}");
}

/// Message passing: TSO keeps stores in order and loads in order.
#[test]
fn mp_data_then_flag_is_seen_in_order() {
    let outcomes = Arc::new(Mutex::new(BTreeSet::new()));
    let o = outcomes.clone();
    let e = tso::model(move || {
        let data = Arc::new(AtomicU64::new(0));
        let flag = Arc::new(AtomicU64::new(0));
        let (d, f) = (data.clone(), flag.clone());
        let t = thread::spawn(move || {
            let seen = f.load(Relaxed);
            let v = d.load(Relaxed);
            (seen, v)
        });
        data.store(1, Relaxed);
        flag.store(1, Relaxed);
        let (seen, v) = t.join().unwrap();
        assert!(!(seen == 1 && v == 0), "flag seen before data");
        o.lock().unwrap().insert((seen, v));
    });
    assert!(e.executions >= 3, "{e}");
    let got = outcomes.lock().unwrap().clone();
    assert_eq!(
        got,
        [(0, 0), (0, 1), (1, 1)].into(),
        "every other outcome is found"
    );
}

/// Load buffering: a load is never satisfied by a later store of another CPU that
/// depends on nothing (TSO does not reorder a load with a later store).
#[test]
fn lb_never() {
    tso::model(|| {
        let x = Arc::new(AtomicU64::new(0));
        let y = Arc::new(AtomicU64::new(0));
        let (x1, y1) = (x.clone(), y.clone());
        let t = thread::spawn(move || {
            let r = y1.load(Relaxed);
            x1.store(1, Relaxed);
            r
        });
        let r0 = x.load(Relaxed);
        y.store(1, Relaxed);
        let r1 = t.join().unwrap();
        assert!(!(r0 == 1 && r1 == 1), "load buffering");
    });
}

/// A CPU reads its own store before others can (store forwarding): the outcome
/// `r0 = 1 (own x), r1 = 0 (y)` on both sides with loads of one's own store first.
#[test]
fn own_store_forwarding_is_found() {
    let msg = tso::must_fail(|| {
        tso::model(|| {
            let x = Arc::new(AtomicU64::new(0));
            let y = Arc::new(AtomicU64::new(0));
            let (x1, y1) = (x.clone(), y.clone());
            let t = thread::spawn(move || {
                y1.store(1, Relaxed);
                (y1.load(Relaxed), x1.load(Relaxed))
            });
            x.store(1, Relaxed);
            let own = x.load(Relaxed);
            let other = y.load(Relaxed);
            let (own1, other1) = t.join().unwrap();
            assert!(
                !(own == 1 && own1 == 1 && other == 0 && other1 == 0),
                "own stores forwarded, other's not seen"
            );
        })
    });
    assert!(msg.contains("from its own store buffer"), "{msg}");
}

/// Three CPUs: IRIW-like write order is one for all (TSO is multi-copy atomic): two
/// readers never see two independent writes in opposite orders.
#[test]
fn iriw_one_write_order_for_all() {
    let e = tso::model(|| {
        let x = Arc::new(AtomicU64::new(0));
        let y = Arc::new(AtomicU64::new(0));
        let (x1, y1) = (x.clone(), y.clone());
        let (x2, y2) = (x.clone(), y.clone());
        let (x3, y3) = (x.clone(), y.clone());
        let wx = thread::spawn(move || x3.store(1, Relaxed));
        let r1 = thread::spawn(move || (x1.load(Relaxed), y1.load(Relaxed)));
        let r2 = thread::spawn(move || (y2.load(Relaxed), x2.load(Relaxed)));
        y3.store(1, Relaxed);
        wx.join().unwrap();
        let (a, b) = r1.join().unwrap();
        let (c, d) = r2.join().unwrap();
        assert!(!(a == 1 && b == 0 && c == 1 && d == 0), "IRIW");
    });
    println!("{e}");
}

/// A spin loop waits for the other CPU's store; executions stay finite.
#[test]
fn spin_waits_for_a_store() {
    let e = tso::model(|| {
        let flag = Arc::new(AtomicU64::new(0));
        let f = flag.clone();
        let t = thread::spawn(move || {
            while f.load(Relaxed) == 0 {
                tso::hint::spin_loop();
            }
        });
        flag.store(1, Relaxed);
        t.join().unwrap();
    });
    assert!(e.executions >= 1, "{e}");
}

/// A wait for a store nobody makes is a deadlock, reported.
#[test]
fn a_wait_forever_is_a_deadlock() {
    let msg = tso::must_fail(|| {
        tso::model(|| {
            let flag = Arc::new(AtomicU64::new(0));
            let f = flag.clone();
            let t = thread::spawn(move || {
                while f.load(Relaxed) == 0 {
                    tso::hint::spin_loop();
                }
            });
            flag.store(0, Relaxed);
            t.join().unwrap();
        })
    });
    assert!(msg.contains("deadlock"), "{msg}");
}

/// Outside a model the atomics are plain ones.
#[test]
fn outside_a_model() {
    let a = AtomicU64::new(5);
    assert_eq!(a.fetch_add(2, Relaxed), 5);
    a.store(9, Release);
    assert_eq!(a.load(Relaxed), 9);
    assert_eq!(a.compare_exchange(9, 1, SeqCst, Relaxed), Ok(9));
    assert_eq!(a.compare_exchange(9, 2, SeqCst, Relaxed), Err(1));
    fence(SeqCst);
}

/// One operation of a generated program.
#[derive(Clone, Copy, Debug)]
enum Op {
    Load(usize),
    Store(usize, u64),
    Swap(usize, u64),
    Fence,
}

/// A small deterministic generator (xorshift) for the programs below.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Runs `program` (one list of operations per CPU, over 2 locations) and returns every
/// outcome: the values each CPU's loads read, and memory at the end.
fn outcomes(program: Vec<Vec<Op>>, every_order: bool) -> (BTreeSet<Vec<u64>>, tso::Explored) {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let s = seen.clone();
    let program = Arc::new(program);
    let run = move || {
        let mem: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let exec = |ops: &[Op], mem: &[AtomicU64; 2]| -> Vec<u64> {
            let mut got = Vec::new();
            for op in ops {
                match *op {
                    Op::Load(l) => got.push(mem[l].load(Relaxed)),
                    Op::Store(l, v) => mem[l].store(v, Relaxed),
                    Op::Swap(l, v) => got.push(mem[l].swap(v, Relaxed)),
                    Op::Fence => fence(SeqCst),
                }
            }
            got
        };
        let others: Vec<_> = (1..program.len())
            .map(|c| {
                let (p, m) = (program.clone(), mem.clone());
                thread::spawn(move || exec(&p[c], &m))
            })
            .collect();
        let mut all = exec(&program[0], &mem);
        for t in others {
            all.extend(t.join().unwrap());
        }
        // Memory at the end, once every buffer has drained: a last locked read.
        all.extend(mem.iter().map(|m| m.fetch_add(0, Relaxed)));
        s.lock().unwrap().insert(all);
    };
    let e = if every_order {
        tso::model_every_order(run)
    } else {
        tso::model(run)
    };
    let got = seen.lock().unwrap().clone();
    (got, e)
}

/// The pruned search finds exactly the outcomes of the search of every order, on
/// generated programs of 2 CPUs (3 operations each) and 3 CPUs (3, 2 and 2).
#[test]
fn pruning_loses_no_outcome() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..16 {
        let ncpu = 2 + (i % 2);
        let program: Vec<Vec<Op>> = (0..ncpu)
            .map(|c| {
                (0..if c == 0 || ncpu == 2 { 3 } else { 2 })
                    .map(|_| {
                        let r = next(&mut seed);
                        let l = (r >> 8) as usize % 2;
                        match r % 7 {
                            0..=2 => Op::Load(l),
                            3 | 4 => Op::Store(l, 1 + (r >> 16) % 3),
                            5 => Op::Swap(l, 1 + (r >> 16) % 3),
                            _ => Op::Fence,
                        }
                    })
                    .collect()
            })
            .collect();
        let (pruned, e1) = outcomes(program.clone(), false);
        let (every, e2) = outcomes(program.clone(), true);
        assert_eq!(
            pruned, every,
            "program {program:?}: pruned {e1}, every order {e2}"
        );
        assert!(e1.executions <= e2.executions);
        println!("{ncpu} cpus {program:?}: pruned {e1}; every order {e2}");
    }
}
