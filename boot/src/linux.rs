//! A Linux guest measured the same way as gatherOS: the `linux-bench` program (built
//! statically for x86_64 Linux) as `/init` of an initramfs, booted with a Debian kernel
//! under the same QEMU settings (`-machine q35 -accel tcg -cpu max`, same memory and CPU
//! count). Its lines start with `linux` and carry gatherOS's fields.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the guest kernel, the program and the initramfs are kept between runs.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/linux-guest")
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: could not start {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The real kernel package a `linux-image-amd64` metapackage depends on.
pub fn image_package(depends: &str) -> Option<String> {
    depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|p| p.starts_with("linux-image-") && p != &"linux-image-amd64")
        .map(String::from)
}

/// A bzImage to boot: `explicit` if given, else one cached earlier, else Debian's
/// `linux-image-amd64` (bookworm-backports when the apt sources have it, as
/// `cargo run -- setup` arranges), downloaded with `apt-get download` and unpacked.
pub fn kernel(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return p
            .exists()
            .then(|| p.to_path_buf())
            .ok_or_else(|| format!("--linux-kernel {}: no such file", p.display()));
    }
    let dir = cache_dir();
    let cached = dir.join("vmlinuz");
    if cached.exists() {
        return Ok(cached);
    }
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!("bench: fetching a Debian kernel (apt-get download linux-image-amd64)");
    let backports = run(
        Command::new("apt-get").current_dir(&debs).args([
            "download",
            "-t",
            "bookworm-backports",
            "linux-image-amd64",
        ]),
        "apt-get download -t bookworm-backports linux-image-amd64",
    );
    if backports.is_err() {
        run(
            Command::new("apt-get")
                .current_dir(&debs)
                .args(["download", "linux-image-amd64"]),
            "apt-get download linux-image-amd64",
        )?;
    }
    let meta = newest_deb(&debs, "linux-image-amd64_")?;
    let depends = run(
        Command::new("dpkg-deb").args(["-f", &meta.display().to_string(), "Depends"]),
        "dpkg-deb -f Depends",
    )?;
    let pkg = image_package(&depends)
        .ok_or_else(|| format!("no kernel package in linux-image-amd64's Depends: {depends}"))?;
    run(
        Command::new("apt-get")
            .current_dir(&debs)
            .args(["download", &pkg]),
        &format!("apt-get download {pkg}"),
    )?;
    let deb = newest_deb(&debs, &format!("{pkg}_"))?;
    let root = dir.join("pkg");
    run(
        Command::new("dpkg-deb").args(["-x", &deb.display().to_string(), &root.display().to_string()]),
        "dpkg-deb -x",
    )?;
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("no vmlinuz in {}", boot.display()))?;
    std::fs::copy(&vmlinuz, &cached).map_err(|e| format!("copy {}: {e}", vmlinuz.display()))?;
    std::fs::write(dir.join("vmlinuz.version"), format!("{pkg}\n")).map_err(|e| e.to_string())?;
    // Only the bzImage is needed (everything the guest uses is built in).
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&debs);
    Ok(cached)
}

fn newest_deb(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with(prefix) && n.to_string_lossy().ends_with(".deb")
            })
        })
        .max()
        .ok_or_else(|| format!("no {prefix}*.deb in {}", dir.display()))
}

/// Builds `linux-bench` as a static x86_64 Linux executable (it is the guest's only
/// program: no C library in the initramfs) and returns its path.
pub fn program() -> Result<PathBuf, String> {
    let target_dir = cache_dir().join("build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run(
        Command::new(cargo)
            .current_dir(&ws)
            .args(["build", "--quiet", "--release", "-p", "linux-bench"])
            .args(["--target", "x86_64-unknown-linux-gnu", "--target-dir"])
            .arg(&target_dir)
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                "-C target-feature=+crt-static",
            ),
        "cargo build -p linux-bench (static)",
    )?;
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release/linux-bench"))
}

/// One entry of a `newc` cpio archive.
enum Entry<'a> {
    Dir(&'a str),
    CharDev(&'a str, u32, u32),
    File(&'a str, &'a [u8]),
    /// The end-of-archive entry.
    Trailer,
}

/// Writes a `newc` cpio archive, the initramfs format. Hand-written: the format is a
/// 110-byte ASCII header per entry plus padding, less code than adapting a crate's
/// entry model to device nodes.
fn cpio(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let pad4 = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(4), 0);
    for (ino, e) in entries.iter().chain([&Entry::Trailer]).enumerate() {
        let (name, mode, data, (maj, min)): (&str, u32, &[u8], (u32, u32)) = match e {
            Entry::Dir(n) => (n, 0o040755, &[], (0, 0)),
            Entry::CharDev(n, a, b) => (n, 0o020600, &[], (*a, *b)),
            Entry::File(n, d) => (n, 0o100755, d, (0, 0)),
            Entry::Trailer => ("TRAILER!!!", 0, &[], (0, 0)),
        };
        let header = format!(
            "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{maj:08x}{min:08x}{:08x}{:08x}",
            ino + 1,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    out
}

/// Writes the initramfs (`/init` = `program`, `/dev/console`, mount points) to `out`.
pub fn initramfs(program: &Path, out: &Path) -> Result<(), String> {
    let init = std::fs::read(program).map_err(|e| format!("{}: {e}", program.display()))?;
    let archive = cpio(&[
        Entry::Dir("dev"),
        Entry::CharDev("dev/console", 5, 1),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::File("init", &init),
    ]);
    std::fs::write(out, archive).map_err(|e| format!("{}: {e}", out.display()))
}

/// The kernel command line: serial console, 4-level paging like gatherOS, no
/// speculation mitigations (gatherOS has no page-table isolation either), and the
/// benchmark's options.
pub fn cmdline(iters: usize, ops: &str, scenarios: &str) -> String {
    format!(
        "console=ttyS0 quiet no5lvl mitigations=off panic=-1 lb.iters={iters} lb.ops={ops} lb.scen={scenarios}"
    )
}

#[cfg(test)]
mod tests {
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
}
