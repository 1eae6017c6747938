//! Identity of the running CPU and small processor-control helpers.

use core::sync::atomic::AtomicBool;

/// The running CPU as mm sees it ([`mm::hw::RunningCpu`]): its index and its interrupt
/// flag. The one implementation on this machine; the TLB and the kernel's table-sync and
/// walker hardware hand it out.
pub struct X86Cpu;

impl mm::hw::RunningCpu for X86Cpu {
    fn this_cpu(&self) -> usize {
        crate::percpu::cpu_index()
    }

    fn run_irqs_disabled(&self, f: &mut dyn FnMut()) {
        crate::irq::without_interrupts(f)
    }

    fn irqs_enabled(&self) -> bool {
        crate::irq::are_enabled()
    }
}

/// Set once the first CPU has panicked; other CPUs that notice it stop instead of
/// reporting a second, confusing failure.
pub static PANICKING: AtomicBool = AtomicBool::new(false);

/// APIC ID of the running CPU, read from CPUID (leaf 0xB for x2APIC IDs above 255,
/// else leaf 1). Works before any per-CPU data exists, so panics can always name the CPU.
pub fn apic_id() -> u32 {
    let leaf0 = core::arch::x86_64::__cpuid(0);
    if leaf0.eax >= 0xB {
        let topo = core::arch::x86_64::__cpuid_count(0xB, 0);
        if topo.ebx != 0 {
            return topo.edx;
        }
    }
    let leaf1 = core::arch::x86_64::__cpuid(1);
    leaf1.ebx >> 24
}

/// Stops this CPU for good: interrupts off, then `hlt` forever (NMIs return to the loop).
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// Enables interrupts and halts until the next one (`sti; hlt`: an interrupt cannot slip
/// in between and be missed). Returns after that interrupt's handler ran.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 processor and only reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Sets the running CPU's task priority (CR8): interrupts whose vector's priority class
/// (vector >> 4) is at or below `class` are held pending even with interrupts enabled.
/// 0 lets everything through; tests use 15 to keep IPIs pending while IF=1.
pub fn set_task_priority(class: u8) {
    // SAFETY: CR8 only gates interrupt delivery on this CPU; writing 0..=15 is always valid
    // in 64-bit mode, and the caller restores it.
    unsafe { core::arch::asm!("mov cr8, {}", in(reg) (class & 0xf) as u64, options(nomem, nostack)) };
}
