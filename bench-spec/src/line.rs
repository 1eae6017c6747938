//! The result line: one per configuration, printed by the kernel and `linux-bench`
//! and read by the host tool. [`Line`]'s `Display` is its only format and
//! [`Line::parse`] its only reader:
//!
//! `<os> smp=<n> scen=<A|B|C> pages=<P> tables=<free|keep> op=<op> backend=<backend>
//! sync=<skip|broadcast|targeted|wait> walkers=<k> ns_median=.. ns_p99=.. tlb_ipis_per_op=.. cal_ipis_per_op=..
//! sync_ipis_per_op=.. tsc_median=.. tsc_p99=.. iters=.. pt_freed_kb=.. apic=..
//! levels=.. [collapsed=<ok>/<tried>] [idle=<never|deep|always>] [cycle_ns_median=..]
//! [catchups_per_op=..] [idle_left_per_op=..]`
//!
//! The bracketed fields are optional ([`OPTIONAL_FIELDS`]), so lines written before them
//! (and `linux-bench`'s, which carry only `collapsed=`) still read.

use core::fmt::{self, Display};
use core::str::FromStr;

use crate::{Backend, Config, Idle, Sync};

/// The fields of a line after its first word, in order.
pub const FIELDS: [&str; 19] = [
    "smp",
    "scen",
    "pages",
    "tables",
    "op",
    "backend",
    "sync",
    "walkers",
    "ns_median",
    "ns_p99",
    "tlb_ipis_per_op",
    "cal_ipis_per_op",
    "sync_ipis_per_op",
    "tsc_median",
    "tsc_p99",
    "iters",
    "pt_freed_kb",
    "apic",
    "levels",
];

/// Fields a line may carry after [`FIELDS`], in order, each of them or not: `collapsed`
/// (Linux), then the idle policy in force and scenario C's whole cycle (gatherOS, issue
/// 23).
pub const OPTIONAL_FIELDS: [&str; 5] = [
    "collapsed",
    "idle",
    "cycle_ns_median",
    "catchups_per_op",
    "idle_left_per_op",
];

named! {
    /// The kernel that measured: the line's first word.
    pub enum Os {
        /// The gatherOS kernel (`bench=tlb`).
        GatherOS = "gatherOS",
        /// A Linux guest running `linux-bench`.
        Linux = "linux",
    }
}

named! {
    /// The local APIC's mode (`apic=`).
    pub enum Apic {
        /// x2APIC (MSR access).
        X2apic = "x2apic",
        /// xAPIC (memory-mapped).
        Xapic = "xapic",
    }
}

/// A count per operation (IPIs per op), written with two decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerOp(pub f64);

impl PerOp {
    /// `total` over `iters` operations.
    pub fn of(total: u64, iters: usize) -> Self {
        PerOp(total as f64 / iters as f64)
    }
}

impl Display for PerOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl FromStr for PerOp {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(PerOp(v)),
            _ => Err(()),
        }
    }
}

/// `collapsed=<ok>/<tried>`: calls of the operation that succeeded, and those made
/// (Linux, where a call can fail transiently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collapsed {
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls made.
    pub tried: u64,
}

impl Display for Collapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ok, self.tried)
    }
}

impl FromStr for Collapsed {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ok, tried) = s.split_once('/').ok_or(())?;
        let (ok, tried) = (ok.parse().map_err(|_| ())?, tried.parse().map_err(|_| ())?);
        if ok > tried {
            return Err(());
        }
        Ok(Collapsed { ok, tried })
    }
}

