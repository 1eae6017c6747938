use super::*;

#[test]
fn names_round_trip_and_nothing_else_parses() {
    for &op in Op::ALL {
        assert_eq!(Op::parse(op.name()), Some(op));
    }
    let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.join(","), Op::LIST);
    assert_eq!(Op::LIST, "unmap,unmap-nobatch,collapse,unshare");
    for bad in ["", "Unmap", "unmap ", "share", "unmap-nobatch,"] {
        assert_eq!(Op::parse(bad), None, "{bad:?}");
    }
}
