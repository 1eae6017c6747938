//! The COM1 serial port, gatherOS's primary console.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;

/// I/O port base of COM1.
const COM1_BASE: u16 = 0x3F8;

static COM1: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Initialises COM1 (115200 8N1). Safe to call more than once.
pub fn init() {
    // SAFETY: 0x3F8 is the standard COM1 base; nothing else in gatherOS uses these ports.
    let mut port = unsafe { SerialPort::new(COM1_BASE) };
    port.init();
    *COM1.lock() = Some(port);
}

/// Writes formatted text to COM1 under the port lock.
pub fn write_fmt(args: fmt::Arguments) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(port) = COM1.lock().as_mut() {
            let _ = port.write_fmt(args);
        }
    });
}

/// Writes formatted text even if another context holds the port lock (panic path only):
/// after a short wait the lock is broken, since a report interleaved with other output
/// beats no report at all.
pub fn write_fmt_panicking(args: fmt::Arguments) {
    for _ in 0..1_000_000 {
        if let Some(mut guard) = COM1.try_lock() {
            if let Some(port) = guard.as_mut() {
                let _ = port.write_fmt(args);
            }
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder is stuck (it panicked, or waits on this CPU); the port is a
    // stateless byte sink, so writing through it concurrently can only garble text.
    unsafe { COM1.force_unlock() };
    write_fmt(args);
}