/// One configuration's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Who measured (the first word).
    pub os: Os,
    /// CPUs online.
    pub smp: usize,
    /// Operation, scenario, pages and tables.
    pub config: Config,
    /// The remote-flush backend.
    pub backend: Backend,
    /// The table-free sync: skipped, or the form that ran.
    pub sync: Sync,
    /// Other CPUs running lock-free walks of the address space throughout the operation.
    pub walkers: usize,
    /// Median time of the operation, ns.
    pub ns_median: u64,
    /// 99th percentile of the time, ns.
    pub ns_p99: u64,
    /// TLB-flush IPIs received per op, summed over CPUs.
    pub tlb_ipis_per_op: PerOp,
    /// Function-call interrupts (all cross calls) per op.
    pub cal_ipis_per_op: PerOp,
    /// Table-free sync IPIs per op.
    pub sync_ipis_per_op: PerOp,
    /// Median time, TSC cycles.
    pub tsc_median: u64,
    /// 99th percentile, TSC cycles.
    pub tsc_p99: u64,
    /// Measured iterations.
    pub iters: usize,
    /// Page-table memory freed per op, KiB.
    pub pt_freed_kb: u64,
    /// The APIC mode.
    pub apic: Apic,
    /// Page-table levels.
    pub levels: u32,
    /// Calls that succeeded and were made, where a line says so.
    pub collapsed: Option<Collapsed>,
    /// What an idle CPU did with the address space it held lazily (`idle.leave_mm=`),
    /// where a line says so (gatherOS lines since issue 23).
    pub idle: Option<Idle>,
    /// Scenario C: median time of the whole cycle, ns: waking the tasks of the address
    /// space on the other CPUs, their run, then the operation (the idle wait between,
    /// the same for every policy, left out).
    pub cycle_ns_median: Option<u64>,
    /// Scenario C: catch-up flushes per cycle (a CPU back on the address space that
    /// missed a flush while it held it lazily), summed over CPUs.
    pub catchups_per_op: Option<PerOp>,
    /// Scenario C: idle CPUs that let go of the address space per cycle (each costs a
    /// CR3 load when a task of it runs there again), summed over CPUs.
    pub idle_left_per_op: Option<PerOp>,
}

/// Why a text is not a result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The first word is not an [`Os`] (it is some other line).
    NotALine,
    /// The line ends before this field.
    Missing(&'static str),
    /// A word stands where this field should.
    Expected(&'static str),
    /// This field's value is not valid.
    BadValue(&'static str),
    /// Words follow the last field.
    Trailing,
}

impl Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotALine => f.write_str("not a benchmark line"),
            ParseError::Missing(k) => write!(f, "no {k}= field"),
            ParseError::Expected(k) => write!(f, "expected the {k}= field"),
            ParseError::BadValue(k) => write!(f, "bad value for {k}="),
            ParseError::Trailing => f.write_str("words after the last field"),
        }
    }
}

/// The value of `word` if it is `name=<value>`.
pub(crate) fn value_of<'a>(word: &'a str, name: &'static str) -> Result<&'a str, ParseError> {
    match word.split_once('=') {
        Some((k, v)) if k == name => Ok(v),
        _ => Err(ParseError::Expected(name)),
    }
}

/// The values of `names`, in order, from `words` (each `name=value`), with nothing after
/// them: the reader of the one-line results other than [`Line`].
pub(crate) fn read_fields<'a, const N: usize>(
    mut words: impl Iterator<Item = &'a str>,
    names: &[&'static str; N],
) -> Result<[&'a str; N], ParseError> {
    let mut v = [""; N];
    for (slot, &name) in v.iter_mut().zip(names.iter()) {
        *slot = value_of(words.next().ok_or(ParseError::Missing(name))?, name)?;
    }
    if words.next().is_some() {
        return Err(ParseError::Trailing);
    }
    Ok(v)
}

/// `value` read as field `name`.
pub(crate) fn field<T: FromStr>(name: &'static str, value: &str) -> Result<T, ParseError> {
    value.parse().map_err(|_| ParseError::BadValue(name))
}

impl Line {
    /// The values of [`FIELDS`], in order.
    pub fn values(&self) -> [&dyn Display; 19] {
        [
            &self.smp,
            &self.config.scen,
            &self.config.pages,
            &self.config.tables,
            &self.config.op,
            &self.backend,
            &self.sync,
            &self.walkers,
            &self.ns_median,
            &self.ns_p99,
            &self.tlb_ipis_per_op,
            &self.cal_ipis_per_op,
            &self.sync_ipis_per_op,
            &self.tsc_median,
            &self.tsc_p99,
            &self.iters,
            &self.pt_freed_kb,
            &self.apic,
            &self.levels,
        ]
    }

