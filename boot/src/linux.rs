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

/// A kernel to boot, named by a `--linux-kernel` word: `default`, `newest`, a Debian
/// kernel package (`.deb`) or a bzImage. Returns the bzImage and a name for the boot
/// labels (the package's name, or the file's).
pub fn kernel(spec: &str) -> Result<(PathBuf, String), String> {
    match spec {
        "default" => default_kernel(),
        "newest" => newest_kernel(),
        deb if deb.ends_with(".deb") => from_deb(Path::new(deb)),
        file => {
            let p = Path::new(file);
            if !p.is_file() {
                return Err(format!("--linux-kernel {file}: no such file"));
            }
            let name = p
                .file_name()
                .map_or(file.into(), |n| n.to_string_lossy().into_owned());
            Ok((p.to_path_buf(), name))
        }
    }
}

/// Where [`from_deb`] keeps the bzImage of package `pkg`.
fn cached_kernel(pkg: &str) -> PathBuf {
    cache_dir().join("kernels").join(pkg).join("vmlinuz")
}

/// The bzImage of a Debian kernel package: `boot/vmlinuz-*` (linux-image-*) or
/// `usr/lib/modules/*/vmlinuz*` (linux-binary-unsigned-*), unpacked once with
/// `dpkg-deb -x` and kept under target/linux-guest/kernels/<package>.
pub fn from_deb(deb: &Path) -> Result<(PathBuf, String), String> {
    if !deb.is_file() {
        return Err(format!("--linux-kernel {}: no such file", deb.display()));
    }
    let deb_s = deb.display().to_string();
    let pkg = run(
        Command::new("dpkg-deb").args(["-f", &deb_s, "Package"]),
        "dpkg-deb -f Package",
    )?
    .trim()
    .to_string();
    let cached = cached_kernel(&pkg);
    if cached.exists() {
        return Ok((cached, pkg));
    }
    let root = cache_dir().join("unpack");
    let _ = std::fs::remove_dir_all(&root);
    run(
        Command::new("dpkg-deb").args(["-x", &deb_s, &root.display().to_string()]),
        &format!("dpkg-deb -x {deb_s}"),
    )?;
    let found = vmlinuz_in(&root);
    let copied = found
        .ok_or_else(|| format!("{deb_s}: no boot/vmlinuz-* or usr/lib/modules/*/vmlinuz* in the package"))
        .and_then(|v| {
            let dir = cached.parent().expect("kernels/<pkg>");
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::copy(&v, &cached).map_err(|e| format!("copy {}: {e}", v.display()))
        });
    // Only the bzImage is needed (everything the guest uses is built in).
    let _ = std::fs::remove_dir_all(&root);
    copied.map(|_| (cached, pkg))
}

/// The kernel image in an unpacked package tree.
fn vmlinuz_in(root: &Path) -> Option<PathBuf> {
    let files = |dir: PathBuf| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
    };
    let named = |p: &PathBuf, prefix: &str| {
        p.is_file()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
    };
    files(root.join("boot"))
        .find(|p| named(p, "vmlinuz-"))
        .or_else(|| {
            files(root.join("usr/lib/modules"))
                .flat_map(files)
                .find(|p| named(p, "vmlinuz"))
        })
}

/// Downloads package `pkg` (optionally from `suite`) with `apt-get download` into
/// target/linux-guest/debs and returns the `.deb`.
fn download(pkg: &str, suite: Option<&str>) -> Result<PathBuf, String> {
    let debs = cache_dir().join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let mut args = vec!["download"];
    if let Some(s) = suite {
        args.extend(["-t", s]);
    }
    args.push(pkg);
    eprintln!("bench: fetching a Debian kernel (apt-get {})", args.join(" "));
    run(
        Command::new("apt-get").current_dir(&debs).args(&args),
        &format!("apt-get {}", args.join(" ")),
    )?;
    newest_deb(&debs, &format!("{pkg}_"))
}

/// The newest `<prefix>*.deb` in `dir`.
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

