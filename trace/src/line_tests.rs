use super::*;
use alloc::format;

#[test]
fn a_line_parses_back_to_its_event() {
    let rec = Record {
        cpu: 3,
        tsc: 123456,
        kind: Kind::FlushBegin,
        args: [4, 9, 0x4000_0000, u64::MAX, 0b0110, 0, 1, 0],
    };
    let line = format!(
        "{}",
        EventLine(Args {
            rec: &rec,
            text: None
        })
    );
    assert_eq!(
        line,
        "trace-event: cpu=3 tsc=123456 event=flush_begin mm=4 gen=9 start=0x40000000 \
         end=0xffffffffffffffff targets=1,2 lazy=- lazy_cpus=included backend=native"
    );
    let p = parse(&format!("[noise] {line}")).expect("parses");
    assert_eq!((p.rec, p.text), (rec, None));
}

#[test]
fn a_text_argument_prints_as_text_and_comes_back_as_text() {
    let rec = Record {
        cpu: 0,
        tsc: 1,
        kind: Kind::Watchdog,
        args: [0xdead, 9, 0b10, 0, 0, 0, 0, 0],
    };
    let line = format!(
        "{}",
        EventLine(Args {
            rec: &rec,
            text: Some("flush ack")
        })
    );
    assert!(line.ends_with("event=watchdog what=flush_ack cpus=1"), "{line}");
    let p = parse(&line).unwrap();
    assert_eq!(p.text.as_deref(), Some("flush_ack"));
    assert_eq!(p.rec.arg("cpus"), 0b10);
}

#[test]
fn lines_that_are_not_events_do_not_parse() {
    assert_eq!(parse("trace-event: cpu=1 tsc=2 event=nonsense"), None);
    assert_eq!(parse("trace-event: cpu=1 tsc=2 event=gp_done"), None); // missing seq
    assert_eq!(parse("gatherOS smp=4"), None);
    assert_eq!(
        parse_lost("trace-lost: cpu=2 overwritten=7 torn=0"),
        Some((2, 7, 0))
    );
}
