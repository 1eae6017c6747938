//! QEMU's `isa-debug-exit` device: how the kernel hands its verdict to the host.
//!
//! QEMU exits with status `(value << 1) | 1`. On real hardware the port write does nothing
//! and the caller halts instead, leaving the verdict on the console.

use x86_64::instructions::port::Port;

/// I/O port of the `isa-debug-exit` device (matches the runner's `iobase=0xf4`).
pub const EXIT_PORT: u16 = 0xf4;

/// Verdicts the kernel can report; the host maps QEMU's status back to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The kernel reached its end without error (QEMU status 33).
    Success = 0x10,
    /// A test failed, a panic or an unexpected exception (QEMU status 35).
    Failure = 0x11,
    /// In-kernel tests: a test panicked; boot again and resume after it (QEMU status 37).
    Resume = 0x12,
}

impl ExitCode {
    /// The exit status QEMU reports for this verdict.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }
}

/// Reports `code` to QEMU, which ends the run; returns on a machine without the device.
pub fn report(code: ExitCode) {
    let mut port = Port::<u32>::new(EXIT_PORT);
    // SAFETY: writing to the debug-exit port has no effect other than ending QEMU; on a
    // machine without the device, port 0xf4 is unassigned.
    unsafe { port.write(code as u32) };
}

/// Reports `code` to QEMU, then halts this CPU (real hardware, or QEMU without the device).
pub fn exit(code: ExitCode) -> ! {
    report(code);
    crate::cpu::halt_forever()
}

#[cfg(test)]
#[path = "qemu_exit_tests.rs"]
mod tests;
