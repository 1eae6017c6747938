use super::*;

#[test]
fn every_kind_round_trips_its_name_and_value() {
    for (i, &k) in Kind::ALL.iter().enumerate() {
        assert_eq!(k as usize, i);
        assert_eq!(Kind::from_u8(i as u8), Some(k));
        assert_eq!(Kind::from_name(k.name()), Some(k));
        assert!(k.spec().args.len() <= ARGS, "{k:?} has too many arguments");
    }
}

#[test]
fn begins_and_ends_come_in_pairs_of_one_slice() {
    for &k in Kind::ALL {
        let s = k.spec();
        if s.phase == Phase::Begin {
            let ends = Kind::ALL
                .iter()
                .filter(|e| e.spec().phase == Phase::End && e.spec().slice == s.slice)
                .count();
            assert_eq!(ends, 1, "slice {} of {k:?} has {ends} end kinds", s.slice);
        }
    }
}

#[test]
fn a_record_reads_its_arguments_by_name() {
    let r = Record {
        cpu: 1,
        tsc: 5,
        kind: Kind::FlushBegin,
        args: [3, 7, 0x1000, 0x2000, 0b1010, 0b100, 1, 0],
    };
    assert_eq!(r.arg("gen"), 7);
    assert!(r.has_cpu("targets", 3) && !r.has_cpu("targets", 2));
    assert_eq!(r.name_of("lazy_cpus"), "included");
    assert_eq!(r.name_of("backend"), "native");
    assert_eq!(index_of(SYNC_DECISIONS, "wait"), 3);
}
