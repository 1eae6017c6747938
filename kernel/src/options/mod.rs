//! Boot options: `key=value` words read from the bootloader's ramdisk.
//!
//! The host runner writes the text of `--args` into a ramdisk file next to the kernel, so
//! the same mechanism works from QEMU and from a flashed USB stick, and options change
//! without rebuilding. Unknown keys and bad values are reported with one log line each
//! and the kernel goes on with defaults.
//!
//! Each key is one row of [`KEYS`]: its name, what it accepts (the text a refusal shows)
//! and the function that parses a value into [`BootOptions`].

extern crate alloc;
use alloc::vec::Vec;
use log::LevelFilter;

mod bench;
mod test;
mod value;

pub use bench::BenchOptions;
use bench_spec::{Idle, Op, Scenario, Sync, Walkers};
pub use test::TestOptions;
use test::parse_suites;
pub use value::OptionError;
use value::{bounded, choose, parse_bool, parse_list, parse_usize, push};

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

/// One key of the boot options: its name, the values it accepts and how it sets them.
/// [`KEYS`] holds every key; [`BootOptions::parse`] looks each word's key up there.
pub struct OptionKey {
    /// The key: the text before `=`.
    pub name: &'static str,
    /// The values it accepts, as a refusal names them (`expected ...`): `a|b|c` for a
    /// choice, else a description.
    pub accepts: &'static str,
    /// Parses a value into the options; `None` refuses it and leaves the options as they
    /// were.
    set: fn(&mut BootOptions, &'static str) -> Option<()>,
}

/// What `on|off` keys (and `cpuid.<feature>=`) accept.
const ON_OFF: &str = "on|off";
/// What counter keys accept.
const A_NUMBER: &str = "a number";

/// Every key [`BootOptions::parse`] knows (besides `cpuid.<feature>`): its name, what it
/// accepts and how it sets it. Also the key list of the fuzz tests and the README's table.
#[rustfmt::skip] // A table: one row per key.
pub const KEYS: &[OptionKey] = &[
    key("log", "error|warn|info|debug|trace", |o, v| v.parse().ok().map(|l| o.log_level = l)),
    key("apic", "xapic|x2apic",
        |o, v| choose(v, &[("xapic", true), ("x2apic", false)]).map(|x| o.force_xapic = x)),
    key("hold", "milliseconds, at most 60000", |o, v| bounded(v, (0, MAX_HOLD_MS)).map(|ms| o.hold_ms = ms)),
    key("watchdog.ms", "milliseconds, 100 to 3600000",
        |o, v| bounded(v, (MIN_WATCHDOG_MS, MAX_WATCHDOG_MS)).map(|ms| o.watchdog_ms = ms)),
    key("tlb.backend", "native|pv", |o, v| ["native", "pv"].contains(&v).then(|| o.tlb_backend = v)),
    key("tlb.table_sync", "decided|always|force-skip", table_sync),
    key("tlb.table_batch", "fail|ok", table_batch),
    key("tlb.sync", "broadcast|targeted|wait", |o, v| {
        mm::table_free::SyncForm::from_name(v).map(|f| o.sync_form = f)
    }),
    key("tlb.break", "none|stride|lazy|noflush|nomarker|late|early-tables", tlb_break),
    key("tlb.local_flush", "concurrent|serial",
        |o, v| choose(v, &[("concurrent", true), ("serial", false)]).map(|c| o.round.concurrent_local = c)),
    key("tlb.early_ack", ON_OFF, |o, v| parse_bool(v).map(|on| o.round.early_ack = on)),
    key("idle.leave_mm", "never|deep|always", |o, v| Idle::parse(v).map(|p| o.idle = Some(p))),
    key("trace", "tlb|off", |o, v| choose(v, &[("tlb", true), ("off", false)]).map(|t| o.trace = t)),
    key("clearcpuid", "a CPUID feature name", |o, v| push(&mut o.cpuid_overrides, (v, false))),
    key("setcpuid", "a CPUID feature name", |o, v| push(&mut o.cpuid_overrides, (v, true))),
    key("bench", "smp|tlb|shootdown",
        |o, v| ["smp", "tlb", "shootdown"].contains(&v).then(|| o.bench = Some(v))),
    key("bench.ops", Op::LIST, |o, v| parse_list(v, Op::parse).map(|ops| o.bench_tlb.ops = ops)),
    key("bench.scen", Scenario::LIST,
        |o, v| parse_list(v, Scenario::parse).map(|s| o.bench_tlb.scenarios = s)),
    key("bench.iters", A_NUMBER, |o, v| {
        parse_usize(v).map(|n| (o.bench_tlb.iters, o.bench_tlb.shootdown_iters) = (n.max(1), n.max(1)))
    }),
    key("bench.spin", "busy|halt",
        |o, v| choose(v, &[("busy", false), ("halt", true)]).map(|h| o.bench_tlb.spin_halts = h)),
    key("bench.syncs", "broadcast,targeted,wait (comma-separated)", |o, v| {
        parse_list(v, |w| Sync::parse(w).filter(|&s| s != Sync::Skip)).map(|s| o.bench_tlb.syncs = s)
    }),
    key("bench.walkers", "0,all (comma-separated)",
        |o, v| parse_list(v, Walkers::parse).map(|w| o.bench_tlb.walkers = w)),
    key("bench.idle", "never,deep,always (comma-separated)",
        |o, v| parse_list(v, Idle::parse).map(|p| o.bench_tlb.idles = p)),
    key("test", ON_OFF,
        |o, v| parse_bool(v).map(|on| o.test = on.then(|| o.test.take().unwrap_or_default()))),
    key("test.suites", "quick, watchdog, soak (comma-separated) or all",
        |o, v| parse_suites(v).map(|s| o.test_mut().suites = s)),
    key("test.backend_tests", ON_OFF, |o, v| parse_bool(v).map(|on| o.test_mut().backend_tests = on)),
    key("test.scale_tests", ON_OFF, |o, v| parse_bool(v).map(|on| o.test_mut().scale_tests = on)),
    key("test.filter", "a part of a test name", |o, v| push(&mut o.test_mut().filters, v)),
    key("test.skip", "a part of a test name", |o, v| push(&mut o.test_mut().skips, v)),
    key("test.exact", ON_OFF, |o, v| parse_bool(v).map(|on| o.test_mut().exact = on)),
    key("test.start", A_NUMBER, |o, v| parse_usize(v).map(|n| o.test_mut().start = n)),
    key("test.passed", A_NUMBER, |o, v| parse_usize(v).map(|n| o.test_mut().passed = n)),
    key("test.failed", A_NUMBER, |o, v| parse_usize(v).map(|n| o.test_mut().failed = n)),
    key("test.ignored", A_NUMBER, |o, v| parse_usize(v).map(|n| o.test_mut().ignored = n)),
    key("soak.tables", "a table count, 8 to 10000000",
        |o, v| bounded(v, (8, MAX_SOAK_TABLES)).map(|n| o.soak_tables = n)),
];

/// A row of [`KEYS`].
const fn key(
    name: &'static str,
    accepts: &'static str,
    set: fn(&mut BootOptions, &'static str) -> Option<()>,
) -> OptionKey {
    OptionKey { name, accepts, set }
}

/// `tlb.table_sync=`: the table freer's sync mode.
fn table_sync(o: &mut BootOptions, v: &'static str) -> Option<()> {
    use crate::tlb::faults::TableSync::{ForceSkip, Mode};
    use mm::table_free::SyncMode::{Always, Decided};
    o.table_sync = choose(
        v,
        &[
            ("decided", Mode(Decided)),
            ("always", Mode(Always)),
            ("force-skip", ForceSkip),
        ],
    )?;
    Some(())
}

/// `tlb.table_batch=`: whether every table-batch allocation fails (test-only).
fn table_batch(o: &mut BootOptions, v: &'static str) -> Option<()> {
    o.table_batch_fails = choose(v, &[("fail", true), ("ok", false)])?;
    Some(())
}

/// `tlb.break=`: the TLB mechanism broken on purpose (test-only).
fn tlb_break(o: &mut BootOptions, v: &'static str) -> Option<()> {
    o.tlb_break = crate::tlb::faults::Fault::parse_break(v)?;
    Some(())
}

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
    /// `bench=smp|tlb|shootdown`: run a benchmark after boot.
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
    /// `tlb.sync=broadcast|targeted|wait`: how a table-free sync reaches walkers.
    pub sync_form: mm::table_free::SyncForm,
    /// `tlb.break=none|stride|lazy|noflush|nomarker|late|early-tables`: test-only, breaks
    /// one TLB mechanism.
    pub tlb_break: Option<crate::tlb::faults::Fault>,
    /// `tlb.local_flush=concurrent|serial` and `tlb.early_ack=on|off`: how a shootdown
    /// round runs (`mm::round`; default concurrent, no early acknowledgement).
    pub round: mm::round::RoundMode,
    /// `trace=tlb`: the trace key is switched on at boot (events recorded per CPU; a
    /// plain boot records all of its run and prints the rings at the end, `bench=tlb`
    /// records the last measured op of each configuration).
    pub trace: bool,
    /// `idle.leave_mm=`: what a CPU about to halt does with the address space it holds
    /// lazily (`sched::idle`); None: not given, [`crate::sched::DEFAULT_IDLE`] (the test
    /// harness keeps `never` then, see `ktests::harness::run`).
    pub idle: Option<Idle>,
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
            sync_form: mm::table_free::SyncForm::Targeted,
            tlb_break: None,
            round: mm::round::RoundMode::CONCURRENT,
            trace: false,
            idle: None,
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
        if let Some(known) = KEYS.iter().find(|k| k.name == key) {
            return (known.set)(self, value).ok_or(OptionError::BadValue {
                key,
                value,
                expected: known.accepts,
            });
        }
        let feature = key.strip_prefix("cpuid.").ok_or(OptionError::UnknownKey(key))?;
        let on = parse_bool(value).ok_or(OptionError::BadValue {
            key,
            value,
            expected: ON_OFF,
        })?;
        self.cpuid_overrides.push((feature, on));
        Ok(())
    }
}
