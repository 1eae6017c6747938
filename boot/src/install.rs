//! Makes sure this machine can run gatherOS: QEMU >= 8.1 (x2APIC under TCG) and OVMF.
//!
//! On Debian/Ubuntu as root, missing pieces are installed with apt, printing each step;
//! on Debian bookworm (QEMU 7.2) `bookworm-backports` is added first, derived from the
//! machine's own apt sources so that whatever mirror it uses is kept. Elsewhere the
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

/// Derives a `bookworm-backports` apt source from a deb822 `.sources` file or a one-line
/// `sources.list`, keeping the machine's own mirror. None if no `bookworm` entry exists.
pub fn backports_source(deb822: Option<&str>, list: Option<&str>) -> Option<String> {
    if let Some(text) = deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let suites = field("Suites:").unwrap_or_default();
            if suites.split_whitespace().any(|s| s == "bookworm") {
                let uris = field("URIs:")?;
                let mut s =
                    format!("Types: deb\nURIs: {uris}\nSuites: bookworm-backports\nComponents: main\n");
                if let Some(key) = field("Signed-By:") {
                    s.push_str(&format!("Signed-By: {key}\n"));
                }
                return Some(s);
            }
        }
    }
    for line in list?.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "bookworm")
            && words.first() == Some(&"deb")
        {
            let mut w = words.clone();
            w[i] = "bookworm-backports";
            return Some(format!("{}\n", w.join(" ")));
        }
    }
    None
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
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

fn debian_codename() -> Option<String> {
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
        let already = std::fs::read_dir("/etc/apt/sources.list.d")
            .into_iter()
            .flatten()
            .flatten()
            .chain(std::iter::empty())
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("bookworm-backports")))
            || std::fs::read_to_string("/etc/apt/sources.list")
                .is_ok_and(|t| t.contains("bookworm-backports"));
        if !already {
            let deb822 = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").ok();
            let list = std::fs::read_to_string("/etc/apt/sources.list").ok();
            let source = backports_source(deb822.as_deref(), list.as_deref()).ok_or_else(|| {
                format!("setup: no bookworm entry in the apt sources to derive backports from: {MANUAL}")
            })?;
            let (path, body) = if source.starts_with("Types:") {
                ("/etc/apt/sources.list.d/gatheros-backports.sources", source)
            } else {
                ("/etc/apt/sources.list.d/gatheros-backports.list", source)
            };
            println!("setup: adding {path}:\n{body}");
            std::fs::write(path, body).map_err(|e| format!("setup: writing {path}: {e}"))?;
        }
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
mod tests {
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
        let s = backports_source(Some(deb822), None).unwrap();
        assert!(s.contains("URIs: http://mirror.example/debian\n"));
        assert!(s.contains("Suites: bookworm-backports\n"));
        assert!(s.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"));
        let list =
            "deb http://mirror.example/debian bookworm main\ndeb http://sec.example bookworm-security main\n";
        assert_eq!(
            backports_source(None, Some(list)).unwrap(),
            "deb http://mirror.example/debian bookworm-backports main\n"
        );
        assert_eq!(backports_source(None, Some("deb http://x trixie main")), None);
    }
}
