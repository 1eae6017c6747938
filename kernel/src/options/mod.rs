//! Boot options: `key=value` words read from the bootloader's ramdisk.
//!
//! The host runner writes the text of `--args` into a ramdisk file next to the kernel, so
//! the same mechanism works from QEMU and from a flashed USB stick, and options change
//! without rebuilding. Unknown keys and bad values are reported with one log line each
//! and the kernel goes on with defaults.

extern crate alloc;
use alloc::vec::Vec;
use log::LevelFilter;

mod bench;
mod test;
mod value;

pub use bench::BenchOptions;
pub use test::TestOptions;
use test::parse_suites;
pub use value::OptionError;
use value::{bounded, parse_bool, parse_usize};

/// Longest `hold=` accepted (a minute).
pub const MAX_HOLD_MS: u64 = 60_000;
/// Shortest `watchdog.ms=` accepted: shorter bounds report healthy waits under TCG.
pub const MIN_WATCHDOG_MS: u64 = 100;
/// Longest `watchdog.ms=` accepted (an hour).
pub const MAX_WATCHDOG_MS: u64 = 3_600_000;
/// Most table frees `soak.tables=` accepts.
pub const MAX_SOAK_TABLES: u64 = 10_000_000;
/// Table frees per soak test unless `soak.tables=` says otherwise.
pub const DEFAULT_SOAK_TABLES: u64 = 100_000;

static BOOT_OPTIONS: spin::Once<BootOptions> = spin::Once::new();

/// Keeps the parsed options for the rest of the run (boot CPU, once) and returns them.
pub fn keep(opts: BootOptions) -> &'static BootOptions {
    BOOT_OPTIONS.call_once(|| opts)
}

/// The options this boot runs with (defaults before [`keep`]).
pub fn boot_options() -> &'static BootOptions {
    static DEFAULTS: spin::Once<BootOptions> = spin::Once::new();
    BOOT_OPTIONS
        .get()
        .unwrap_or_else(|| DEFAULTS.call_once(BootOptions::default))
}

/// Every key [`BootOptions::parse`] knows (besides `cpuid.<feature>`), for the fuzz test
/// and the README's table.
pub const KEYS: &[&str] = &[
    "log",
    "apic",
    "hold",
    "watchdog.ms",
    "tlb.backend",
    "tlb.table_sync",
    "tlb.table_batch",
    "tlb.break",
    "clearcpuid",
    "setcpuid",
    "bench",
    "bench.ops",
    "bench.scen",
    "bench.iters",
    "bench.spin",
    "test",
    "test.suites",
    "test.backend_tests",
    "test.scale_tests",
    "test.filter",
    "test.skip",
    "test.exact",
    "test.start",
    "test.passed",
    "test.failed",
    "test.ignored",
    "soak.tables",
];

/// All boot options, with their defaults.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// `log=error|warn|info|debug|trace`.
    pub log_level: LevelFilter,
    /// `test=on` enables the in-kernel test harness.
    pub test: Option<TestOptions>,
    /// `cpuid.<feature>=on|off`: (feature, value) overrides.
    pub cpuid_overrides: Vec<(&'static str, bool)>,
    /// `apic=xapic` forces xAPIC mode even where x2APIC exists.
    pub force_xapic: bool,
    /// `bench=smp|tlb`: run a benchmark after boot.
    pub bench: Option<&'static str>,
    /// `bench.ops=`, `bench.scen=`, `bench.iters=`, `bench.spin=`: what `bench=tlb` runs.
    pub bench_tlb: BenchOptions,
    /// `hold=<ms>`: wait this long before the final exit (e.g. for a screenshot).
    pub hold_ms: u64,
    /// `watchdog.ms=<n>`: the bound on a wait for other CPUs (default 10 s).
    pub watchdog_ms: u64,
    /// `soak.tables=<n>`: table frees per soak test (default 10^5).
    pub soak_tables: u64,
    /// `tlb.backend=native|pv`: the remote-flush backend.
    pub tlb_backend: &'static str,
    /// `tlb.table_sync=decided|always|force-skip` (force-skip is unsafe, for tests).
    pub table_sync: crate::tlb::faults::TableSync,
    /// `tlb.table_batch=fail`: every table-batch allocation fails (fallback path).
    pub table_batch_fails: bool,
    /// `tlb.break=none|stride|lazy|noflush`: test-only, breaks one TLB mechanism.
    pub tlb_break: Option<crate::tlb::faults::Fault>,
}

impl Default for BootOptions {
    fn default() -> Self {
        Self {
            log_level: LevelFilter::Info,
            test: None,
            cpuid_overrides: Vec::new(),
            force_xapic: false,
            bench: None,
            bench_tlb: BenchOptions::default(),
            hold_ms: 0,
            watchdog_ms: arch::watchdog::DEFAULT_BOUND_MS,
            soak_tables: DEFAULT_SOAK_TABLES,
            tlb_backend: "native",
            table_sync: crate::tlb::faults::TableSync::Mode(mm::table_free::SyncMode::Decided),
            table_batch_fails: false,
            tlb_break: None,
        }
    }
}

