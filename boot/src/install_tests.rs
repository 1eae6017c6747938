use super::*;

#[test]
fn parses_qemu_versions() {
    assert_eq!(
        parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2)"),
        Some((10, 0))
    );
    assert_eq!(parse_qemu_version("QEMU emulator version 7.2.15"), Some((7, 2)));
    assert_eq!(parse_qemu_version("garbage"), None);
    assert!((7, 2) < MIN_QEMU && (10, 0) >= MIN_QEMU && (8, 1) >= MIN_QEMU);
}

#[test]
fn backports_follow_the_machines_mirror() {
    let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
    let s = derived_source(Some(deb822), None, "bookworm", "bookworm-backports").unwrap();
    assert!(s.contains("URIs: http://mirror.example/debian\n"));
    assert!(s.contains("Suites: bookworm-backports\n"));
    assert!(s.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"));
    let list =
        "deb http://mirror.example/debian bookworm main\ndeb http://sec.example bookworm-security main\n";
    assert_eq!(
        derived_source(None, Some(list), "bookworm", "bookworm-backports").unwrap(),
        "deb http://mirror.example/debian bookworm-backports main\n"
    );
    assert_eq!(
        derived_source(
            None,
            Some("deb http://x trixie main"),
            "bookworm",
            "bookworm-backports"
        ),
        None
    );
    assert_eq!(
        derived_source(None, Some(list), "bookworm", "trixie-backports").unwrap(),
        "deb http://mirror.example/debian trixie-backports main\n"
    );
    let s = derived_source(Some(deb822), None, "bookworm", "trixie-backports").unwrap();
    assert!(s.contains("Suites: trixie-backports\n") && s.contains("mirror.example/debian\n"));
}

#[test]
fn the_next_release_follows_this_one() {
    assert_eq!(next_release("bookworm"), Some("trixie"));
    assert_eq!(next_release("trixie"), Some("forky"));
    assert_eq!(next_release("jammy"), None);
}