    /// Calls `f` with every field after the first word, as the line writes it: the
    /// [`FIELDS`] and then the optional ones present.
    pub fn for_each_field<E>(
        &self,
        mut f: impl FnMut(&'static str, &dyn Display) -> Result<(), E>,
    ) -> Result<(), E> {
        for (name, value) in FIELDS.iter().zip(self.values()) {
            f(name, value)?;
        }
        let optional: [Option<&dyn Display>; 5] = [
            self.collapsed.as_ref().map(|v| v as &dyn Display),
            self.idle.as_ref().map(|v| v as &dyn Display),
            self.cycle_ns_median.as_ref().map(|v| v as &dyn Display),
            self.catchups_per_op.as_ref().map(|v| v as &dyn Display),
            self.idle_left_per_op.as_ref().map(|v| v as &dyn Display),
        ];
        for (name, value) in OPTIONAL_FIELDS.iter().zip(optional) {
            if let Some(value) = value {
                f(name, value)?;
            }
        }
        Ok(())
    }

    /// Reads a line as [`Display`] writes it: the first word an [`Os`], then every one
    /// of [`FIELDS`] in order, each `name=value` with a valid value, then those of
    /// [`OPTIONAL_FIELDS`] it carries, in their order, then nothing (a word that is none
    /// of the optional fields still to come is [`ParseError::Trailing`]).
    pub fn parse(text: &str) -> Result<Line, ParseError> {
        let mut words = text.split_ascii_whitespace();
        let os = words.next().and_then(Os::parse).ok_or(ParseError::NotALine)?;
        let mut v = [""; 19];
        for (slot, &name) in v.iter_mut().zip(FIELDS.iter()) {
            *slot = value_of(words.next().ok_or(ParseError::Missing(name))?, name)?;
        }
        let mut optional: [Option<&str>; 5] = [None; 5];
        let mut next = 0;
        for word in words {
            let name = word.split_once('=').map_or(word, |(k, _)| k);
            let at = OPTIONAL_FIELDS[next..]
                .iter()
                .position(|&f| f == name)
                .ok_or(ParseError::Trailing)?;
            optional[next + at] = Some(value_of(word, OPTIONAL_FIELDS[next + at])?);
            next += at + 1;
        }
        let opt = |i: usize| optional[i].map(|v| (OPTIONAL_FIELDS[i], v));
        let [
            smp,
            scen,
            pages,
            tables,
            op,
            backend,
            sync,
            walkers,
            ns_median,
            ns_p99,
            tlb,
            cal,
            sync_ipis,
            tsc_median,
            tsc_p99,
            iters,
            pt_freed_kb,
            apic,
            levels,
        ] = v;
        Ok(Line {
            os,
            smp: field("smp", smp)?,
            config: Config {
                op: field("op", op)?,
                scen: field("scen", scen)?,
                pages: field("pages", pages)?,
                tables: field("tables", tables)?,
            },
            backend: field("backend", backend)?,
            sync: field("sync", sync)?,
            walkers: field("walkers", walkers)?,
            ns_median: field("ns_median", ns_median)?,
            ns_p99: field("ns_p99", ns_p99)?,
            tlb_ipis_per_op: field("tlb_ipis_per_op", tlb)?,
            cal_ipis_per_op: field("cal_ipis_per_op", cal)?,
            sync_ipis_per_op: field("sync_ipis_per_op", sync_ipis)?,
            tsc_median: field("tsc_median", tsc_median)?,
            tsc_p99: field("tsc_p99", tsc_p99)?,
            iters: field("iters", iters)?,
            pt_freed_kb: field("pt_freed_kb", pt_freed_kb)?,
            apic: field("apic", apic)?,
            levels: field("levels", levels)?,
            collapsed: opt(0).map(|(n, v)| field(n, v)).transpose()?,
            idle: opt(1).map(|(n, v)| field(n, v)).transpose()?,
            cycle_ns_median: opt(2).map(|(n, v)| field(n, v)).transpose()?,
            catchups_per_op: opt(3).map(|(n, v)| field(n, v)).transpose()?,
            idle_left_per_op: opt(4).map(|(n, v)| field(n, v)).transpose()?,
        })
    }
}

impl Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.os.name())?;
        self.for_each_field(|name, value| write!(f, " {name}={value}"))
    }
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