impl BootOptions {
    /// Parses the option text; returns the options and every problem found.
    pub fn parse(text: &'static str) -> (Self, Vec<OptionError>) {
        let mut opts = Self::default();
        let mut errors = Vec::new();
        for word in text.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, "on"));
            if let Err(e) = opts.apply(key, value) {
                errors.push(e);
            }
        }
        (opts, errors)
    }

    fn test_mut(&mut self) -> &mut TestOptions {
        self.test.get_or_insert_with(TestOptions::default)
    }

    fn apply(&mut self, key: &'static str, value: &'static str) -> Result<(), OptionError> {
        match key {
            "log" => {
                self.log_level = value.parse().map_err(|_| OptionError::BadValue {
                    key,
                    value,
                    expected: "error|warn|info|debug|trace",
                })?
            }
            "apic" => {
                self.force_xapic = match value {
                    "xapic" => true,
                    "x2apic" => false,
                    _ => {
                        return Err(OptionError::BadValue {
                            key,
                            value,
                            expected: "xapic|x2apic",
                        });
                    }
                }
            }
            "hold" => self.hold_ms = bounded(key, value, (0, MAX_HOLD_MS), "milliseconds, at most 60000")?,
            "soak.tables" => {
                self.soak_tables = bounded(key, value, (8, MAX_SOAK_TABLES), "a table count, 8 to 10000000")?
            }
            "watchdog.ms" => {
                self.watchdog_ms = bounded(
                    key,
                    value,
                    (MIN_WATCHDOG_MS, MAX_WATCHDOG_MS),
                    "milliseconds, 100 to 3600000",
                )?
            }
            "tlb.backend" => match value {
                "native" | "pv" => self.tlb_backend = value,
                _ => {
                    return Err(OptionError::BadValue {
                        key,
                        value,
                        expected: "native|pv",
                    });
                }
            },
            "tlb.table_sync" => {
                self.table_sync = match value {
                    "decided" => crate::tlb::faults::TableSync::Mode(mm::table_free::SyncMode::Decided),
                    "always" => crate::tlb::faults::TableSync::Mode(mm::table_free::SyncMode::Always),
                    "force-skip" => crate::tlb::faults::TableSync::ForceSkip,
                    _ => {
                        return Err(OptionError::BadValue {
                            key,
                            value,
                            expected: "decided|always|force-skip",
                        });
                    }
                }
            }
            "tlb.table_batch" => match value {
                "fail" => self.table_batch_fails = true,
                "ok" => self.table_batch_fails = false,
                _ => {
                    return Err(OptionError::BadValue {
                        key,
                        value,
                        expected: "fail|ok",
                    });
                }
            },
            "tlb.break" => {
                self.tlb_break =
                    crate::tlb::faults::Fault::parse_break(value).ok_or(OptionError::BadValue {
                        key,
                        value,
                        expected: "none|stride|lazy|noflush",
                    })?
            }
            "clearcpuid" | "setcpuid" => self.cpuid_overrides.push((value, key == "setcpuid")),
            "bench" => match value {
                "smp" | "tlb" => self.bench = Some(value),
                _ => {
                    return Err(OptionError::BadValue {
                        key,
                        value,
                        expected: "smp|tlb",
                    });
                }
            },
            "bench.ops" => {
                self.bench_tlb.ops = value
                    .split(',')
                    .map(bench_spec::Op::parse)
                    .collect::<Option<_>>()
                    .ok_or(OptionError::BadValue {
                        key,
                        value,
                        expected: bench_spec::Op::LIST,
                    })?
            }
            "bench.scen" => {
                self.bench_tlb.scenarios = value
                    .split(',')
                    .map(bench_spec::Scenario::parse)
                    .collect::<Option<_>>()
                    .ok_or(OptionError::BadValue {
                        key,
                        value,
                        expected: bench_spec::Scenario::LIST,
                    })?
            }
            "bench.iters" => self.bench_tlb.iters = parse_usize(key, value)?.max(1),
            "bench.spin" => match value {
                "busy" => self.bench_tlb.spin_halts = false,
                "halt" => self.bench_tlb.spin_halts = true,
                _ => {
                    return Err(OptionError::BadValue {
                        key,
                        value,
                        expected: "busy|halt",
                    });
                }
            },
            "test" => {
                if parse_bool(key, value)? {
                    self.test_mut();
                } else {
                    self.test = None;
                }
            }
            "test.suites" => self.test_mut().suites = parse_suites(key, value)?,
            "test.backend_tests" => self.test_mut().backend_tests = parse_bool(key, value)?,
            "test.scale_tests" => self.test_mut().scale_tests = parse_bool(key, value)?,
            "test.filter" => self.test_mut().filters.push(value),
            "test.skip" => self.test_mut().skips.push(value),
            "test.exact" => self.test_mut().exact = parse_bool(key, value)?,
            "test.start" => self.test_mut().start = parse_usize(key, value)?,
            "test.passed" => self.test_mut().passed = parse_usize(key, value)?,
            "test.failed" => self.test_mut().failed = parse_usize(key, value)?,
            "test.ignored" => self.test_mut().ignored = parse_usize(key, value)?,
            _ => match key.strip_prefix("cpuid.") {
                Some(feature) => self.cpuid_overrides.push((feature, parse_bool(key, value)?)),
                None => return Err(OptionError::UnknownKey(key)),
            },
        }
        Ok(())
    }
}
