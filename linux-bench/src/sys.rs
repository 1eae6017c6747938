//! Thin wrappers over the Linux calls the benchmark needs (the `libc` crate's bindings;
//! std has no mmap, affinity or memfd). A failure is fatal and names the call, except
//! for the measured operations ([`try_unmap`], [`collapse`]), which return the errno so
//! that a transient one can be retried and counted.

use std::ffi::CString;
use std::sync::OnceLock;

/// The exit status of a configuration's process that has printed its own
/// `linux-bench: config-failed` line.
pub const REPORTED: i32 = 3;

/// The configuration this process measures (`op=.. scen=.. pages=.. tables=..`), once set.
static CONTEXT: OnceLock<String> = OnceLock::new();

/// Names the configuration this process measures: from now on a failure is reported as
/// that configuration's (`linux-bench: config-failed ...`) and ends only this process.
pub fn set_context(config: String) {
    let _ = CONTEXT.set(config);
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Whether `errno` may go away if the call is made again (EAGAIN, EBUSY, EINTR).
pub fn is_transient(errno: i32) -> bool {
    matches!(errno, libc::EAGAIN | libc::EBUSY | libc::EINTR)
}

/// Reports that the configuration being measured failed with `errno` (`reason` says
/// where) and ends its process with [`REPORTED`]; outside a configuration, ends the
/// program as [`die`] does.
pub fn fail(errno: i32, reason: &str) -> ! {
    let err = std::io::Error::from_raw_os_error(errno);
    match CONTEXT.get() {
        Some(config) => {
            println!("linux-bench: config-failed {config} errno={errno} reason=\"{reason}: {err}\"");
            std::process::exit(REPORTED);
        }
        None => {
            eprintln!("linux-bench: error: {reason}: {err}");
            exit_qemu(false);
            std::process::exit(1);
        }
    }
}

/// Fails (see [`fail`]) with a message naming what failed and errno.
pub fn die(what: &str) -> ! {
    fail(errno(), what)
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write into it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        die(&format!("sched_setaffinity(cpu {cpu})"));
    }
}

/// Maps `len` bytes at exactly `addr` (fails rather than replacing a mapping).
pub fn map_at(addr: u64, len: u64, flags: i32, fd: i32) -> *mut u8 {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is
    // checked before use.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags | libc::MAP_FIXED_NOREPLACE,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as u64 != addr {
        die(&format!("mmap({addr:#x}, {len:#x})"));
    }
    p as *mut u8
}

/// An anonymous private mapping at `addr`.
pub fn map_anon(addr: u64, len: u64) -> *mut u8 {
    map_at(addr, len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
}

/// Unmaps `[addr, addr + len)`, returning errno on failure.
pub fn try_unmap(addr: u64, len: u64) -> Result<(), i32> {
    // SAFETY: the benchmark only unmaps regions it mapped itself and no longer uses.
    match unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

/// Unmaps `[addr, addr + len)`.
pub fn unmap(addr: u64, len: u64) {
    if let Err(e) = try_unmap(addr, len) {
        fail(e, &format!("munmap({addr:#x}, {len:#x})"));
    }
}

/// `madvise(MADV_COLLAPSE)`: the khugepaged collapse, synchronously (Linux 6.1+);
/// errno on failure (EAGAIN now and then on newer kernels).
pub fn collapse(addr: u64, len: u64) -> Result<(), i32> {
    const MADV_COLLAPSE: i32 = 25;
    // SAFETY: advice on our own mapping; it changes how it is mapped, not its contents.
    match unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, MADV_COLLAPSE) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

/// Writes one byte to each of `pages` pages from `addr` (faults them in).
pub fn touch(addr: u64, pages: u64) {
    for p in 0..pages {
        // SAFETY: the caller mapped these pages writable.
        unsafe { std::ptr::write_volatile((addr + p * 4096) as *mut u8, 1) };
    }
}

/// A hugetlb-backed memory file of `len` bytes (for shared PMD tables).
pub fn hugetlb_memfd(len: u64) -> i32 {
    let name = CString::new("linux-bench-shared").expect("no NUL");
    // SAFETY: a valid C string; the fd is checked.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_HUGETLB) };
    // SAFETY: our own fd.
    if fd < 0 || unsafe { libc::ftruncate(fd, len as i64) } != 0 {
        die("memfd_create(MFD_HUGETLB)/ftruncate (are huge pages reserved?)");
    }
    fd
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged on Linux (CR4.TSD clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes `value` to a sysfs/procfs file.
pub fn write_file(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        eprintln!("linux-bench: could not write {value:?} to {path}: {e}");
    }
}

/// Mounts a pseudo file system (as /init nothing is mounted yet).
pub fn mount(fstype: &str, target: &str) {
    let _ = std::fs::create_dir_all(target);
    let (src, fs, dir) = (
        CString::new(fstype).expect("no NUL"),
        CString::new(fstype).expect("no NUL"),
        CString::new(target).expect("no NUL"),
    );
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), dir.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        die(&format!("mount {fstype} on {target}"));
    }
}

/// The first serial port: the host reads this program's lines there, and only them
/// (the kernel's console is the second port, `console=ttyS1`).
const RESULTS_PORT: &str = "/dev/ttyS0";

/// As the guest's /init: makes stdout and stderr the results port ([`RESULTS_PORT`]),
/// so that kernel messages, which go to the console on the other port, cannot split a
/// result line (the kernel writes its console synchronously, in the middle of whatever
/// the port's transmit buffer holds). Keeps the console if the port cannot be opened.
pub fn results_to_own_port() {
    let path = CString::new(RESULTS_PORT).expect("no NUL");
    // SAFETY: a valid C string; the descriptor is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_NOCTTY) };
    if fd < 0 {
        eprintln!(
            "linux-bench: could not open {RESULTS_PORT} ({}); results on the console",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: dup2 onto our own standard descriptors; nothing was printed yet.
    unsafe {
        libc::dup2(fd, 1);
        libc::dup2(fd, 2);
        libc::close(fd);
    }
}

/// As the guest's /init: hands the verdict to QEMU's `isa-debug-exit` device (port
/// 0xf4, the port gatherOS uses, so the host reads both the same way), once the port
/// has sent everything printed, and waits to be stopped. QEMU (since 9.x) only requests
/// its shutdown on that write and lets the guest run on until its main loop acts, which
/// takes a while on a busy host: returning from here made `/init` exit, and the
/// kernel's "Attempted to kill init" panic reboot raced the verdict (seen under load).
/// Outside /init, does nothing.
pub fn exit_qemu(ok: bool) {
    if std::process::id() != 1 {
        return;
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: waits for the output queued on our own descriptors to be transmitted.
    unsafe {
        libc::tcdrain(1);
        libc::tcdrain(2);
    }
    // SAFETY: as root in the guest; access to one I/O port.
    if unsafe { libc::ioperm(0xf4, 4, 1) } != 0 {
        println!(
            "linux-bench: error: ioperm(0xf4): {} (cannot hand the verdict to QEMU)",
            std::io::Error::last_os_error()
        );
    } else {
        let code: u32 = if ok { 0x10 } else { 0x11 };
        // SAFETY: ioperm granted the port; writing it asks QEMU to end.
        unsafe { core::arch::asm!("out dx, eax", in("dx") 0xf4u16, in("eax") code) };
    }
    loop {
        // SAFETY: waits for a signal; QEMU stops the machine meanwhile.
        unsafe { libc::pause() };
    }
}
