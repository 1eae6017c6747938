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
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for &s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
        }
        assert_eq!(Scenario::ALL, [Scenario::A, Scenario::B, Scenario::C]);
        assert_eq!(Scenario::LIST, "A,B,C");
        for bad in ["", "a", "D", "AB"] {
            assert_eq!(Scenario::parse(bad), None, "{bad:?}");
        }
    }
}
