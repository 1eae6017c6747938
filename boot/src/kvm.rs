//! Does KVM run a guest here? `/dev/kvm` can exist where nested virtualisation does not
//! work (a VM that advertises VMX without supporting it, a broken nested setup), and QEMU
//! then starts but the guest never runs. The probe asks KVM itself: it creates a VM with
//! one page of memory at the reset vector holding `hlt`, creates a vCPU and runs it; the
//! guest works if `KVM_RUN` returns with `KVM_EXIT_HLT`. It runs on its own thread and is
//! given [`PROBE_TIMEOUT`]: a hang is an answer too.
//!
//! Written by hand over `libc` (no KVM crate is a dependency): four ioctls and one
//! structure, with the numbers of `linux/kvm.h`.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// How long the probe guest may take to halt.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
const KVM_GET_VCPU_MMAP_SIZE: libc::c_ulong = 0xAE04;
const KVM_CREATE_VCPU: libc::c_ulong = 0xAE41;
const KVM_SET_USER_MEMORY_REGION: libc::c_ulong = 0x4020_AE46;
const KVM_RUN: libc::c_ulong = 0xAE80;
const KVM_EXIT_HLT: u32 = 5;

/// `struct kvm_userspace_memory_region`.
#[repr(C)]
struct MemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

fn ioctl(fd: i32, req: libc::c_ulong, arg: libc::c_ulong, what: &str) -> Result<i32, String> {
    // SAFETY: every request passed here takes an integer or a pointer to a live value of
    // the structure the request names.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    if r < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(r)
    }
}

fn run_guest() -> Result<(), String> {
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let version = ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")?;
    if version != 12 {
        return Err(format!("KVM API version {version}, expected 12"));
    }
    let vm = ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0, "KVM_CREATE_VM")?;
    // SAFETY: a new descriptor that nothing else owns.
    let vm = unsafe { OwnedFd::from_raw_fd(vm) };
    // One page at the top of the 4 GiB space: the reset vector (0xfffffff0) is in it.
    // SAFETY: an anonymous private mapping, checked below.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err("mmap of the guest page failed".into());
    }
    // SAFETY: the page was just mapped writable, 4096 bytes; 0xff0 is inside it.
    unsafe { *(mem as *mut u8).add(0xff0) = 0xf4 }; // hlt
    let region = MemoryRegion {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0xffff_f000,
        memory_size: 4096,
        userspace_addr: mem as u64,
    };
    let region_ptr = &region as *const MemoryRegion as libc::c_ulong;
    ioctl(
        vm.as_raw_fd(),
        KVM_SET_USER_MEMORY_REGION,
        region_ptr,
        "KVM_SET_USER_MEMORY_REGION",
    )?;
    let vcpu = ioctl(vm.as_raw_fd(), KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU")?;
    // SAFETY: a new descriptor that nothing else owns.
    let vcpu = unsafe { OwnedFd::from_raw_fd(vcpu) };
    let size = ioctl(
        kvm.as_raw_fd(),
        KVM_GET_VCPU_MMAP_SIZE,
        0,
        "KVM_GET_VCPU_MMAP_SIZE",
    )?;
    // SAFETY: mapping the vCPU's shared `struct kvm_run`, as KVM documents.
    let run = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            vcpu.as_raw_fd(),
            0,
        )
    };
    if run == libc::MAP_FAILED {
        return Err("mmap of the vCPU's kvm_run failed".into());
    }
    ioctl(vcpu.as_raw_fd(), KVM_RUN, 0, "KVM_RUN")?;
    // SAFETY: `exit_reason` is the u32 at offset 8 of `struct kvm_run`, mapped above.
    let reason = unsafe { *((run as *const u8).add(8) as *const u32) };
    if reason == KVM_EXIT_HLT {
        Ok(())
    } else {
        Err(format!(
            "the probe guest exited with reason {reason}, not HLT (5)"
        ))
    }
}

/// How long QEMU must stay up, paused, for its KVM set-up to count as working.
pub const QEMU_PROBE_WAIT: Duration = Duration::from_secs(2);

/// Whether QEMU (the binary `qemu`) can set up a KVM vCPU of `cpu` model: starts it paused (`-S`) and
/// gives it [`QEMU_PROBE_WAIT`]. A working `/dev/kvm` is not enough: on this project's
/// CI machines QEMU 10.0 aborts with `failed to set MSR 0x10a` (nested KVM that
/// refuses IA32_ARCH_CAPABILITIES) before the guest runs an instruction.
pub fn qemu_probe(qemu: &str, cpu: &str) -> Result<(), String> {
    let mut child = std::process::Command::new(qemu)
        .args([
            "-accel", "kvm", "-cpu", cpu, "-machine", "q35", "-display", "none",
        ])
        .args(["-nodefaults", "-S", "-monitor", "none", "-serial", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let start = std::time::Instant::now();
    while start.elapsed() < QEMU_PROBE_WAIT {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let first = err.lines().next().unwrap_or("no message").trim().to_string();
            return Err(format!(
                "QEMU with -accel kvm -cpu {cpu} exited ({status}) at once: {first}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// Whether KVM runs a guest on this machine: `Ok`, or why not, in one sentence.
pub fn probe() -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_guest());
    });
    match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the probe guest did not halt within {} s (nested KVM not working?)",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
#[path = "kvm_tests.rs"]
mod tests;
