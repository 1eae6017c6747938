use super::*;

const TEXT: &str = "walk-cost: smp=4 backend=invlpgb marker_cycles=1030 plain_cycles=1000 ratio=1.030 samples=200 walks_per_sample=64";

#[test]
fn parses_and_prints_back_byte_for_byte() {
    let c = WalkCost::parse(TEXT).unwrap();
    assert_eq!(
        c,
        WalkCost {
            smp: 4,
            backend: Backend::Invlpgb,
            marker_cycles: 1030,
            plain_cycles: 1000,
            samples: 200,
            walks_per_sample: 64,
        }
    );
    assert!((c.ratio() - 1.03).abs() < 1e-9);
    assert_eq!(c.to_string(), TEXT);
}

#[test]
fn the_ratio_has_three_decimals_and_survives_a_zero() {
    let c = WalkCost::parse(TEXT).unwrap();
    let odd = WalkCost {
        marker_cycles: 2,
        plain_cycles: 3,
        ..c
    };
    assert!(odd.to_string().contains(" ratio=0.667 "), "{odd}");
    let zero = WalkCost { plain_cycles: 0, ..c };
    assert!(zero.to_string().contains(" ratio=0.000 "), "{zero}");
    assert_eq!(WalkCost::parse(&zero.to_string()), Ok(zero));
}

#[test]
fn malformed_lines_are_refused() {
    use ParseError::*;
    let cases: &[(String, ParseError)] = &[
        ("walk-cost:".into(), Missing("smp")),
        (TEXT.replace("walk-cost:", "walk-costs:"), NotALine),
        (TEXT.replace(" samples=200", ""), Expected("samples")),
        (TEXT.replace("ratio=1.030", "ratio=fast"), BadValue("ratio")),
        (
            TEXT.replace("backend=invlpgb", "backend=rar"),
            BadValue("backend"),
        ),
        (format!("{TEXT} extra=1"), Trailing),
    ];
    for (text, err) in cases {
        assert_eq!(WalkCost::parse(text), Err(*err), "{text}");
    }
}
