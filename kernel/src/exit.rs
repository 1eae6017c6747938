//! How a run ends: the verdict through QEMU's exit device, after the `hold=` delay that
//! keeps the final screen readable on a monitor; on real hardware, every CPU halts.

use arch::qemu_exit::ExitCode;
use core::sync::atomic::{AtomicU64, Ordering};

/// `hold=<ms>`: how long the final screen stays up before the exit.
static HOLD_MS: AtomicU64 = AtomicU64::new(0);

/// Sets the `hold=` delay (boot CPU, from the options).
pub fn set_hold_ms(ms: u64) {
    HOLD_MS.store(ms, Ordering::Relaxed);
}

/// Ends the run with `code` after the `hold=` delay.
pub fn exit_held(code: ExitCode) -> ! {
    let ms = HOLD_MS.load(Ordering::Relaxed);
    if ms > 0 && arch::timer::tsc_hz() > 0 {
        arch::timer::delay_us(ms * 1000);
    }
    arch::qemu_exit::report(code);
    // Still running: real hardware without QEMU's exit device.
    arch::smp::halt_all_cpus()
}

/// Ends a successful run: the last line the host looks for, then the success verdict.
pub fn done_ok() -> ! {
    log::info!("gatherOS: done (ok)");
    exit_held(ExitCode::Success)
}
