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
    /// With `should_panic`: text the panic message must contain (None: any panic).
    pub panic_expected: Option<&'static str>,
    /// What the machine must have for the test to mean anything; where it has not, the
    /// harness reports the test as ignored (never as passed).
    pub needs: Needs,
}

/// A test's requirements: `kernel_test!(needs(cpus(2)) fn ...)`,
/// `kernel_test!(needs(pv()) fn ...)`, `needs(pv().and_cpus(2))`, `needs(soak())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Fewest CPUs online.
    pub cpus: usize,
    /// The flush backend the boot must have chosen (None: any).
    pub backend: Option<mm::hw::BackendKind>,
    /// The firmware that must have booted the kernel (None: any).
    pub firmware: Option<Firmware>,
    /// Which suite the test belongs to: a boot runs only the suites it selects
    /// (`test.suites=`), so that slow tests are chosen by what they declare.
    pub suite: Suite,
}

/// The firmware that loaded the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS.
    Bios,
    /// UEFI.
    Uefi,
}

impl Firmware {
    /// Name in log lines (`bios`, `uefi`).
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// Groups of tests by cost, selected per boot with `test.suites=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Seconds at most: every configuration runs these.
    Quick,
    /// Waits out the watchdog's bound, and one of them ends its boot (the fatal case).
    Watchdog,
    /// Minutes: the table-freeing race at length.
    Soak,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Suite; 3] = [Suite::Quick, Suite::Watchdog, Suite::Soak];

    /// Name in `test.suites=` and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Quick => "quick",
            Suite::Watchdog => "watchdog",
            Suite::Soak => "soak",
        }
    }

    /// The suite called `name`.
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The machine a test runs on, as far as [`Needs`] asks about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// CPUs online.
    pub cpus: usize,
    /// The flush backend chosen at boot.
    pub backend: mm::hw::BackendKind,
    /// The firmware that booted the kernel (None: the memory map did not tell).
    pub firmware: Option<Firmware>,
}

/// The constructors `kernel_test!(needs(..))` takes.
pub mod needs {
    use super::{Firmware, Needs, Suite};
    use mm::hw::BackendKind;

    /// No requirement.
    pub const NONE: Needs = Needs {
        cpus: 1,
        backend: None,
        firmware: None,
        suite: Suite::Quick,
    };

    /// Booted by BIOS.
    pub const fn bios() -> Needs {
        Needs {
            firmware: Some(Firmware::Bios),
            ..NONE
        }
    }

    /// In the watchdog suite (see [`Suite::Watchdog`]).
    pub const fn watchdog() -> Needs {
        Needs {
            suite: Suite::Watchdog,
            ..NONE
        }
    }

    /// In the soak suite (see [`Suite::Soak`]).
    pub const fn soak() -> Needs {
        Needs {
            suite: Suite::Soak,
            ..NONE
        }
    }

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

        /// The same, and the backend of `other` (`soak().and(pv())`).
        pub const fn and(self, other: Needs) -> Needs {
            Needs {
                backend: match other.backend {
                    Some(b) => Some(b),
                    None => self.backend,
                },
                firmware: match other.firmware {
                    Some(f) => Some(f),
                    None => self.firmware,
                },
                cpus: if other.cpus > self.cpus {
                    other.cpus
                } else {
                    self.cpus
                },
                suite: self.suite,
            }
        }
    }
}

impl Needs {
    /// Why this machine cannot run the test (None: it can).
    pub fn unmet(&self, m: &Machine) -> Option<alloc::string::String> {
        if m.cpus < self.cpus {
            return Some(alloc::format!("needs {} CPUs, has {}", self.cpus, m.cpus));
        }
        if let Some(f) = self.firmware.filter(|&f| Some(f) != m.firmware) {
            return Some(alloc::format!(
                "needs {} firmware, booted by {}",
                f.name(),
                m.firmware.map_or("unknown firmware", Firmware::name)
            ));
        }
        match self.backend {
            Some(b) if b != m.backend => Some(alloc::format!(
                "needs the {} backend, booted with {}",
                b.name(),
                m.backend.name()
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
/// `should_panic` (or `should_panic(expected = "text")`, the message must contain it)
/// before `fn` if it must panic, and `needs(..)` (see [`needs`]) before that if it means
/// something only on some machines.
#[macro_export]
macro_rules! kernel_test {
    (@register $name:ident, $should_panic:expr, $expected:expr, $needs:expr, $body:block) => {
        const _: () = {
            #[$crate::ktest::linkme::distributed_slice($crate::ktest::KERNEL_TESTS)]
            #[linkme(crate = $crate::ktest::linkme)]
            static TEST: $crate::ktest::KernelTest = $crate::ktest::KernelTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
                should_panic: $should_panic,
                panic_expected: $expected,
                needs: {
                    #[allow(unused_imports)]
                    use $crate::ktest::needs::*;
                    $needs
                },
            };
        };
        fn $name() $body
    };
    (needs($needs:expr) should_panic(expected = $expected:literal) fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, Some($expected), $needs, $body);
    };
    (needs($needs:expr) should_panic fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, None, $needs, $body);
    };
    (needs($needs:expr) fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, false, None, $needs, $body);
    };
    (should_panic(expected = $expected:literal) fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, Some($expected), NONE, $body);
    };
    (should_panic fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, true, None, NONE, $body);
    };
    (fn $name:ident() $body:block) => {
        $crate::kernel_test!(@register $name, false, None, NONE, $body);
    };
}
