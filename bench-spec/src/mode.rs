//! How remote TLBs are flushed during a run: the backend, and whether the table-free
//! sync IPI was sent.

named! {
    /// The remote-flush backend (`backend=`).
    pub enum Backend {
        /// IPIs to every target.
        Native = "native",
        /// Paravirt: preempted targets get a deferred flush, no interrupt.
        Pv = "pv",
        /// AMD INVLPGB + TLBSYNC: a hardware broadcast.
        Invlpgb = "invlpgb",
    }
}

named! {
    /// The table-free sync (`sync=`).
    pub enum Sync {
        /// Skipped: the flush IPI already stood in for it (the static key said so).
        Skip = "skip",
        /// Sent (forced, or the key could not skip it).
        Ipi = "ipi",
    }
}
