//! Makes sure this machine can run gatherOS: QEMU >= 8.1 (x2APIC under TCG) and OVMF.
//!
//! On Debian/Ubuntu as root, missing pieces are installed with apt, printing each step;
//! on Debian bookworm (QEMU 7.2) `bookworm-backports` is added first, derived from the
//! machine's own apt sources so that whatever mirror it uses is kept (the same code
//! adds the next release's backports for `bench --linux-kernel newest`). Elsewhere the
//! error names the exact command to run.

use std::path::Path;
use std::process::Command;

use crate::qemu::{QEMU, ovmf};

/// Oldest QEMU whose TCG emulates x2APIC.
pub const MIN_QEMU: (u32, u32) = (8, 1);

/// Parses `QEMU emulator version X.Y.Z ...` into (X, Y).
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The installed QEMU's version, if any.
pub fn qemu_version() -> Option<(u32, u32)> {
    let out = Command::new(QEMU).arg("--version").output().ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// Debian releases in order, by codename (to find the one after this machine's).
pub const DEBIAN_RELEASES: &[&str] = &["buster", "bullseye", "bookworm", "trixie", "forky", "duke"];

/// The Debian release after `codename`, if known.
pub fn next_release(codename: &str) -> Option<&'static str> {
    let i = DEBIAN_RELEASES.iter().position(|r| *r == codename)?;
    DEBIAN_RELEASES.get(i + 1).copied()
}

/// Derives an apt source for `suite` from the machine's entry for suite `from` (a deb822
/// `.sources` file or a one-line `sources.list`), keeping its mirror, key and
/// components' first word (`main`). None if no entry for `from` exists.
pub fn derived_source(deb822: Option<&str>, list: Option<&str>, from: &str, suite: &str) -> Option<String> {
    if let Some(text) = deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let suites = field("Suites:").unwrap_or_default();
            if suites.split_whitespace().any(|s| s == from) {
                let uris = field("URIs:")?;
                let mut s = format!("Types: deb\nURIs: {uris}\nSuites: {suite}\nComponents: main\n");
                if let Some(key) = field("Signed-By:") {
                    s.push_str(&format!("Signed-By: {key}\n"));
                }
                return Some(s);
            }
        }
    }
    for line in list?.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == from)
            && words.first() == Some(&"deb")
        {
            let mut w = words.clone();
            w[i] = suite;
            return Some(format!("{}\n", w.join(" ")));
        }
    }
    None
}

/// Whether the apt sources already name `suite`.
fn has_suite(suite: &str) -> bool {
    let mentions = |t: String| t.split_whitespace().any(|w| w == suite);
    std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().ends_with(".list")
                || e.file_name().to_string_lossy().ends_with(".sources")
        })
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(mentions))
        || std::fs::read_to_string("/etc/apt/sources.list").is_ok_and(mentions)
}

/// Adds an apt source for `suite`, derived from the machine's entry for `from` (see
/// [`derived_source`]), unless the sources already name it; true if it was added (then
/// `apt-get update` is due). Needs root.
pub fn add_source(from: &str, suite: &str) -> Result<bool, String> {
    if has_suite(suite) {
        return Ok(false);
    }
    let deb822 = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").ok();
    let list = std::fs::read_to_string("/etc/apt/sources.list").ok();
    let source = derived_source(deb822.as_deref(), list.as_deref(), from, suite)
        .ok_or_else(|| format!("no {from} entry in the apt sources to derive {suite} from"))?;
    let ext = if source.starts_with("Types:") {
        "sources"
    } else {
        "list"
    };
    let path = format!("/etc/apt/sources.list.d/gatheros-{suite}.{ext}");
    println!("setup: adding {path}:\n{source}");
    std::fs::write(&path, source).map_err(|e| format!("writing {path}: {e}"))?;
    Ok(true)
}

/// Runs `cmd args` (printing it first, apt without questions); an error names the
/// command and its status.
pub fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    println!("setup: running {cmd} {}", args.join(" "));
    let status = Command::new(cmd)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("could not run {cmd}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd} {}` failed ({status})", args.join(" ")))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// This machine's release codename (`VERSION_CODENAME` of /etc/os-release).
pub fn debian_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
}

const MANUAL: &str = "install QEMU >= 8.1 and OVMF, e.g. on Debian bookworm as root: add \
bookworm-backports to the apt sources, then `apt-get update && apt-get install -t \
bookworm-backports qemu-system-x86 ovmf`";

/// Ensures QEMU >= 8.1 and OVMF are present, installing them where it can.
pub fn ensure() -> Result<(), String> {
    let good = |v: Option<(u32, u32)>| v.is_some_and(|v| v >= MIN_QEMU);
    if good(qemu_version()) && ovmf().is_some() {
        return Ok(());
    }
    let found = qemu_version().map_or("no QEMU".to_string(), |(a, b)| format!("QEMU {a}.{b}"));
    println!(
        "setup: found {found}, OVMF {}; need QEMU >= 8.1 and OVMF",
        if ovmf().is_some() { "present" } else { "missing" }
    );
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "setup: cannot install here (not root, or no apt-get): {MANUAL}"
        ));
    }
    let mut target: Vec<&str> = Vec::new();
    if debian_codename().as_deref() == Some("bookworm") {
        add_source("bookworm", "bookworm-backports").map_err(|e| format!("setup: {e}: {MANUAL}"))?;
        target = vec!["-t", "bookworm-backports"];
    }
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend(target);
    args.extend(["qemu-system-x86", "ovmf"]);
    run("apt-get", &args)?;
    if good(qemu_version()) && ovmf().is_some() {
        Ok(())
    } else {
        Err(format!(
            "setup: QEMU or OVMF still missing or too old after installing: {MANUAL}"
        ))
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
