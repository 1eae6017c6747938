//! The benchmarks a boot can run instead of the demo (`bench=smp|tlb|shootdown`): IPI
//! round trips and bring-up ([`smp`]), the table-freeing operations measured the way
//! Linux's counters would show them ([`tlb`]), with the walker's price ([`walk_cost`]), the
//! unlink-to-free time of batched tables ([`unlink_to_free`]) and the lock-free walkers
//! both use ([`walkers`]), and one shootdown round in each round mode ([`shootdown`]);
//! the busy tasks of `tlb` and `shootdown` are [`spinners`].

pub mod shootdown;
pub mod smp;
pub mod spinners;
pub mod tlb;
pub mod unlink_to_free;
pub mod walk_cost;
pub mod walkers;
