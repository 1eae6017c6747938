//! The one place that builds QEMU's command line, runs it and reads the kernel's verdict.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::image::Firmware;

/// The QEMU binary gatherOS runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// Most CPUs gatherOS asks QEMU's q35 machine for.
pub const MAX_SMP: u32 = 288;
/// Where distributions put a combined OVMF firmware file, in order of preference.
pub const OVMF_PATHS: &[&str] = &[
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/qemu/OVMF.fd",
    "/usr/share/OVMF/OVMF.fd",
    "/usr/share/edk2/ovmf/OVMF.fd",
];

/// Accelerator for QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation (the default: reliable everywhere, x2APIC since QEMU 8.1).
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

/// How to run QEMU.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Firmware (and so which image) to boot.
    pub firmware: Firmware,
    /// Number of CPUs.
    pub smp: u32,
    /// Memory size as QEMU takes it (`512M`, `2G`).
    pub mem: String,
    /// Accelerator.
    pub accel: Accel,
    /// QEMU's CPU model (`-cpu`); None: `max` under TCG, `host` under KVM.
    pub cpu: Option<String>,
    /// Kill QEMU and fail after this long.
    pub timeout: Duration,
    /// Kill QEMU and fail when it has printed no line for this long (progress-based: a
    /// slow boot on a busy host still prints; a hung one stops). None: only `timeout`.
    pub silence: Option<Duration>,
    /// Wait for a debugger on tcp::1234 before starting (`-s -S`).
    pub gdb: bool,
    /// Attach the image as a USB stick (`qemu-xhci` + `usb-storage`) instead of a disk.
    pub usb: bool,
    /// A Unix socket for the QEMU monitor (screenshots); None: no monitor.
    pub monitor: Option<PathBuf>,
    /// Boot a Linux kernel directly (`-kernel`, `-initrd`, `-append`) instead of a disk
    /// image: the benchmark's Linux guest.
    pub direct: Option<DirectBoot>,
    /// A second serial port written to this file (the Linux guest's kernel console, kept
    /// apart from its program's lines on the first). None: one serial port.
    pub console_log: Option<PathBuf>,
}

/// A kernel booted by QEMU itself, with its initramfs and command line.
#[derive(Debug, Clone)]
pub struct DirectBoot {
    /// bzImage.
    pub kernel: PathBuf,
    /// Initramfs (cpio).
    pub initrd: PathBuf,
    /// Kernel command line.
    pub append: String,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            firmware: Firmware::Bios,
            smp: 4,
            mem: "512M".into(),
            accel: Accel::Tcg,
            cpu: None,
            timeout: Duration::from_secs(120),
            silence: None,
            gdb: false,
            usb: false,
            monitor: None,
            direct: None,
            console_log: None,
        }
    }
}

/// The kernel's verdict, read from QEMU's exit status (`isa-debug-exit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `gatherOS: done (ok)`.
    Success,
    /// A failed test, a panic or an exception.
    Failure,
    /// The test harness asks to boot again and resume after a panicking test.
    Resume,
    /// QEMU ended without a verdict from the kernel (status, QEMU's stderr).
    NoVerdict(Option<i32>, String),
}

impl Verdict {
    /// Maps QEMU's exit status to a verdict.
    pub fn from_status(status: Option<i32>, stderr: String) -> Self {
        match status {
            Some(33) => Verdict::Success,
            Some(35) => Verdict::Failure,
            Some(37) => Verdict::Resume,
            other => Verdict::NoVerdict(other, stderr),
        }
    }
}

/// What one QEMU run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Every line the kernel printed on serial.
    pub lines: Vec<String>,
}

impl Outcome {
    /// What this boot produced, for a failure message: see [`describe`].
    pub fn describe(&self) -> String {
        describe(&format!("{:?}", self.verdict), &self.lines)
    }
}

/// Lines of a boot's output that a failure message quotes at most (its last ones).
pub const TAIL_LINES: usize = 25;

/// The last [`TAIL_LINES`] non-empty lines of `lines`, one per line, indented.
pub fn tail(lines: &[String]) -> String {
    let kept: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    let skipped = kept.len().saturating_sub(TAIL_LINES);
    let mut out = if skipped > 0 {
        format!("  ({skipped} earlier lines not shown)\n")
    } else {
        String::new()
    };
    for l in &kept[skipped..] {
        out += &format!("  | {l}\n");
    }
    if kept.is_empty() {
        out += "  (no output)\n";
    }
    out
}

