use super::*;

const ROUND: &str = "shootdown: smp=4 pages=33 targets=3 mode=early cycles_median=90000 ratio_to_serial=0.900 ipis_per_round=3.00 early_acks_per_round=3.00 iters=200";
const TRIP: &str = "shootdown: smp=4 targets=3 mode=roundtrip cycles_median=40000 iters=200";

fn round() -> FlushRound {
    FlushRound {
        smp: 4,
        pages: 33,
        targets: 3,
        mode: ShootdownMode::Early,
        cycles_median: 90000,
        ratio_to_serial: 0.9,
        ipis_per_round: PerOp(3.0),
        early_acks_per_round: PerOp(3.0),
        iters: 200,
    }
}

#[test]
fn both_kinds_parse_and_print_back_byte_for_byte() {
    assert_eq!(Shootdown::parse(ROUND), Ok(Shootdown::Round(round())));
    assert_eq!(round().to_string(), ROUND);
    let trip = RoundTrip {
        smp: 4,
        targets: 3,
        cycles_median: 40000,
        iters: 200,
    };
    assert_eq!(Shootdown::parse(TRIP), Ok(Shootdown::RoundTrip(trip)));
    assert_eq!(Shootdown::RoundTrip(trip).to_string(), TRIP);
    assert_eq!(Shootdown::Round(round()).to_string(), ROUND);
}

#[test]
fn the_issue_s_words_lead_each_line() {
    assert!(
        ROUND.starts_with(
            "shootdown: smp=4 pages=33 targets=3 mode=early cycles_median=90000 ratio_to_serial="
        )
    );
    assert!(TRIP.starts_with("shootdown: smp=4 targets=3 mode=roundtrip cycles_median="));
    assert_eq!(ShootdownMode::LIST, "serial,concurrent,early");
}

#[test]
fn the_ratio_has_three_decimals_and_survives_a_zero() {
    assert_eq!(ratio(2, 3), 2.0 / 3.0);
    assert_eq!(ratio(5, 0), 0.0);
    let r = FlushRound {
        ratio_to_serial: ratio(2, 3),
        ..round()
    };
    assert!(r.to_string().contains(" ratio_to_serial=0.667 "), "{r}");
}

#[test]
fn the_count_check_wants_k_ipis_always_and_k_acks_in_early_only() {
    assert_eq!(round().check(), Ok(()));
    let serial = FlushRound {
        mode: ShootdownMode::Serial,
        early_acks_per_round: PerOp(0.0),
        ..round()
    };
    assert_eq!(serial.check(), Ok(()));
    let acked = FlushRound {
        early_acks_per_round: PerOp(3.0),
        ..serial
    };
    let e = acked.check().unwrap_err();
    assert_eq!(e.to_string(), "early_acks_per_round=3 but expected 0");
    let short = FlushRound {
        ipis_per_round: PerOp(2.5),
        ..round()
    };
    assert_eq!(
        short.check().unwrap_err().to_string(),
        "ipis_per_round=2.5 but expected 3"
    );
    let no_acks = FlushRound {
        early_acks_per_round: PerOp(0.0),
        ..round()
    };
    assert_eq!(no_acks.check().unwrap_err().what, "early_acks_per_round");
}

#[test]
fn malformed_lines_are_refused() {
    use ParseError::*;
    let cases: &[(String, ParseError)] = &[
        ("shootdown:".into(), Missing("smp")),
        (ROUND.replace("shootdown:", "shootdowns:"), NotALine),
        (ROUND.replace("mode=early", "mode=lazy"), BadValue("mode")),
        (ROUND.replace(" pages=33", ""), Expected("pages")),
        (
            ROUND.replace("ratio_to_serial=0.900", "ratio_to_serial=inf"),
            BadValue("ratio_to_serial"),
        ),
        (
            ROUND.replace("ipis_per_round=3.00", "ipis_per_round=-1"),
            BadValue("ipis_per_round"),
        ),
        (format!("{ROUND} extra=1"), Trailing),
        (TRIP.replace(" iters=200", ""), Missing("iters")),
        (format!("{TRIP} extra=1"), Trailing),
        (TRIP.replace("targets=3", "targets=three"), BadValue("targets")),
    ];
    for (text, err) in cases {
        assert_eq!(Shootdown::parse(text), Err(*err), "{text}");
    }
}
