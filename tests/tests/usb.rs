//! The images boot as a USB stick would: attached only as USB mass storage
//! (`qemu-xhci` + `usb-storage`, no IDE or virtio disk), under BIOS and UEFI.

use std::time::Duration;

use boot::image::{self, Firmware};
use boot::qemu::{self, QemuConfig, Verdict};

fn boots_from_usb(firmware: Firmware) {
    boot::install::ensure().expect("QEMU");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("stick.img");
    image::build(&image::kernel_elf(), firmware, "", &img).unwrap();
    let cfg = QemuConfig {
        firmware,
        smp: 2,
        usb: true,
        timeout: Duration::from_secs(180),
        ..Default::default()
    };
    let out = qemu::run(&cfg, &img, |_| {}).unwrap();
    assert_eq!(
        out.verdict,
        Verdict::Success,
        "last lines: {:?}",
        &out.lines[out.lines.len().saturating_sub(5)..]
    );
    assert!(out.lines.iter().any(|l| l == "gatherOS: done (ok)"));
    assert!(
        out.lines
            .iter()
            .any(|l| l.contains(&format!("booted via {firmware}")))
    );
}

#[test]
fn bios_image_boots_from_usb_storage() {
    boots_from_usb(Firmware::Bios);
}

#[test]
fn uefi_image_boots_from_usb_storage() {
    boots_from_usb(Firmware::Uefi);
}