/// What a boot produced, for a failure message: how it ended (`ended`: the verdict or
/// the runner's error), the lines that say something failed (panics, failed tests,
/// watchdog reports, the guest's failed configurations; at most [`TAIL_LINES`]), and
/// the last [`TAIL_LINES`] lines.
pub fn describe(ended: &str, lines: &[String]) -> String {
    let notable = |l: &&String| {
        l.starts_with("panic:")
            || l.starts_with("  reason:")
            || l.ends_with("... FAILED")
            || l.starts_with("watchdog:")
            || l.contains("config-failed")
            || l.contains("Kernel panic")
            || l.contains("error")
    };
    let failures: Vec<&String> = lines.iter().filter(notable).take(TAIL_LINES).collect();
    let mut out = format!("ended: {ended}; {} lines of output\n", lines.len());
    if !failures.is_empty() {
        out += "what failed:\n";
        for l in failures {
            out += &format!("  | {l}\n");
        }
    }
    out += "last lines:\n";
    out + &tail(lines)
}

/// The least memory the runner boots with (the bootloader, the kernel's heap floor and a
/// few CPUs); below it the kernel says how much it needs only if it gets that far.
pub const MIN_MEM: u128 = 32 << 20;
/// The most memory the runner asks QEMU for.
pub const MAX_MEM: u128 = 1 << 40;

/// Checks a memory size as QEMU's `-m` takes it.
pub fn parse_mem(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let suffix_len = s.len() - digits.len();
    if digits.is_empty() || suffix_len > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a memory size (examples: 512M, 2G)"));
    }
    // QEMU reads a bare number as MiB.
    let shift = match s[digits.len()..].to_ascii_uppercase().as_str() {
        "K" => 10,
        "G" => 30,
        "T" => 40,
        _ => 20,
    };
    let bytes = digits
        .parse::<u128>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .unwrap_or(u128::MAX);
    if !(MIN_MEM..=MAX_MEM).contains(&bytes) {
        return Err(format!(
            "memory size '{s}' is outside {}M to {}G",
            MIN_MEM >> 20,
            MAX_MEM >> 30
        ));
    }
    Ok(s.to_string())
}

/// Checks a CPU count against QEMU's q35 limit.
pub fn parse_smp(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|_| format!("'{s}' is not a CPU count"))?;
    if n == 0 || n > MAX_SMP {
        return Err(format!("CPU count must be between 1 and {MAX_SMP}, got {n}"));
    }
    Ok(n)
}

/// The CPU model to ask QEMU for under `accel` (`host` needs KVM: dropped under TCG,
/// saying so, so that a KVM fallback still boots).
pub fn usable_cpu(accel: Accel, asked: Option<String>) -> Option<String> {
    if accel == Accel::Tcg && asked.as_deref() == Some("host") {
        eprintln!("gatheros: --cpu host needs KVM; using max under TCG");
        return None;
    }
    asked
}

/// The accelerator to use for `asked` with CPU model `cpu` (None: the default): KVM
/// only if `/dev/kvm` runs a guest and QEMU can set up a vCPU with it (see
/// [`crate::kvm`]), else TCG, saying why in one line.
pub fn usable_accel(asked: Accel, cpu: Option<&str>) -> Accel {
    if asked != Accel::Kvm {
        return asked;
    }
    match crate::kvm::probe().and_then(|()| crate::kvm::qemu_probe(QEMU, cpu.unwrap_or("host"))) {
        Ok(()) => Accel::Kvm,
        Err(why) => {
            eprintln!("gatheros: --accel kvm: KVM cannot run a guest here ({why}); using TCG instead");
            Accel::Tcg
        }
    }
}

/// Checks a QEMU CPU model name (`max`, `Skylake-Server`, `EPYC-v4`, `qemu64,-x2apic`).
pub fn parse_cpu_model(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,=+".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a QEMU CPU model (letters, digits and -_.,=+; see `qemu-system-x86_64 -cpu help`)"
        ))
    }
}

