//! The in-kernel test registry.
//!
//! Tests are collected with a `linkme` distributed slice (a linker section) rather than
//! `#[test_case]`, because the kernel is built as an artifact dependency of the host
//! tool and never under `--test`. Any kernel crate registers a test with
//! [`kernel_test!`](crate::kernel_test); the kernel's harness runs them on the real boot
//! path and prints `test <path::name> ... ok|FAILED`.

#[doc(hidden)]
pub use linkme;

/// One registered in-kernel test.
pub struct KernelTest {
    /// Full path, e.g. `kernel::options::tests::parses_known_keys`.
    pub name: &'static str,
    /// The test body; a return means success.
    pub run: fn(),
    /// The test passes only if it panics.
    pub should_panic: bool,
}

/// Every in-kernel test linked into the kernel.
#[linkme::distributed_slice]
pub static KERNEL_TESTS: [KernelTest];

/// Registers an in-kernel test:
/// `kernel_test!(fn name() { ... });` or `kernel_test!(should_panic fn name() { ... });`.
#[macro_export]
macro_rules! kernel_test {
    (@register $name:ident, $should_panic:expr, $body:block) => {
        const _: () = {
            #[$crate::ktest::linkme::distributed_slice($crate::ktest::KERNEL_TESTS)]
            #[linkme(crate = $crate::ktest::linkme)]
            static TEST: $crate::ktest::KernelTest = $crate::ktest::KernelTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
                should_panic: $should_panic,
            };
        };
        fn $name() $body
    };
    (should_panic fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, $body);
    };
    (fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, false, $body);
    };
}
