//! The operations measured: each frees (or keeps) page tables in its own way.

named! {
    /// An operation of the benchmark (`op=` in a line, `bench.ops=` / `--ops` words).
    pub enum Op {
        /// Unmap a range through the table batch (tables freed after a grace period).
        Unmap = "unmap",
        /// Unmap with every table-batch allocation failing: tables are freed on the
        /// fallback path, at once, after the table-free sync.
        UnmapNobatch = "unmap-nobatch",
        /// Collapse a fully populated 2 MiB region into one huge mapping (its PTE table
        /// is freed).
        Collapse = "collapse",
        /// Unshare a PMD table shared with another address space.
        Unshare = "unshare",
    }
}

impl Op {
    /// Whether the operation is an unmap (with or without the table batch).
    pub const fn is_unmap(self) -> bool {
        match self {
            Op::Unmap | Op::UnmapNobatch => true,
            Op::Collapse | Op::Unshare => false,
        }
    }
}

#[cfg(test)]
#[path = "op_tests.rs"]
mod tests;
