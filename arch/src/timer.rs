//! Time: the TSC calibrated against the PIT, delays, and the per-CPU LAPIC tick.
//!
//! The PIT (channel 2, gate via port 0x61) is present on every PC and in QEMU, and needs
//! no ACPI; it counts at 1.193182 MHz. The TSC rate measured against it is the reference
//! for delays and for the LAPIC timer's calibration.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::structures::idt::InterruptStackFrame;

use crate::cpu::rdtsc;
use crate::percpu::{self, with_lapic};

const PIT_HZ: u64 = 1_193_182;
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static LAPIC_TICKS_PER_MS: AtomicU32 = AtomicU32::new(0);
/// Timer tick rate.
pub const TICK_HZ: u32 = 100;
static TICK_HOOK: spin::Once<fn()> = spin::Once::new();

/// Busy-waits `pit_counts` PIT periods on channel 2 and returns the TSC cycles it took.
fn pit_measure(pit_counts: u16) -> u64 {
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: PIT channel 2 and the speaker gate are legacy ports nothing else uses.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // gate on, speaker off
        cmd.write(0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        ch2.write(pit_counts as u8);
        ch2.write((pit_counts >> 8) as u8);
        // Restart the count by toggling the gate.
        let g = gate.read();
        gate.write(g & !0x01);
        gate.write(g | 0x01);
        let start = rdtsc();
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        rdtsc() - start
    }
}

/// Measures the TSC rate (boot CPU, once). Returns Hz.
pub fn calibrate_tsc() -> u64 {
    // 10 ms per round; the smallest of three rounds is the least disturbed.
    let counts = (PIT_HZ / 100) as u16;
    let cycles = (0..3).map(|_| pit_measure(counts)).min().unwrap_or(1);
    let hz = cycles * PIT_HZ / counts as u64;
    TSC_HZ.store(hz, Ordering::SeqCst);
    hz
}

/// TSC frequency (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts TSC cycles to nanoseconds.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    let hz = tsc_hz().max(1);
    (cycles as u128 * 1_000_000_000 / hz as u128) as u64
}

/// Spins for at least `us` microseconds.
pub fn delay_us(us: u64) {
    let end = rdtsc() + us * tsc_hz() / 1_000_000;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Measures the LAPIC timer rate (divide by 16) against the TSC (boot CPU, once).
pub fn calibrate_lapic() -> u32 {
    let per_ms = with_lapic(|l| {
        l.timer_start_countdown();
        let start = l.timer_current();
        delay_us(10_000);
        (start - l.timer_current()) / 10
    });
    LAPIC_TICKS_PER_MS.store(per_ms.max(1), Ordering::SeqCst);
    per_ms
}

/// Starts this CPU's periodic tick at [`TICK_HZ`].
pub fn start_tick() {
    let per_ms = LAPIC_TICKS_PER_MS.load(Ordering::SeqCst);
    with_lapic(|l| l.timer_periodic(per_ms * (1000 / TICK_HZ)));
}

/// Installs the function called on every tick (the scheduler's). First call wins.
pub fn set_tick_hook(hook: fn()) {
    TICK_HOOK.call_once(|| hook);
}

/// The LAPIC timer interrupt handler.
pub extern "x86-interrupt" fn tick_interrupt(_frame: InterruptStackFrame) {
    if let Some(me) = percpu::current() {
        me.ticks.fetch_add(1, Ordering::Relaxed);
    }
    with_lapic(|l| l.eoi());
    if let Some(hook) = TICK_HOOK.get() {
        hook();
    }
}

/// Spurious-interrupt handler: no EOI (SDM 11.9).
pub extern "x86-interrupt" fn spurious_interrupt(_frame: InterruptStackFrame) {}

/// APIC error handler: logged, not fatal.
pub extern "x86-interrupt" fn error_interrupt(_frame: InterruptStackFrame) {
    log::warn!("apic: error interrupt on cpu {}", percpu::cpu_index());
    with_lapic(|l| l.eoi());
}
