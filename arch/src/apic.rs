//! The local APIC, in x2APIC or xAPIC mode, behind one type that owns the mode.
//!
//! x2APIC mode (MSR access, 32-bit APIC IDs) goes through the `x2apic` crate. xAPIC mode
//! (MMIO at 0xFEE0_0000, 8-bit IDs) is our own small register layer: the crate picks
//! x2APIC whenever CPUID reports it, so it cannot serve the `apic=xapic` boot option, and
//! its xAPIC path expects destinations pre-shifted; a dozen registers are simpler to own
//! than to work around. Every CPU runs the same mode, chosen once on the boot CPU.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use x2apic::lapic::{IpiAllShorthand, LocalApic, LocalApicBuilder, TimerDivide, TimerMode};
use x86_64::registers::model_specific::Msr;

/// Vector of the periodic LAPIC timer tick.
pub const TIMER_VECTOR: u8 = 0xEF;
/// Vector of cross-call IPIs (function calls, TLB flushes, table syncs).
pub const CALL_VECTOR: u8 = 0xF0;
/// Vector of reschedule IPIs.
pub const RESCHEDULE_VECTOR: u8 = 0xF1;
/// Vector of APIC error interrupts.
pub const ERROR_VECTOR: u8 = 0xFE;
/// Spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
/// Physical address of the xAPIC register page (architectural default).
pub const XAPIC_PHYS: u64 = 0xFEE0_0000;

/// How this machine's local APICs are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// MSR interface, 32-bit IDs.
    X2Apic,
    /// MMIO interface, 8-bit IDs.
    XApic,
}

impl ApicMode {
    /// Name used in log lines (`x2apic` / `xapic`).
    pub fn name(self) -> &'static str {
        match self {
            ApicMode::X2Apic => "x2apic",
            ApicMode::XApic => "xapic",
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(0);
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);

/// Fixes the mode for all CPUs (boot CPU, before any [`Lapic::init`]). `xapic_virt` is the
/// virtual address at which the xAPIC page is mapped (needed in xAPIC mode only).
pub fn set_mode(mode: ApicMode, xapic_virt: u64) {
    MODE.store(if mode == ApicMode::X2Apic { 1 } else { 2 }, Ordering::SeqCst);
    XAPIC_VIRT.store(xapic_virt, Ordering::SeqCst);
}

/// The mode chosen by [`set_mode`].
pub fn mode() -> ApicMode {
    match MODE.load(Ordering::Relaxed) {
        1 => ApicMode::X2Apic,
        2 => ApicMode::XApic,
        _ => panic!("apic: mode not chosen yet"),
    }
}

/// Chooses the mode: x2APIC when the CPU has it, unless `force_xapic` (which is refused,
/// with the reason, when an APIC ID above 254 needs x2APIC).
pub fn choose_mode(
    cpu_has_x2apic: bool,
    force_xapic: bool,
    max_apic_id: u32,
) -> Result<ApicMode, &'static str> {
    match (cpu_has_x2apic, force_xapic) {
        (false, _) if max_apic_id > 254 => Err("APIC IDs above 254 need x2APIC, which this CPU lacks"),
        (false, _) => Ok(ApicMode::XApic),
        (true, true) if max_apic_id > 254 => Err("apic=xapic refused: APIC IDs above 254 need x2APIC"),
        (true, true) => Ok(ApicMode::XApic),
        (true, false) => Ok(ApicMode::X2Apic),
    }
}

// xAPIC register offsets (Intel SDM Vol. 3, Table 11-1).
const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xB0;
const REG_SVR: usize = 0xF0;
const REG_ESR: usize = 0x280;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_LINT0: usize = 0x350;
const REG_LVT_LINT1: usize = 0x360;
const REG_LVT_ERROR: usize = 0x370;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const ICR_PENDING: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const DELIVERY_NMI: u32 = 0b100 << 8;
const DELIVERY_INIT: u32 = 0b101 << 8;
const DELIVERY_STARTUP: u32 = 0b110 << 8;

// The x2APIC variant carries the crate's configuration; one per CPU, so size is moot.
#[allow(clippy::large_enum_variant)]
enum Inner {
    X2(LocalApic),
    Mmio(u64),
}

