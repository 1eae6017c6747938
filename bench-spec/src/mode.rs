//! How remote TLBs are flushed during a run: the backend, which form of the table-free
//! sync ran (or that it was skipped), and which CPUs walk the address space meanwhile.

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
    /// The table-free sync (`sync=`): skipped, or the form that ran (`tlb.sync=`).
    pub enum Sync {
        /// Skipped: the flush IPI already stood in for it (the static key allows the
        /// skip, and it is skipped where the flush's receipt excuses it).
        Skip = "skip",
        /// An IPI to every other online CPU (Linux's sync); batched tables wait for a
        /// tick grace period. Earlier results call it `ipi`.
        Broadcast = "broadcast",
        /// IPIs only to the CPUs walking the address space that the flush did not
        /// interrupt after the unlink; batched tables wait for a walk period.
        Targeted = "targeted",
        /// No IPI: waits for the walks of the address space open at the unlink to end;
        /// batched tables wait for a walk period.
        Wait = "wait",
    }
}

impl Sync {
    /// The sync forms (every value but [`Sync::Skip`]), in the order they are run.
    pub const FORMS: &'static [Sync] = &[Sync::Broadcast, Sync::Targeted, Sync::Wait];

    /// The value a result written before the forms existed means: `ipi` (sent) is
    /// `broadcast`, the only form there was; every current name means itself.
    pub fn parse_legacy(word: &str) -> Option<Sync> {
        match word {
            "ipi" => Some(Sync::Broadcast),
            w => Sync::parse(w),
        }
    }
}

named! {
    /// Which of the other CPUs run lock-free walks of the address space throughout the
    /// operation (`bench.walkers=` / `--walkers` words; the line's `walkers=` is their
    /// count). Walkers are scenario A's tasks walking instead of halting: in B and C the
    /// other CPUs do not run the address space, so those scenarios have none.
    pub enum Walkers {
        /// None: scenario A's tasks halt (or spin) as without walkers.
        None = "0",
        /// Every other online CPU.
        All = "all",
    }
}

#[cfg(test)]
#[path = "mode_tests.rs"]
mod tests;

named! {
    /// What a CPU about to halt does with the address space it holds lazily
    /// (`idle.leave_mm=`, the line's `idle=`).
    pub enum Idle {
        /// Keeps it (Linux since 4.14): flushes that free tables interrupt it.
        Never = "never",
        /// Lets go of it once it has stayed idle through a whole tick.
        Deep = "deep",
        /// Lets go of it every time it halts.
        Always = "always",
    }
}
