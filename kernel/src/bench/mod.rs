//! The benchmarks a boot can run instead of the demo (`bench=smp|tlb`): IPI round trips
//! and bring-up ([`smp`]), and the table-freeing operations measured the way Linux's
//! counters would show them ([`tlb`]).

pub mod smp;
pub mod tlb;
