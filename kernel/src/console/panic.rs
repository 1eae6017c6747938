//! The panic handler: name the CPU, the location and the message, then end the run.
//!
//! The first CPU to panic stops the others with an NMI (they halt in the NMI handler,
//! `arch::smp::halt_if_stopping`), so the report is not buried under their output.
//! Under QEMU the run then ends through `isa-debug-exit` with the failure verdict (or,
//! inside the test harness, with `Resume`); on real hardware the CPU halts with the
//! message on the console.

use arch::qemu_exit::{ExitCode, exit};
use core::panic::PanicInfo;
use core::sync::atomic::Ordering;

/// What the panic handler calls before the run ends, if a test run registered one: the
/// test harness records the running test's outcome and may end the boot there (then
/// never returns). A back-edge declared here, so that this handler does not import the
/// tests; implemented once, by `ktests::harness`. Called on the panicking CPU, the
/// first to panic only, with the other CPUs stopped, interrupts as the panic found them.
pub trait PanicObserver: Sync {
    /// Sees the panic `info` after its report is written.
    fn on_panic(&self, info: &PanicInfo);
}

/// The registered [`PanicObserver`] (none outside the test harness).
static OBSERVER: spin::Once<&'static dyn PanicObserver> = spin::Once::new();

/// Makes the panic handler call `observer`. Once.
pub fn set_observer(observer: &'static dyn PanicObserver) {
    OBSERVER.call_once(|| observer);
}

/// Writes one line to the serial port and the screen from the panic path (breaking locks
/// held by the context that panicked, if need be).
pub fn emit(args: core::fmt::Arguments) {
    arch::serial::write_fmt_panicking(format_args!("{args}\n"));
    crate::console::screen::write_fmt_panicking(args);
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let cpu = arch::percpu::cpu_index();
    let apic = arch::cpu::apic_id();
    if arch::cpu::PANICKING.swap(true, Ordering::SeqCst) {
        // Another CPU is already reporting (or this report panicked): stop here.
        arch::serial::write_fmt_panicking(format_args!(
            "panic: cpu={cpu} also panicked: {}\n",
            info.message()
        ));
        arch::cpu::halt_forever();
    }
    arch::smp::stop_other_cpus();
    let (file, line, col) = info
        .location()
        .map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    emit(format_args!(
        "panic: cpu={cpu} apic={apic} at {file}:{line}:{col}: {}",
        info.message()
    ));
    let teardown = arch::teardown_record::note();
    if teardown.in_teardown() {
        // Which release this CPU was in the middle of (a fault's report says it too).
        emit(format_args!("panic: during teardown: {teardown}"));
    }
    if let Some(observer) = OBSERVER.get() {
        observer.on_panic(info);
    }
    emit(format_args!("gatherOS: done (panic)"));
    exit(ExitCode::Failure)
}
