use super::*;

#[test]
fn finds_the_image_package_in_depends() {
    let d = "linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)";
    assert_eq!(
        image_package(d).as_deref(),
        Some("linux-image-6.12.95+deb12-amd64")
    );
    assert_eq!(image_package("libc6 (>= 2)"), None);
}

#[test]
fn newest_binary_package_by_version_generic_flavour_only() {
    let search = "linux-binary-unsigned-7.3.4+deb13-amd64 - Linux 7.3.4 for 64-bit PCs\n\
                  linux-binary-unsigned-7.10.1+deb13-cloud-amd64 - cloud\n\
                  linux-binary-unsigned-7.2.11+deb13-amd64 - Linux 7.2\n\
                  linux-binary-unsigned-7.3.4+deb13-rt-amd64 - rt\n";
    assert_eq!(
        newest_binary_package(search).as_deref(),
        Some("linux-binary-unsigned-7.3.4+deb13-amd64")
    );
    assert_eq!(newest_binary_package("linux-image-amd64 - meta"), None);
}

#[test]
fn finds_vmlinuz_in_either_package_layout() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(vmlinuz_in(d.path()), None);
    let m = d.path().join("usr/lib/modules/7.3.4+deb13-amd64");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("vmlinuz.unsigned"), b"x").unwrap();
    assert_eq!(vmlinuz_in(d.path()), Some(m.join("vmlinuz.unsigned")));
    std::fs::create_dir_all(d.path().join("boot")).unwrap();
    std::fs::write(d.path().join("boot/vmlinuz-6.12.95+deb12-amd64"), b"x").unwrap();
    assert!(
        vmlinuz_in(d.path())
            .unwrap()
            .ends_with("boot/vmlinuz-6.12.95+deb12-amd64")
    );
}

#[test]
fn cpio_entries_are_aligned_and_end_with_the_trailer() {
    let a = cpio(&[Entry::Dir("dev"), Entry::File("init", b"abc")]);
    assert!(a.starts_with(b"070701"));
    assert_eq!(a.len() % 4, 0);
    let text = String::from_utf8_lossy(&a);
    assert!(text.contains("init\0") && text.contains("abc") && text.contains("TRAILER!!!\0"));
    // A header is 110 bytes; the file size is its 7th field (offset 6 + 6 * 8).
    let header = text.find("init\0").unwrap() - 110;
    assert_eq!(&text[header + 54..header + 62], "00000003");
    assert_eq!(&text[header..header + 6], "070701");
}