/// The first OVMF firmware file present.
pub fn ovmf() -> Option<PathBuf> {
    OVMF_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Builds QEMU's arguments for booting `image`.
pub fn args(cfg: &QemuConfig, image: &Path) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &str| a.push(s.to_string());
    push("-machine");
    push("q35");
    push("-accel");
    match cfg.accel {
        Accel::Tcg => push("tcg"),
        Accel::Kvm => {
            if !Path::new("/dev/kvm").exists() {
                return Err("--accel kvm: /dev/kvm does not exist on this machine".into());
            }
            push("kvm");
        }
    }
    push("-cpu");
    push(
        cfg.cpu
            .as_deref()
            .unwrap_or(if cfg.accel == Accel::Kvm { "host" } else { "max" }),
    );
    push("-smp");
    push(&cfg.smp.to_string());
    push("-m");
    push(&cfg.mem);
    for s in ["-display", "none", "-serial", "stdio", "-no-reboot"] {
        push(s);
    }
    if let Some(log) = &cfg.console_log {
        push("-serial");
        push(&format!("file:{}", log.display()));
    }
    push("-monitor");
    match &cfg.monitor {
        Some(sock) => push(&format!("unix:{},server,nowait", sock.display())),
        None => push("none"),
    }
    push("-device");
    push("isa-debug-exit,iobase=0xf4,iosize=0x04");
    if let Some(d) = &cfg.direct {
        push("-kernel");
        push(&d.kernel.display().to_string());
        push("-initrd");
        push(&d.initrd.display().to_string());
        push("-append");
        push(&d.append);
    } else if cfg.usb {
        push("-device");
        push("qemu-xhci");
        push("-drive");
        push(&format!("if=none,id=stick,format=raw,file={}", image.display()));
        push("-device");
        push("usb-storage,drive=stick,bootindex=0");
    } else {
        push("-drive");
        push(&format!("format=raw,file={}", image.display()));
    }
    if cfg.firmware == Firmware::Uefi {
        let fw = ovmf().ok_or_else(|| {
            format!(
                "--uefi: no OVMF firmware found (looked in {})",
                OVMF_PATHS.join(", ")
            )
        })?;
        push("-bios");
        push(&fw.display().to_string());
    }
    if cfg.gdb {
        push("-s");
        push("-S");
    }
    Ok(a)
}

/// Boots `image` in QEMU, passes every serial line to `on_line`, and returns the verdict.
/// A run that exceeds the timeout, or prints nothing for `silence`, is killed and
/// reported as an error quoting the kernel's last lines.
pub fn run(cfg: &QemuConfig, image: &Path, on_line: impl FnMut(&str)) -> Result<Outcome, String> {
    let mut cmd = Command::new(QEMU);
    cmd.args(args(cfg, image)?);
    run_command(cmd, cfg, on_line)
}

/// Runs `cmd` as [`run`] runs QEMU (its stdout read as serial lines, bounded by
/// `cfg.timeout` and `cfg.silence`).
fn run_command(mut cmd: Command, cfg: &QemuConfig, mut on_line: impl FnMut(&str)) -> Result<Outcome, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "could not start {:?}: {e} (run `cargo run -- setup`)",
                cmd.get_program()
            )
        })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let deadline = start + cfg.timeout;
    let mut last_line_at = start;
    let mut lines: Vec<String> = Vec::new();
    loop {
        let now = Instant::now();
        let silent_until = cfg.silence.map_or(deadline, |s| (last_line_at + s).min(deadline));
        match rx.recv_timeout(silent_until.saturating_duration_since(now)) {
            Ok(line) => {
                last_line_at = Instant::now();
                on_line(&line);
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                let why = if Instant::now() >= deadline {
                    format!("QEMU timed out after {} s", cfg.timeout.as_secs())
                } else {
                    format!(
                        "QEMU printed nothing for {} s (after {} s)",
                        last_line_at.elapsed().as_secs(),
                        start.elapsed().as_secs()
                    )
                };
                let last = lines.iter().rev().find(|l| !l.trim().is_empty());
                return Err(format!(
                    "{why}; the kernel last printed: {}\n{}",
                    last.map_or("nothing".to_string(), |l| format!("{l:?}")),
                    describe("killed", &lines)
                ));
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        verdict: Verdict::from_status(status.code(), stderr.trim().to_string()),
        lines,
    })
}

#[cfg(test)]
#[path = "qemu_tests.rs"]
mod tests;
