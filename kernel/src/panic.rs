//! The panic handler: name the CPU, the location and the message, then end the run.
//!
//! Under QEMU the run ends through `isa-debug-exit` with the failure verdict (or, inside
//! the test harness, with `Resume`); on real hardware the CPU halts with the message on
//! the console.

use arch::qemu_exit::{ExitCode, exit};
use core::panic::PanicInfo;
use core::sync::atomic::Ordering;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let cpu = arch::cpu::apic_id();
    if arch::cpu::PANICKING.swap(true, Ordering::SeqCst) {
        // A second panic (another CPU, or a panic while reporting): stay quiet and stop.
        arch::serial::write_fmt_panicking(format_args!("panic: cpu={cpu} also panicked: {}\n", info.message()));
        arch::cpu::halt_forever();
    }
    let (file, line, col) = info.location().map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    arch::serial::write_fmt_panicking(format_args!(
        "panic: cpu={cpu} at {file}:{line}:{col}: {}\n",
        info.message()
    ));
    // Let the test harness account for the test this panic ended; a later panic is fatal.
    arch::cpu::PANICKING.store(false, Ordering::SeqCst);
    crate::harness::on_panic();
    arch::cpu::PANICKING.store(true, Ordering::SeqCst);
    arch::serial::write_fmt_panicking(format_args!("gatherOS: done (panic)\n"));
    exit(ExitCode::Failure)
}
