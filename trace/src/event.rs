//! The kinds of trace event: one table says each kind's name, its place in a slice (begin,
//! end, or an instant) and its arguments, with how each prints. Everything that reads or
//! writes events (the kernel's dump, the host's listing, JSON and picture, the order
//! checks) goes through this table, so a kind is defined once.
//!
//! An event is a kind and up to [`ARGS`] words. CPU sets are stored as the low 64 bits of a
//! mask: a trace names CPUs 0..63 (the `trace` command runs at `-smp` of a few CPUs; on a
//! larger machine the higher CPUs are missing from the sets, not the events of those CPUs).

/// Most arguments an event carries.
pub const ARGS: usize = 8;

/// How an argument prints (and parses back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    /// Decimal.
    Dec,
    /// Hexadecimal with `0x` (addresses, frames).
    Hex,
    /// A set of CPUs: `0,2,3`, or `-` for none.
    Cpus,
    /// One of the names (the value is its index).
    Name(&'static [&'static str]),
    /// A `&'static str` of the kernel's, stored as pointer and length in this and the next
    /// argument; printed as the text (spaces as `_`). Kernel side only: a parsed line keeps
    /// the text in [`crate::line::Parsed::text`].
    Text,
}

/// Where an event sits in a slice of time on its CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opens the slice named by [`Spec::slice`].
    Begin,
    /// Closes the innermost open slice of that name.
    End,
    /// A moment.
    Instant,
}

/// One kind's description.
#[derive(Debug)]
pub struct Spec {
    /// The name in a line (`event=<name>`).
    pub name: &'static str,
    /// Its place in a slice.
    pub phase: Phase,
    /// The slice it opens or closes (its own name for instants).
    pub slice: &'static str,
    /// Argument names and formats, in order.
    pub args: &'static [(&'static str, Fmt)],
}

/// Flush backends, as [`Kind::FlushBegin`] names them (mm's `BackendKind::name`).
pub const BACKENDS: &[&str] = &["native", "pv", "invlpgb"];
/// What a flush handler did on its CPU ([`Kind::FlushRun`]).
pub const FLUSH_RESULTS: &[&str] = &["partial", "full", "left", "covered", "away"];
/// How a table-free sync was done ([`Kind::SyncBegin`]): skipped on the receipt of the
/// flush (the static key), an IPI to every other CPU, to the CPUs in a walk, a wait for
/// the walks to end, or a wait for a grace period (`table_sync_rcu`).
pub const SYNC_DECISIONS: &[&str] = &["skip", "broadcast", "targeted", "wait", "grace"];
/// Why an IPI was sent (arch's `IpiReason`, in its order).
pub const IPI_REASONS: &[&str] = &["call", "flush", "sync", "resched"];
/// What lazy CPUs got from a flush ([`Kind::FlushBegin`]).
pub const LAZY_POLICY: &[&str] = &["skipped", "included"];

macro_rules! kinds {
    ($( $(#[$doc:meta])* $kind:ident = $name:literal, $phase:ident, $slice:literal,
        [$( $arg:literal : $fmt:expr ),*]; )*) => {
        /// A kind of event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Kind {
            $( $(#[$doc])* $kind, )*
        }

        impl Kind {
            /// Every kind, in declaration order (its `u8` value is its index).
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)*];

            /// The kind's description.
            pub fn spec(self) -> &'static Spec {
                const SPECS: &[Spec] = &[$(Spec {
                    name: $name,
                    phase: Phase::$phase,
                    slice: $slice,
                    args: &[$(($arg, $fmt)),*],
                },)*];
                &SPECS[self as usize]
            }
        }
    };
}

use Fmt::{Cpus, Dec, Hex, Name, Text};

