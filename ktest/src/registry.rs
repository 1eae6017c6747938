//! The in-kernel test registry, and the language in which a test says what it needs.
//!
//! Tests are collected with a `linkme` distributed slice (a linker section) rather than
//! `#[test_case]`, because the kernel is built as an artifact dependency of the host
//! tool and never under `--test`. Any kernel crate registers a test with
//! [`kernel_test!`](crate::kernel_test); the kernel's harness runs them on the real boot
//! path and prints `test <path::name> ... ok|FAILED`.

#[doc(hidden)]
pub use linkme;
use mm::hw::BackendKind;

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
    /// The flush backends under which the test means something (default: every one).
    pub backends: Backends,
    /// The test is about the flush backend: besides those limited to some backends,
    /// tests declared [`needs::per_backend`] run in the configurations of each backend
    /// (`test.backend_tests=on` selects exactly these).
    pub per_backend: bool,
    /// The firmware that must have booted the kernel (None: any).
    pub firmware: Option<Firmware>,
    /// Most CPUs at which the test is run: above it, its time under TCG grows past what
    /// a configuration can afford (a bound on time, not on correctness).
    pub max_cpus: usize,
    /// The test is about scale (cross calls, flushes, memory and the watchdog with many
    /// CPUs): the largest configurations run only these (`test.scale_tests=on`).
    pub about_scale: bool,
    /// Which suite the test belongs to: a boot runs only the suites it selects
    /// (`test.suites=`), so that slow tests are chosen by what they declare.
    pub suite: Suite,
    /// The boot must trace (`trace=tlb`: the trace key is switched on at boot only).
    pub traced: bool,
}

/// A set of flush backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backends(u8);

impl Backends {
    /// Every backend.
    pub const ALL: Backends = Backends(0b111);

    /// Just `kind`.
    pub const fn only(kind: BackendKind) -> Backends {
        Backends(1 << Self::bit(kind))
    }

    const fn bit(kind: BackendKind) -> u8 {
        match kind {
            BackendKind::NativeIpi => 0,
            BackendKind::Paravirt => 1,
            BackendKind::Invlpgb => 2,
        }
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: BackendKind) -> bool {
        self.0 & (1 << Self::bit(kind)) != 0
    }

    /// The backends in both sets.
    pub const fn and(self, other: Backends) -> Backends {
        Backends(self.0 & other.0)
    }

    /// `native`, `native or pv`, ...
    fn names(self) -> alloc::string::String {
        let kinds = [
            BackendKind::NativeIpi,
            BackendKind::Paravirt,
            BackendKind::Invlpgb,
        ];
        let mut out = alloc::string::String::new();
        for k in kinds.into_iter().filter(|&k| self.contains(k)) {
            if !out.is_empty() {
                out.push_str(" or ");
            }
            out.push_str(k.name());
        }
        out
    }
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
    pub backend: BackendKind,
    /// The firmware that booted the kernel (None: the memory map did not tell).
    pub firmware: Option<Firmware>,
    /// The boot traces (`trace=tlb` switched the trace key on).
    pub traced: bool,
}

/// The constructors `kernel_test!(needs(..))` takes.
pub mod needs {
    use super::{Backends, Firmware, Needs, Suite};
    use mm::hw::BackendKind;

    /// No requirement.
    pub const NONE: Needs = Needs {
        cpus: 1,
        backends: Backends::ALL,
        per_backend: false,
        firmware: None,
        max_cpus: usize::MAX,
        about_scale: false,
        suite: Suite::Quick,
        traced: false,
    };

    /// At least `n` CPUs.
    pub const fn cpus(n: usize) -> Needs {
        Needs { cpus: n, ..NONE }
    }

    /// The native IPI backend (`tlb.backend=native`, the default without INVLPGB).
    pub const fn native() -> Needs {
        Needs {
            backends: Backends::only(BackendKind::NativeIpi),
            ..NONE
        }
    }

    /// The paravirt backend (`tlb.backend=pv`).
    pub const fn pv() -> Needs {
        Needs {
            backends: Backends::only(BackendKind::Paravirt),
            ..NONE
        }
    }

    /// The INVLPGB backend (`setcpuid=invlpgb`).
    pub const fn invlpgb() -> Needs {
        Needs {
            backends: Backends::only(BackendKind::Invlpgb),
            ..NONE
        }
    }

    /// A backend whose flush runs a handler on the CPUs it reaches (native or pv), so
    /// that lazy CPUs leave an address space whose tables were freed: the coherence
    /// oracle's rules. With INVLPGB nobody runs a handler, and lazy CPUs stay.
    pub const fn handler_flush() -> Needs {
        Needs {
            backends: Backends::only(BackendKind::NativeIpi).or(Backends::only(BackendKind::Paravirt)),
            ..NONE
        }
    }

