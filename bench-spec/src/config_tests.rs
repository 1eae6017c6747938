use super::*;

#[test]
fn the_matrix() {
    let all: Vec<Config> = Op::ALL
        .iter()
        .flat_map(|&op| Scenario::ALL.iter().flat_map(move |&s| Config::matrix(op, s)))
        .collect();
    // Three unmap shapes twice, one collapse, one unshare; three scenarios.
    assert_eq!(all.len(), (3 + 3 + 1 + 1) * 3);
    assert_eq!(Config::count(Op::ALL, Scenario::ALL), all.len());
    assert_eq!(Config::count(&[Op::Unmap, Op::Unshare], &[Scenario::A]), 4);
    let keep = Config::matrix(Op::Unmap, Scenario::B).nth(2).unwrap();
    assert!(keep.keeps_table());
    assert_eq!(keep.to_string(), "op=unmap scen=B pages=510 tables=keep");
}
