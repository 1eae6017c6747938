use super::*;

#[test]
fn sync_names_and_forms() {
    assert_eq!(Sync::LIST, "skip,broadcast,targeted,wait");
    assert_eq!(Sync::FORMS, &Sync::ALL[1..]);
    assert!(!Sync::FORMS.contains(&Sync::Skip));
    for &s in Sync::ALL {
        assert_eq!(Sync::parse(s.name()), Some(s));
        assert_eq!(Sync::parse_legacy(s.name()), Some(s));
    }
    assert_eq!(Sync::parse("ipi"), None, "a current line says broadcast");
    assert_eq!(Sync::parse_legacy("ipi"), Some(Sync::Broadcast));
    assert_eq!(Sync::parse_legacy("Broadcast"), None);
}

#[test]
fn walker_words() {
    assert_eq!(Walkers::LIST, "0,all");
    assert_eq!(Walkers::parse("all"), Some(Walkers::All));
    assert_eq!(Walkers::parse("0"), Some(Walkers::None));
    assert_eq!(Walkers::parse("1"), None);
}
