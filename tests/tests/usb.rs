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
        // Progress-based: a boot on a busy host is slow, not silent.
        timeout: Duration::from_secs(900),
        silence: Some(Duration::from_secs(120)),
        ..Default::default()
    };
    let out = qemu::run(&cfg, &img, |_| {}).unwrap_or_else(|e| panic!("{firmware} from USB: {e}"));
    let got = out.describe();
    assert_eq!(out.verdict, Verdict::Success, "{firmware} from USB:\n{got}");
    assert!(
        out.lines.iter().any(|l| l == "gatherOS: done (ok)"),
        "{firmware} from USB:\n{got}"
    );
    assert!(
        out.lines
            .iter()
            .any(|l| l.contains(&format!("booted via {firmware}"))),
        "{firmware} from USB:\n{got}"
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
