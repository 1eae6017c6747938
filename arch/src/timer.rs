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

/// Most TSC cycles a bracketed PIT read may take before it is retried: a read that the
/// host interrupted (a descheduled vCPU) does not say when the count was sampled.
const READ_BRACKET_MAX: u64 = 200_000;

/// Latches and reads PIT channel 2's count, bracketed by two TSC reads; returns the count
/// and the middle of the bracket, retrying reads whose bracket is too wide.
fn pit_read_at() -> (u16, u64) {
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    let mut best = (0u16, 0u64, u64::MAX);
    for _ in 0..1000 {
        let before = rdtsc();
        // SAFETY: PIT channel 2 is a legacy port nothing else uses; latch, then lo, hi.
        let count = unsafe {
            cmd.write(0b1000_0000); // latch channel 2
            let lo = ch2.read() as u16;
            let hi = ch2.read() as u16;
            lo | hi << 8
        };
        let after = rdtsc();
        let width = after - before;
        if width < best.2 {
            best = (count, before + width / 2, width);
        }
        if width <= READ_BRACKET_MAX {
            break;
        }
    }
    (best.0, best.1)
}

/// One calibration round: counts `pit_counts` PIT periods on channel 2 (mode 0, from
/// 0xffff down) and returns the TSC rate they imply, in Hz.
///
/// The rate comes from the counts that really elapsed between two bracketed reads of the
/// counter, not from waiting for the terminal count: the old way (poll OUT, take the
/// fastest of three) read 5.6 MHz instead of 2.6 GHz once under UEFI at -smp 64, when the
/// vCPU was descheduled between arming the PIT and starting the TSC, so the count had
/// already run out. With the counts read back a round can no longer come out too slow
/// (the reads are bracketed to within READ_BRACKET_MAX cycles); it can only come out too
/// fast, if the vCPU was descheduled for longer than the 16-bit counter's 55 ms wrap
/// (seen: 14.5 GHz from a median of five rounds on a loaded host). Hence the minimum.
fn pit_round(pit_counts: u16) -> u64 {
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: PIT channel 2 and the speaker gate are legacy ports nothing else uses.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // gate on, speaker off
        cmd.write(0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        ch2.write(0xff);
        ch2.write(0xff);
    }
    let (c0, t0) = pit_read_at();
    loop {
        let (c1, t1) = pit_read_at();
        let elapsed = c0.wrapping_sub(c1);
        if elapsed >= pit_counts && elapsed < 0x8000 {
            return (t1 - t0) * PIT_HZ / elapsed as u64;
        }
        core::hint::spin_loop();
    }
}

/// Measures the TSC rate without recording it: the slowest of seven 10 ms rounds (see
/// [`pit_round`]: a disturbed round only comes out too fast).
pub fn measure_tsc_hz() -> u64 {
    (0..7)
        .map(|_| pit_round((PIT_HZ / 100) as u16))
        .min()
        .unwrap_or(1)
}

/// Measures the TSC rate (boot CPU, once). Returns Hz.
pub fn calibrate_tsc() -> u64 {
    let hz = measure_tsc_hz();
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
///
/// As for the TSC: the counter is read bracketed by TSC reads at both ends of a 10 ms
/// round, and the rate is the ratio of the two clocks between the reads, so a vCPU
/// descheduled in the middle does not matter (it did: 283719 counts per ms instead of
/// 63000 when the old round read the counter after a delay that a descheduling had
/// stretched). The smallest of five rounds is kept (a wide bracket only adds counts).
pub fn calibrate_lapic() -> u32 {
    let hz = tsc_hz().max(1);
    let round = || {
        with_lapic(|l| {
            l.timer_start_countdown();
            let read = |l: &crate::apic::Lapic| {
                let mut best = (0u32, 0u64, u64::MAX);
                for _ in 0..1000 {
                    let before = rdtsc();
                    let c = l.timer_current();
                    let width = rdtsc() - before;
                    if width < best.2 {
                        best = (c, before + width / 2, width);
                    }
                    if width <= READ_BRACKET_MAX {
                        break;
                    }
                }
                (best.0, best.1)
            };
            let (c0, t0) = read(l);
            delay_us(10_000);
            let (c1, t1) = read(l);
            ((c0 - c1) as u128 * hz as u128 / 1000 / (t1 - t0).max(1) as u128) as u32
        })
    };
    let per_ms = (0..5).map(|_| round()).min().unwrap_or(1);
    LAPIC_TICKS_PER_MS.store(per_ms.max(1), Ordering::SeqCst);
    per_ms
}

/// Starts this CPU's periodic tick at [`TICK_HZ`].
pub fn start_tick() {
    let per_ms = LAPIC_TICKS_PER_MS.load(Ordering::SeqCst);
    with_lapic(|l| l.timer_periodic(per_ms * (1000 / TICK_HZ)));
}

/// The LAPIC timer interrupt handler: counts the tick, then the kernel's
/// [`KernelHooks::tick`](crate::hooks::KernelHooks::tick).
pub extern "x86-interrupt" fn tick_interrupt(_frame: InterruptStackFrame) {
    if let Some(me) = percpu::current() {
        me.ticks.fetch_add(1, Ordering::Relaxed);
    }
    with_lapic(|l| l.eoi());
    if let Some(kernel) = crate::hooks::kernel() {
        kernel.tick();
    }
}

/// Spurious-interrupt handler: no EOI (SDM 11.9).
pub extern "x86-interrupt" fn spurious_interrupt(_frame: InterruptStackFrame) {}

/// APIC error handler: logged, not fatal.
pub extern "x86-interrupt" fn error_interrupt(_frame: InterruptStackFrame) {
    log::warn!("apic: error interrupt on cpu {}", percpu::cpu_index());
    with_lapic(|l| l.eoi());
}
