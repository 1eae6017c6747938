//! CPU exceptions on the test path: a breakpoint resumes, a page fault fails the test.

use core::sync::atomic::Ordering;

ktest::kernel_test!(
    fn breakpoint_exception_resumes() {
        let before = arch::idt::BREAKPOINTS.load(Ordering::Relaxed);
        x86_64::instructions::interrupts::int3();
        assert_eq!(arch::idt::BREAKPOINTS.load(Ordering::Relaxed), before + 1);
    }
);

ktest::kernel_test!(should_panic(expected = "(page fault)") fn page_fault_is_reported_as_failure() {
    // Canonical, above the heap, and never mapped.
    const UNMAPPED: usize = crate::mem::layout::NEVER_MAPPED as usize;
    // SAFETY: deliberately reads an unmapped address; the page fault ends this test.
    unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
});