/// Debian's `linux-image-amd64` (bookworm-backports when the apt sources have it, as
/// `cargo run -- setup` arranges): the real package its metapackage depends on,
/// downloaded once with `apt-get download` and unpacked.
fn default_kernel() -> Result<(PathBuf, String), String> {
    let dir = cache_dir();
    let version = std::fs::read_to_string(dir.join("vmlinuz.version")).ok();
    if let Some(pkg) = version.as_deref().map(str::trim) {
        // Kept by an earlier run, in this layout or the one before (target/linux-guest/vmlinuz).
        for cached in [cached_kernel(pkg), dir.join("vmlinuz")] {
            if cached.exists() {
                return Ok((cached, pkg.to_string()));
            }
        }
    }
    let meta = download("linux-image-amd64", Some("bookworm-backports"))
        .or_else(|_| download("linux-image-amd64", None))?;
    let depends = run(
        Command::new("dpkg-deb").args(["-f", &meta.display().to_string(), "Depends"]),
        "dpkg-deb -f Depends",
    )?;
    let pkg = image_package(&depends)
        .ok_or_else(|| format!("no kernel package in linux-image-amd64's Depends: {depends}"))?;
    let deb = download(&pkg, None)?;
    let kernel = from_deb(&deb)?;
    std::fs::write(dir.join("vmlinuz.version"), format!("{pkg}\n")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(dir.join("debs"));
    Ok(kernel)
}

/// The newest `linux-binary-unsigned-<version>-amd64` in `apt-cache search` output
/// (generic flavour only: no `-cloud`, `-rt`), by version.
pub fn newest_binary_package(search: &str) -> Option<String> {
    let version = |name: &str| -> Option<Vec<u64>> {
        let v = name
            .strip_prefix("linux-binary-unsigned-")?
            .strip_suffix("-amd64")?;
        (!v.contains('-')).then(|| {
            v.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect()
        })
    };
    search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| Some((version(n)?, n)))
        .max()
        .map(|(_, n)| n.to_string())
}

/// The newest packaged kernel: the next Debian release's backports suite (derived from
/// this machine's apt sources, as `setup` adds bookworm-backports; added and
/// `apt-get update`d if missing, which needs root), its newest
/// `linux-binary-unsigned-*-amd64`, downloaded once and unpacked.
fn newest_kernel() -> Result<(PathBuf, String), String> {
    let this = crate::install::debian_codename()
        .ok_or("--linux-kernel newest: not a Debian machine (no VERSION_CODENAME in /etc/os-release)")?;
    let next = crate::install::next_release(&this)
        .ok_or_else(|| format!("--linux-kernel newest: no Debian release known after {this}"))?;
    let suite = format!("{next}-backports");
    let added = crate::install::add_source(&this, &suite)
        .map_err(|e| format!("--linux-kernel newest: {e} (as root, or add {suite} to the apt sources)"))?;
    if added {
        crate::install::run("apt-get", &["update", "-q"])?;
    }
    let search = run(
        Command::new("apt-cache").args(["search", "--names-only", "^linux-binary-unsigned-.*-amd64$"]),
        "apt-cache search linux-binary-unsigned",
    )?;
    let pkg = newest_binary_package(&search).ok_or_else(|| {
        format!("--linux-kernel newest: no linux-binary-unsigned-*-amd64 package in the apt lists ({suite}; run apt-get update?)")
    })?;
    let cached = cached_kernel(&pkg);
    if cached.exists() {
        return Ok((cached, pkg));
    }
    let deb = download(&pkg, Some(&suite))?;
    let kernel = from_deb(&deb)?;
    let _ = std::fs::remove_file(&deb);
    Ok(kernel)
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

/// Writes the initramfs (`/init` = `program`, `/dev/console`, `/dev/ttyS0` for its
/// results, mount points) to `out`.
pub fn initramfs(program: &Path, out: &Path) -> Result<(), String> {
    let init = std::fs::read(program).map_err(|e| format!("{}: {e}", program.display()))?;
    let archive = cpio(&[
        Entry::Dir("dev"),
        Entry::CharDev("dev/console", 5, 1),
        Entry::CharDev("dev/ttyS0", 4, 64),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::File("init", &init),
    ]);
    std::fs::write(out, archive).map_err(|e| format!("{}: {e}", out.display()))
}

/// The kernel command line: the console on the second serial port (the program's
/// results have the first to themselves, see [`CONSOLE_PORT`]), 4-level paging like
/// gatherOS, no speculation mitigations (gatherOS has no page-table isolation either),
/// no IO-APIC timer check, and the benchmark's options (more may follow, see
/// `--linux-args`).
///
/// `no_timer_check`: at boot Linux counts timer ticks over a 40 ms busy wait and, when
/// too few came, reroutes the timer through ever older paths and finally panics
/// ("IO-APIC and timer doesn't work"). Under TCG the ticks come from QEMU's main
/// thread, which a busy host starves: the check failed under load here (`..MP-BIOS bug:
/// 8254 timer not connected to IO-APIC` on the console), a verdict about the host, not
/// the guest.
pub fn cmdline(iters: usize, ops: &str, scenarios: &str) -> String {
    format!(
        "console={CONSOLE_PORT} quiet no5lvl mitigations=off no_timer_check panic=-1 lb.iters={iters} lb.ops={ops} lb.scen={scenarios}"
    )
}

/// The Linux guest's console: the second serial port, which the host writes to a file
/// ([`crate::qemu::QemuConfig::console_log`]); the first carries only the program's lines.
pub const CONSOLE_PORT: &str = "ttyS1";

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