/// This CPU's local APIC. Not `Send`: registers always reach the running CPU's APIC.
pub struct Lapic {
    inner: Inner,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Lapic {
    /// Enables the running CPU's APIC in the chosen mode, timer masked.
    ///
    /// # Safety
    /// Once per CPU, with the IDT holding handlers for the APIC vectors.
    pub unsafe fn init() -> Self {
        match mode() {
            ApicMode::X2Apic => {
                let mut lapic = LocalApicBuilder::new()
                    .timer_vector(TIMER_VECTOR as usize)
                    .error_vector(ERROR_VECTOR as usize)
                    .spurious_vector(SPURIOUS_VECTOR as usize)
                    .timer_mode(TimerMode::Periodic)
                    .timer_divide(TimerDivide::Div16)
                    .timer_initial(0)
                    .build()
                    .expect("apic: x2apic builder");
                // SAFETY: the caller guarantees once-per-CPU with handlers installed.
                unsafe {
                    lapic.enable();
                    lapic.disable_timer();
                }
                Self {
                    inner: Inner::X2(lapic),
                    _not_send: core::marker::PhantomData,
                }
            }
            ApicMode::XApic => {
                let mut base = Msr::new(IA32_APIC_BASE);
                // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU. Leaving x2APIC mode
                // requires passing through the disabled state (SDM 11.12.5).
                unsafe {
                    let v = base.read();
                    if v & APIC_BASE_EXTD != 0 {
                        base.write(v & !(APIC_BASE_EXTD | APIC_BASE_ENABLE));
                    }
                    base.write((v & !APIC_BASE_EXTD) | APIC_BASE_ENABLE);
                }
                let apic = Self {
                    inner: Inner::Mmio(XAPIC_VIRT.load(Ordering::SeqCst)),
                    _not_send: core::marker::PhantomData,
                };
                apic.write(REG_TPR, 0);
                apic.write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
                apic.write(REG_TIMER_DIVIDE, 0b0011); // divide by 16, as in x2APIC mode
                apic.write(REG_LVT_LINT0, LVT_MASKED);
                apic.write(REG_LVT_LINT1, LVT_MASKED);
                apic.write(REG_LVT_ERROR, ERROR_VECTOR as u32);
                apic.write(REG_ESR, 0);
                apic.write(REG_SVR, (1 << 8) | SPURIOUS_VECTOR as u32);
                apic
            }
        }
    }

    fn write(&self, reg: usize, value: u32) {
        let Inner::Mmio(base) = self.inner else {
            unreachable!()
        };
        // SAFETY: `base` maps the xAPIC page uncached (the kernel maps it for us);
        // `reg` is a valid register offset.
        unsafe { core::ptr::write_volatile((base as usize + reg) as *mut u32, value) }
    }

    fn read(&self, reg: usize) -> u32 {
        let Inner::Mmio(base) = self.inner else {
            unreachable!()
        };
        // SAFETY: as in `write`.
        unsafe { core::ptr::read_volatile((base as usize + reg) as *const u32) }
    }

    fn icr(&mut self, dest: u32, low: u32) {
        match &mut self.inner {
            Inner::X2(_) => {
                // SAFETY: x2APIC ICR (MSR 0x830): destination in the high half.
                unsafe { Msr::new(0x830).write(((dest as u64) << 32) | low as u64) }
            }
            Inner::Mmio(_) => {
                while self.read(REG_ICR_LOW) & ICR_PENDING != 0 {
                    core::hint::spin_loop();
                }
                self.write(REG_ICR_HIGH, dest << 24);
                self.write(REG_ICR_LOW, low);
            }
        }
    }

    /// This CPU's APIC ID.
    pub fn id(&self) -> u32 {
        match &self.inner {
            // SAFETY: reading the ID register has no side effects.
            Inner::X2(l) => unsafe { l.id() },
            Inner::Mmio(_) => self.read(REG_ID) >> 24,
        }
    }

    /// Signals end of interrupt.
    pub fn eoi(&mut self) {
        match &mut self.inner {
            // SAFETY: called at the end of an APIC interrupt handler on this CPU.
            Inner::X2(l) => unsafe { l.end_of_interrupt() },
            Inner::Mmio(_) => self.write(REG_EOI, 0),
        }
    }

    /// Sends a fixed IPI with `vector` to the CPU with APIC ID `dest`.
    pub fn send_ipi(&mut self, vector: u8, dest: u32) {
        self.icr(dest, ICR_ASSERT | vector as u32);
    }

    /// Sends a fixed IPI with `vector` to every CPU but this one.
    pub fn send_ipi_all_but_self(&mut self, vector: u8) {
        match &mut self.inner {
            // SAFETY: a fixed IPI to online CPUs with a handler for `vector`.
            Inner::X2(l) => unsafe { l.send_ipi_all(vector, IpiAllShorthand::AllExcludingSelf) },
            Inner::Mmio(_) => self.icr(0, (0b11 << 18) | ICR_ASSERT | vector as u32),
        }
    }

    /// Sends an NMI to the CPU with APIC ID `dest`.
    pub fn send_nmi(&mut self, dest: u32) {
        self.icr(dest, ICR_ASSERT | DELIVERY_NMI);
    }

    /// Sends INIT (assert) to `dest`: the first step of AP start-up.
    pub fn send_init(&mut self, dest: u32) {
        self.icr(dest, ICR_ASSERT | DELIVERY_INIT);
    }

    /// Sends a start-up IPI: `dest` starts in real mode at `page * 4096`.
    pub fn send_startup(&mut self, dest: u32, page: u8) {
        self.icr(dest, ICR_ASSERT | DELIVERY_STARTUP | page as u32);
    }

    /// Masks the timer and starts a one-shot countdown from `u32::MAX` (for calibration).
    pub fn timer_start_countdown(&mut self) {
        match &mut self.inner {
            // SAFETY: timer registers of this CPU; the timer is masked throughout.
            Inner::X2(l) => unsafe {
                l.disable_timer();
                l.set_timer_mode(TimerMode::OneShot);
                l.set_timer_initial(u32::MAX);
            },
            Inner::Mmio(_) => {
                self.write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
                self.write(REG_TIMER_INIT, u32::MAX);
            }
        }
    }

    /// The timer's current count.
    pub fn timer_current(&self) -> u32 {
        match &self.inner {
            // SAFETY: reading the current-count register has no side effects.
            Inner::X2(l) => unsafe { l.timer_current() },
            Inner::Mmio(_) => self.read(REG_TIMER_CURRENT),
        }
    }

    /// Starts the periodic tick: an interrupt every `initial` timer counts (divide by 16).
    pub fn timer_periodic(&mut self, initial: u32) {
        match &mut self.inner {
            // SAFETY: timer registers of this CPU; TIMER_VECTOR has a handler.
            Inner::X2(l) => unsafe {
                l.set_timer_mode(TimerMode::Periodic);
                l.set_timer_initial(initial);
                l.enable_timer();
            },
            Inner::Mmio(_) => {
                self.write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
                self.write(REG_TIMER_INIT, initial);
            }
        }
    }
}

#[cfg(test)]
#[path = "apic_tests.rs"]
mod tests;