    /// About the flush backend, under every backend: runs in each backend's
    /// configurations (`test.backend_tests=on`).
    pub const fn per_backend() -> Needs {
        Needs {
            per_backend: true,
            ..NONE
        }
    }

    /// Run with at most `n` CPUs (see [`Needs::max_cpus`]).
    pub const fn up_to_cpus(n: usize) -> Needs {
        Needs { max_cpus: n, ..NONE }
    }

    /// About scale: run in the largest configurations too (see [`Needs::about_scale`]).
    pub const fn scale() -> Needs {
        Needs {
            about_scale: true,
            ..NONE
        }
    }

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

    /// A boot with `trace=tlb` (the trace key on): tests that read the recorded events.
    pub const fn traced() -> Needs {
        Needs { traced: true, ..NONE }
    }

    /// In the soak suite (see [`Suite::Soak`]).
    pub const fn soak() -> Needs {
        Needs {
            suite: Suite::Soak,
            ..NONE
        }
    }

    impl Needs {
        /// The same, and at least `n` CPUs.
        pub const fn and_cpus(self, n: usize) -> Needs {
            Needs { cpus: n, ..self }
        }

        /// Both sets of needs (`soak().and(pv())`): the larger CPU count, the smaller
        /// CPU bound, the backends both allow, the firmware and suite of whichever side
        /// names one, about the backend or scale if either is. Needs that no machine can
        /// meet (no backend left, two firmwares, two suites, more CPUs than the bound)
        /// are refused: tests are statics, so that is a build error, not a test that
        /// silently runs nowhere.
        pub const fn and(self, other: Needs) -> Needs {
            assert!(
                self.backends.and(other.backends).0 != 0,
                "needs: no backend is left in both"
            );
            assert!(
                self.firmware.is_none() || other.firmware.is_none(),
                "needs: two firmware needs"
            );
            assert!(
                matches!(self.suite, Suite::Quick) || matches!(other.suite, Suite::Quick),
                "needs: two suites"
            );
            let needs = Needs {
                backends: self.backends.and(other.backends),
                per_backend: self.per_backend || other.per_backend,
                firmware: match other.firmware {
                    Some(f) => Some(f),
                    None => self.firmware,
                },
                cpus: if other.cpus > self.cpus {
                    other.cpus
                } else {
                    self.cpus
                },
                max_cpus: if other.max_cpus < self.max_cpus {
                    other.max_cpus
                } else {
                    self.max_cpus
                },
                about_scale: self.about_scale || other.about_scale,
                suite: match self.suite {
                    Suite::Quick => other.suite,
                    s => s,
                },
                traced: self.traced || other.traced,
            };
            assert!(needs.cpus <= needs.max_cpus, "needs: more CPUs than the bound");
            needs
        }
    }
}

impl Backends {
    /// The backends in either set.
    pub const fn or(self, other: Backends) -> Backends {
        Backends(self.0 | other.0)
    }
}

impl Needs {
    /// Whether the test is about the flush backend: limited to some backends, or
    /// declared [`needs::per_backend`] (what `test.backend_tests=on` selects).
    pub fn about_the_backend(&self) -> bool {
        self.per_backend || self.backends != Backends::ALL
    }

    /// Why this machine cannot run the test (None: it can).
    pub fn unmet(&self, m: &Machine) -> Option<alloc::string::String> {
        if m.cpus < self.cpus {
            return Some(alloc::format!("needs {} CPUs, has {}", self.cpus, m.cpus));
        }
        if m.cpus > self.max_cpus {
            return Some(alloc::format!(
                "run with at most {} CPUs (its time under TCG), has {}",
                self.max_cpus,
                m.cpus
            ));
        }
        if let Some(f) = self.firmware.filter(|&f| Some(f) != m.firmware) {
            return Some(alloc::format!(
                "needs {} firmware, booted by {}",
                f.name(),
                m.firmware.map_or("unknown firmware", Firmware::name)
            ));
        }
        if !self.backends.contains(m.backend) {
            return Some(alloc::format!(
                "needs the {} backend, booted with {}",
                self.backends.names(),
                m.backend.name()
            ));
        }
        if self.traced && !m.traced {
            return Some(alloc::string::String::from(
                "needs trace=tlb (the trace key is switched on at boot only)",
            ));
        }
        None
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
            #[$crate::registry::linkme::distributed_slice($crate::registry::KERNEL_TESTS)]
            #[linkme(crate = $crate::registry::linkme)]
            static TEST: $crate::registry::KernelTest = $crate::registry::KernelTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
                should_panic: $should_panic,
                panic_expected: $expected,
                needs: {
                    #[allow(unused_imports)]
                    use $crate::registry::needs::*;
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

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
