//! BIOS and UEFI disk images of the kernel, with boot options baked in.
//!
//! Boot options travel in the bootloader's ramdisk: a small text file placed next to the
//! kernel in the image. The kernel reads it at boot, so options work the same from QEMU
//! and from a USB stick, and changing them needs no rebuild.

use std::fmt;
use std::path::{Path, PathBuf};

/// Firmware that boots the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS in QEMU).
    Bios,
    /// UEFI (OVMF in QEMU).
    Uefi,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

/// Path of the kernel ELF this tool was built with (an artifact dependency).
pub fn kernel_elf() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_FILE_KERNEL_kernel"))
}

/// Checks that `path` exists and is an ELF file; the error says what is wrong.
pub fn check_kernel(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("kernel {}: {e}", path.display()))?;
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(format!("kernel {}: not an ELF file", path.display()));
    }
    Ok(())
}

/// Builds a disk image of `kernel` for `firmware` with boot options `args` at `out`.
pub fn build(kernel: &Path, firmware: Firmware, args: &str, out: &Path) -> Result<(), String> {
    check_kernel(kernel)?;
    let ramdisk = out.with_extension("args");
    // Never empty: the bootloader's BIOS stage panics on a zero-length ramdisk.
    std::fs::write(&ramdisk, format!("{args}\n"))
        .map_err(|e| format!("writing boot options {}: {e}", ramdisk.display()))?;
    let mut config = bootloader::BootConfig::default();
    // The bootloader's own trace output would bury the kernel's log on the serial port.
    config.log_level = bootloader_boot_config::LevelFilter::Warn;
    let result = match firmware {
        Firmware::Bios => bootloader::BiosBoot::new(kernel)
            .set_ramdisk(&ramdisk)
            .set_boot_config(&config)
            .create_disk_image(out),
        Firmware::Uefi => bootloader::UefiBoot::new(kernel)
            .set_ramdisk(&ramdisk)
            .set_boot_config(&config)
            .create_disk_image(out),
    };
    result.map_err(|e| format!("building the {firmware} image {}: {e:#}", out.display()))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
