//! The frame allocator and the heap: counts, reuse, and growth when a block does not fit.

use crate::mem::frames::{alloc_zeroed, free, stats};
use crate::mem::heap::usage;

ktest::kernel_test!(
    fn alloc_free_reuses_and_counts() {
        let before = stats();
        let a = alloc_zeroed().unwrap();
        let b = alloc_zeroed().unwrap();
        assert_ne!(a, b);
        assert_eq!(stats().used, before.used + 2);
        free(b);
        assert_eq!(stats().used, before.used + 1);
        // LIFO free list: the frame just freed comes back first, zeroed.
        let c = alloc_zeroed().unwrap();
        assert_eq!(c, b);
        free(a);
        free(c);
        assert_eq!(stats(), before);
    }
);

ktest::kernel_test!(
    needs(scale()) fn heap_allocates_and_frees() {
        extern crate alloc;
        use alloc::vec::Vec;
        let (used_before, _) = usage();
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        drop(v);
        assert_eq!(usage().0, used_before);
    }
);

ktest::kernel_test!(
    needs(scale()) fn heap_grows_when_a_block_does_not_fit() {
        extern crate alloc;
        let before = crate::mem::heap::stats();
        // One block larger than all the heap's free bytes: only growth can satisfy it.
        let big = before.size - before.used + (4 << 20);
        let v = alloc::vec![7u8; big];
        assert_eq!(v[big - 1], 7);
        let after = crate::mem::heap::stats();
        assert!(after.size >= before.size + (4 << 20), "{before:?} -> {after:?}");
        drop(v);
        assert_eq!(crate::mem::heap::stats().used, before.used);
    }
);
