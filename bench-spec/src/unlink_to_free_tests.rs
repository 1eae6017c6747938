use super::*;

const TEXT: &str = "unlink-to-free: smp=8 backend=pv sync=targeted walkers=7 period=walks batches=20 median_cycles=41000 p99_cycles=90000 median_ns=15800";

#[test]
fn parses_and_prints_back_byte_for_byte() {
    let u = UnlinkToFree::parse(TEXT).unwrap();
    assert_eq!(
        u,
        UnlinkToFree {
            smp: 8,
            backend: Backend::Pv,
            sync: Sync::Targeted,
            walkers: 7,
            batches: 20,
            median_cycles: 41000,
            p99_cycles: 90000,
            median_ns: 15800,
        }
    );
    assert_eq!(u.to_string(), TEXT);
}

#[test]
fn the_period_follows_the_form() {
    let u = UnlinkToFree::parse(TEXT).unwrap();
    for &sync in Sync::FORMS {
        let v = UnlinkToFree { sync, ..u };
        let text = v.to_string();
        let want = if sync == Sync::Broadcast {
            "period=ticks"
        } else {
            "period=walks"
        };
        assert!(text.contains(want), "{text}");
        assert_eq!(UnlinkToFree::parse(&text), Ok(v));
    }
}

#[test]
fn malformed_lines_are_refused() {
    use ParseError::*;
    let cases: &[(String, ParseError)] = &[
        (TEXT.replace("period=walks", "period=ticks"), BadValue("period")),
        (
            TEXT.replace("sync=targeted", "sync=skip")
                .replace("walks", "ticks"),
            BadValue("sync"),
        ),
        (TEXT.replace("unlink-to-free:", "gatherOS"), NotALine),
        (TEXT.replace(" median_ns=15800", ""), Missing("median_ns")),
        (TEXT.replace("walkers=7", "walkers=all"), BadValue("walkers")),
    ];
    for (text, err) in cases {
        assert_eq!(UnlinkToFree::parse(text), Err(*err), "{text}");
    }
}
