//! The kernel built without its `trace` feature (every `trace::event!` site compiled
//! out), for `bench --trace-cost`, which measures it against the kernel this tool was
//! built with (tracing compiled in, off: each site a 5-byte NOP).
//!
//! Why at run time, with cargo: the tool receives its kernel as an artifact dependency
//! (`boot/Cargo.toml`), and cargo unifies the features of one package in one build, so a
//! second dependency on `kernel` without `trace` would give the same kernel twice. So the
//! tool runs the cargo that built it (`CARGO`, as `cargo run` sets it, else the one of
//! its own build) on its own workspace, with the settings that build used: the
//! workspace root as the directory (so `.cargo/config.toml` and `rust-toolchain.toml`
//! apply: the same toolchain and `-Z` flags), the same profile (the workspace's per-package
//! `opt-level`s apply to both builds alike), and a target directory of its own
//! (`<target>/untraced`), so that neither build invalidates the other's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace this tool was built from.
pub fn workspace_root() -> PathBuf {
    let boot = Path::new(env!("CARGO_MANIFEST_DIR"));
    boot.parent().unwrap_or(boot).to_path_buf()
}

/// The target directory of the untraced build: `untraced` under this workspace's
/// (`CARGO_TARGET_DIR` if set, taken from where the tool runs, else `target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| std::path::absolute(&d).unwrap_or_else(|_| d.into()))
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("untraced")
}

/// The cargo command that builds the untraced kernel (not yet run).
pub fn command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "kernel", "--target", "x86_64-unknown-none"])
        .arg("--no-default-features")
        .arg("--target-dir")
        .arg(target_dir())
        // Diagnostics on stderr as usual; stdout carries the artifact messages.
        .arg("--message-format=json-render-diagnostics");
    // The profile the tool (and so its kernel artifact) was built with.
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    cmd
}

/// Builds the kernel without `trace` (cargo's progress on stderr) and returns its ELF.
pub fn kernel_elf() -> Result<PathBuf, String> {
    let mut cmd = command();
    let shown = format!("{cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo to build the untraced kernel ({shown}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the untraced kernel failed ({}): {shown}",
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let elf = executable(&stdout)
        .ok_or_else(|| format!("cargo named no kernel executable in its messages: {shown}"))?;
    crate::image::check_kernel(&elf)?;
    Ok(elf)
}

/// The kernel binary's path from cargo's JSON messages (`compiler-artifact`, target
/// `kernel` of kind `bin`, `executable`); None if none names it.
pub fn executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "kernel")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
}

#[cfg(test)]
#[path = "untraced_tests.rs"]
mod tests;
