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