kinds! {
    /// `tlb_gather_mmu`: a gather on address space `mm` begins.
    GatherBegin = "gather_begin", Begin, "gather", ["mm": Dec];
    /// `tlb_finish_mmu`: the gather ends; the range it covered, the table levels it freed
    /// (bit n: a level-n table), whether it freed tables, whether it tore down all of `mm`.
    GatherEnd = "gather_end", End, "gather",
        ["mm": Dec, "start": Hex, "end": Hex, "levels": Hex, "tables": Dec, "fullmm": Dec];
    /// A page-table entry of `mm` cleared: the address it mapped, its level, and the table it
    /// pointed to (0 for a leaf).
    EntryClear = "entry_clear", Instant, "entry_clear",
        ["mm": Dec, "va": Hex, "level": Dec, "table": Hex];
    /// `flush_tlb_mm_range` asks: generation `gen` of `mm`, the range, the CPUs it
    /// targets, the other CPUs that held `mm` lazily and whether they were skipped or
    /// included, and the backend.
    FlushBegin = "flush_begin", Begin, "flush",
        ["mm": Dec, "gen": Dec, "start": Hex, "end": Hex, "targets": Cpus, "lazy": Cpus,
         "lazy_cpus": Name(LAZY_POLICY), "backend": Name(BACKENDS)];
    /// The flush returns: every target has run the handler (`interrupted`: those that took
    /// an IPI for it).
    FlushEnd = "flush_end", End, "flush", ["mm": Dec, "gen": Dec, "interrupted": Cpus];
    /// `flush_tlb_func` ran on this CPU for generation `gen` of `mm`, asked by CPU `from`:
    /// flushed the range, everything, left the address space (lazy), found it covered by
    /// an earlier flush, or had switched away.
    FlushRun = "flush_run", Instant, "flush_run",
        ["mm": Dec, "gen": Dec, "from": Dec, "result": Name(FLUSH_RESULTS)];
    /// The table-free sync for tables of `mm` is decided: skipped on the receipt of flush
    /// `gen`, or sent/waited for `cpus`.
    SyncBegin = "sync_begin", Begin, "sync",
        ["mm": Dec, "gen": Dec, "decision": Name(SYNC_DECISIONS), "cpus": Cpus];
    /// The sync is complete: every CPU it named is outside any walk that began before it.
    SyncEnd = "sync_end", End, "sync", ["mm": Dec, "decision": Name(SYNC_DECISIONS)];
    /// A grace period (or walk period, `walks`=1) `seq` starts, for queued table batches.
    GpStart = "gp_start", Instant, "gp_start", ["seq": Dec, "walks": Dec];
    /// Grace period `seq` has completed.
    GpDone = "gp_done", Instant, "gp_done", ["seq": Dec];
    /// A batch of `tables` unlinked tables is queued to wait for grace period `seq`.
    BatchQueued = "batch_queued", Instant, "batch_queued",
        ["batch": Hex, "tables": Dec, "seq": Dec];
    /// A batch's tables are freed (its grace period completed).
    BatchFreed = "batch_freed", Instant, "batch_freed", ["batch": Hex, "tables": Dec];
    /// A page table unlinked from `mm` goes back to the allocator: at once (`batch` 0), or
    /// with batch `batch` (`mm` 0: a batch page does not keep it).
    TableFreed = "table_freed", Instant, "table_freed",
        ["mm": Dec, "table": Hex, "batch": Hex];
    /// `switch_mm`: this CPU loads `to` (0: none before), now current to generation `gen`.
    SwitchMm = "switch_mm", Instant, "switch_mm", ["from": Dec, "to": Dec, "gen": Dec];
    /// `enter_lazy_tlb`: this CPU keeps `mm` loaded for a kernel thread.
    LazyEnter = "lazy_enter", Instant, "lazy_enter", ["mm": Dec, "gen": Dec];
    /// A CPU back from lazy on `mm` finds its TLB at generation `from_gen` < `to_gen` and
    /// flushes everything (`to_gen` equal to `from_gen`: it was current, no flush).
    LazyExit = "lazy_exit", Instant, "lazy_exit", ["mm": Dec, "from_gen": Dec, "to_gen": Dec];
    /// An IPI is sent for `reason` to `targets` (request `id`); the sender now waits.
    IpiSend = "ipi_send", Begin, "ipi_wait", ["reason": Name(IPI_REASONS), "id": Hex, "targets": Cpus];
    /// Every target of request `id` has run it.
    IpiAcked = "ipi_acked", End, "ipi_wait", ["reason": Name(IPI_REASONS), "id": Hex];
    /// This CPU starts running request `id` from CPU `from` (an IPI, or its own queue).
    IpiRun = "ipi_run", Begin, "ipi_handler",
        ["reason": Name(IPI_REASONS), "id": Hex, "from": Dec];
    /// This CPU has run request `id`.
    IpiRan = "ipi_ran", End, "ipi_handler", ["reason": Name(IPI_REASONS), "id": Hex];
    /// The watchdog reports a wait for `cpus` that is past its bound.
    Watchdog = "watchdog", Instant, "watchdog", ["what": Text, "len": Dec, "cpus": Cpus];
    /// This CPU acknowledges generation `gen` of `mm`, asked by CPU `from`, before it
    /// flushes (`tlb.early_ack=on`; mm's `flush.rs`, rule 8).
    EarlyAck = "early_ack", Instant, "early_ack", ["mm": Dec, "gen": Dec, "from": Dec];
}

impl Kind {
    /// The kind named `name` in a line.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.spec().name == name)
    }

    /// The kind whose `u8` value is `v`.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.get(v as usize).copied()
    }

    /// The name in a line.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// One argument value as an event site gives it.
pub type Arg = u64;

/// One recorded event: where, when, what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The CPU it happened on.
    pub cpu: u32,
    /// Its TSC stamp.
    pub tsc: u64,
    /// Its kind.
    pub kind: Kind,
    /// Its arguments (unused ones are 0).
    pub args: [Arg; ARGS],
}

impl Record {
    /// Argument `name` (0 if the kind has none of that name).
    pub fn arg(&self, name: &str) -> u64 {
        self.kind
            .spec()
            .args
            .iter()
            .position(|(n, _)| *n == name)
            .map_or(0, |i| self.args[i])
    }

    /// Whether CPU `cpu` is in the CPU-set argument `name`.
    pub fn has_cpu(&self, name: &str, cpu: usize) -> bool {
        cpu < 64 && self.arg(name) & (1 << cpu) != 0
    }

    /// The name a [`Fmt::Name`] argument holds (`?` if out of range or not a name).
    pub fn name_of(&self, name: &str) -> &'static str {
        let spec = self.kind.spec();
        match spec.args.iter().position(|(n, _)| *n == name) {
            Some(i) => match spec.args[i].1 {
                Fmt::Name(names) => names.get(self.args[i] as usize).copied().unwrap_or("?"),
                _ => "?",
            },
            None => "?",
        }
    }
}

/// The index of `name` in `names` (for event sites that pass a name).
pub const fn index_of(names: &[&str], name: &str) -> u64 {
    let mut i = 0;
    while i < names.len() {
        if str_eq(names[i], name) {
            return i as u64;
        }
        i += 1;
    }
    panic!("trace: no such name")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
