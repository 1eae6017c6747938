//! `cargo run -- flash <device>`: writes a boot image to a USB stick, safely.
//!
//! Every refusal is decided by [`check`] from a [`DeviceInfo`] before anything is opened
//! for writing: not a whole-disk block device, mounted (itself or a partition), holding
//! `/`, not removable (unless `--force`), smaller than the image. The write goes in 1 MiB
//! chunks with a progress bar, is synced, read back and compared by SHA-256.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What gatherOS knows about a flash target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The path given.
    pub path: PathBuf,
    /// A block device at all.
    pub is_block: bool,
    /// A whole disk (not a partition).
    pub whole_disk: bool,
    /// The kernel reports it removable.
    pub removable: bool,
    /// Size in bytes.
    pub size: u64,
    /// Vendor and model, for the confirmation.
    pub model: String,
    /// Mount points of the device or its partitions.
    pub mounts: Vec<String>,
    /// It (or a partition of it) holds `/`.
    pub holds_root: bool,
}

/// Why a device is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a block device.
    NotBlockDevice,
    /// A partition, not a whole disk.
    Partition,
    /// The disk holding `/`.
    HoldsRoot,
    /// It or one of its partitions is mounted.
    Mounted(Vec<String>),
    /// Not removable and no `--force`.
    NotRemovable,
    /// Smaller than the image.
    TooSmall { device: u64, image: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotBlockDevice => write!(f, "not a block device"),
            Refusal::Partition => write!(
                f,
                "a partition; give the whole disk (e.g. /dev/sdb, not /dev/sdb1)"
            ),
            Refusal::HoldsRoot => write!(f, "it holds the running system's root file system"),
            Refusal::Mounted(m) => write!(f, "mounted at {} (unmount it first)", m.join(", ")),
            Refusal::NotRemovable => write!(f, "not a removable disk (pass --force if you really mean it)"),
            Refusal::TooSmall { device, image } => {
                write!(f, "{device} bytes, smaller than the image ({image} bytes)")
            }
        }
    }
}

/// Decides whether `dev` may receive an image of `image_size` bytes.
pub fn check(dev: &DeviceInfo, image_size: u64, force: bool) -> Result<(), Refusal> {
    if !dev.is_block {
        return Err(Refusal::NotBlockDevice);
    }
    if !dev.whole_disk {
        return Err(Refusal::Partition);
    }
    if dev.holds_root {
        return Err(Refusal::HoldsRoot);
    }
    if !dev.mounts.is_empty() {
        return Err(Refusal::Mounted(dev.mounts.clone()));
    }
    if !dev.removable && !force {
        return Err(Refusal::NotRemovable);
    }
    if dev.size < image_size {
        return Err(Refusal::TooSmall {
            device: dev.size,
            image: image_size,
        });
    }
    Ok(())
}

fn sys(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Gathers [`DeviceInfo`] from the file system, `/sys/block` and `/proc/mounts`.
pub fn describe(path: &Path) -> Result<DeviceInfo, String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut info = DeviceInfo {
        path: path.to_path_buf(),
        is_block: meta.file_type().is_block_device(),
        whole_disk: false,
        removable: false,
        size: 0,
        model: String::new(),
        mounts: Vec::new(),
        holds_root: false,
    };
    if !info.is_block {
        return Ok(info);
    }
    let sysdir = Path::new("/sys/block").join(&name);
    info.whole_disk = sysdir.exists();
    info.removable = sys(&sysdir.join("removable")).as_deref() == Some("1");
    info.size = sys(&sysdir.join("size"))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        * 512;
    info.model = [
        sys(&sysdir.join("device/vendor")),
        sys(&sysdir.join("device/model")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut w = line.split_whitespace();
        let (Some(dev), Some(at)) = (w.next(), w.next()) else {
            continue;
        };
        let Ok(dev) = std::fs::canonicalize(dev) else {
            continue;
        };
        let dname = dev
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if dname == name || (dname.starts_with(&name) && sysdir.join(&dname).exists()) {
            info.mounts.push(at.to_string());
            if at == "/" {
                info.holds_root = true;
            }
        }
    }
    Ok(info)
}

/// Writes `image` to `target` with a progress bar, syncs, reads back and compares
/// SHA-256 digests. Returns the digest.
pub fn write_and_verify(image: &Path, target: &Path) -> Result<String, String> {
    let data = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let want = Sha256::digest(&data);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let bar = indicatif::ProgressBar::new(data.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("writing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .map_err(|e| e.to_string())?,
    );
    for chunk in data.chunks(1 << 20) {
        out.write_all(chunk)
            .map_err(|e| format!("writing {}: {e}", target.display()))?;
        bar.inc(chunk.len() as u64);
    }
    out.sync_all()
        .map_err(|e| format!("syncing {}: {e}", target.display()))?;
    bar.finish();
    let mut back = vec![0u8; data.len()];
    let mut inp = std::fs::File::open(target).map_err(|e| format!("{}: {e}", target.display()))?;
    inp.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    inp.read_exact(&mut back)
        .map_err(|e| format!("reading back {}: {e}", target.display()))?;
    let got = Sha256::digest(&back);
    if got != want {
        return Err(format!("verification failed: wrote {want:x}, read back {got:x}"));
    }
    Ok(format!("{got:x}"))
}

#[cfg(test)]
#[path = "flash_tests.rs"]
mod tests;
