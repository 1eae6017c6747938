//! The scenarios: what the other CPUs do with the address space while CPU 0 operates.

named! {
    /// A scenario (`scen=` in a line, `bench.scen=` / `--scenarios` words).
    pub enum Scenario {
        /// A task of the address space runs on every other CPU (not lazy): every flush
        /// must interrupt it.
        A = "A",
        /// The other CPUs are idle and never held the address space.
        B = "B",
        /// Just before each operation a task of it runs briefly on every other CPU and
        /// ends, so those CPUs hold it lazily.
        C = "C",
    }
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
