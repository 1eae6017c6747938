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
    /// What the machine must have for the test to mean anything; where it has not, the
    /// harness reports the test as ignored (never as passed).
    pub needs: Needs,
}

/// A test's requirements: `kernel_test!(needs(cpus(2)) fn ...)`,
/// `kernel_test!(needs(pv()) fn ...)`, `needs(pv().and_cpus(2))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Fewest CPUs online.
    pub cpus: usize,
    /// The flush backend the boot must have chosen (None: any).
    pub backend: Option<mm::hw::BackendKind>,
}

/// The constructors `kernel_test!(needs(..))` takes.
pub mod needs {
    use super::Needs;
    use mm::hw::BackendKind;

    /// No requirement.
    pub const NONE: Needs = Needs {
        cpus: 1,
        backend: None,
    };

    /// At least `n` CPUs.
    pub const fn cpus(n: usize) -> Needs {
        Needs { cpus: n, ..NONE }
    }

    /// The native IPI backend (`tlb.backend=native`, the default without INVLPGB).
    pub const fn native() -> Needs {
        Needs {
            backend: Some(BackendKind::NativeIpi),
            ..NONE
        }
    }

    /// The paravirt backend (`tlb.backend=pv`).
    pub const fn pv() -> Needs {
        Needs {
            backend: Some(BackendKind::Paravirt),
            ..NONE
        }
    }

    /// The INVLPGB backend (`setcpuid=invlpgb`).
    pub const fn invlpgb() -> Needs {
        Needs {
            backend: Some(BackendKind::Invlpgb),
            ..NONE
        }
    }

    impl Needs {
        /// The same, and at least `n` CPUs.
        pub const fn and_cpus(self, n: usize) -> Needs {
            Needs { cpus: n, ..self }
        }
    }
}

impl Needs {
    /// Why this machine cannot run the test (None: it can).
    pub fn unmet(&self, cpus: usize, backend: mm::hw::BackendKind) -> Option<alloc::string::String> {
        if cpus < self.cpus {
            return Some(alloc::format!("needs {} CPUs, has {cpus}", self.cpus));
        }
        match self.backend {
            Some(b) if b != backend => Some(alloc::format!(
                "needs the {} backend, booted with {}",
                b.name(),
                backend.name()
            )),
            _ => None,
        }
    }
}

extern crate alloc;

/// Every in-kernel test linked into the kernel.
#[linkme::distributed_slice]
pub static KERNEL_TESTS: [KernelTest];

/// Registers an in-kernel test: `kernel_test!(fn name() { ... });`, with
/// `should_panic` before `fn` if it must panic, and `needs(..)` (see [`needs`]) before
/// that if it means something only on some machines.
#[macro_export]
macro_rules! kernel_test {
    (@register $name:ident, $should_panic:expr, $needs:expr, $body:block) => {
        const _: () = {
            #[$crate::ktest::linkme::distributed_slice($crate::ktest::KERNEL_TESTS)]
            #[linkme(crate = $crate::ktest::linkme)]
            static TEST: $crate::ktest::KernelTest = $crate::ktest::KernelTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
                should_panic: $should_panic,
                needs: {
                    #[allow(unused_imports)]
                    use $crate::ktest::needs::*;
                    $needs
                },
            };
        };
        fn $name() $body
    };
    (needs($needs:expr) should_panic fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, $needs, $body);
    };
    (needs($needs:expr) fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, false, $needs, $body);
    };
    (should_panic fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, NONE, $body);
    };
    (fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, false, NONE, $body);
    };
}
