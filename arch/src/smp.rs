//! Bringing every CPU online: per-CPU set-up of the boot CPU, INIT-SIPI-SIPI for the
//! application processors, the panic stop (NMI), and the AP entry path.
//!
//! Order on the boot CPU: [`init_boot_cpu`] (per-CPU data, APIC, timer calibration),
//! then [`start_aps`]. APs start in parallel through the ticket-based trampoline, each
//! running [`ap_entry`]: descriptor tables, IDT, per-CPU data, APIC, tick, online, then
//! the kernel's AP main function.

extern crate alloc;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::apic::{CALL_VECTOR, ERROR_VECTOR, Lapic, RESCHEDULE_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::cpu::rdtsc;
use crate::gdt::CpuTables;
use crate::percpu::{self, with_lapic};
use crate::stats::IpiReason;
use crate::trampoline::Trampoline;
use crate::{cpus, hooks, idt, ipi, timer};

/// Sends the reschedule IPI to CPU `cpu` (`smp_send_reschedule`), counted as sent.
pub fn send_reschedule(cpu: usize) {
    with_lapic(|l| l.send_ipi(RESCHEDULE_VECTOR, cpus::get(cpu).apic_id));
    if let Some(me) = percpu::current() {
        me.ipis.count_sent(IpiReason::Reschedule);
    }
}

extern "x86-interrupt" fn reschedule_interrupt(_f: x86_64::structures::idt::InterruptStackFrame) {
    if let Some(me) = percpu::current() {
        me.ipis.count_received(IpiReason::Reschedule);
    }
    with_lapic(|l| l.eoi());
    if let Some(kernel) = hooks::kernel() {
        kernel.reschedule();
    }
}

/// Installs the APIC vectors in the IDT (before `idt::load` on the boot CPU).
pub fn install_vectors() {
    idt::set_interrupt_handler(TIMER_VECTOR, timer::tick_interrupt);
    idt::set_interrupt_handler(CALL_VECTOR, ipi::call_interrupt);
    idt::set_interrupt_handler(RESCHEDULE_VECTOR, reschedule_interrupt);
    idt::set_interrupt_handler(ERROR_VECTOR, timer::error_interrupt);
    idt::set_interrupt_handler(SPURIOUS_VECTOR, timer::spurious_interrupt);
}

/// Set when the run is over and every CPU should stop (see [`halt_all_cpus`]).
static STOPPING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Called first on every NMI (by [`idt`]'s handler, interrupts off): halts this CPU if
/// the run is panicking or stopping (the NMI [`stop_other_cpus`] sent).
pub(crate) fn halt_if_stopping() {
    if crate::cpu::PANICKING.load(Ordering::SeqCst) || STOPPING.load(Ordering::SeqCst) {
        crate::cpu::halt_forever();
    }
}

/// End of a run on real hardware (no exit device): stops every other CPU with an NMI,
/// then this one, leaving the last lines on the screen.
pub fn halt_all_cpus() -> ! {
    STOPPING.store(true, Ordering::SeqCst);
    stop_other_cpus();
    crate::cpu::halt_forever()
}

/// Registers all CPUs (boot CPU first) and sets up the boot CPU's per-CPU data and
/// APIC; calibrates the TSC and the APIC timer and starts the boot CPU's tick.
/// Returns (TSC Hz, APIC timer counts per ms).
pub fn init_boot_cpu(apic_ids: &[u32]) -> (u64, u32) {
    // The legacy 8259 PICs power up delivering IRQ 0 (the PIT) at vector 8, where it would
    // look like a double fault: move them out of the exception range and mask them all;
    // gatherOS takes its interrupts from the local APICs only.
    // SAFETY: the PIC ports are used by nothing else; vectors 0x20..0x30 stay masked.
    unsafe {
        let mut pics = pic8259::ChainedPics::new(0x20, 0x28);
        pics.initialize();
        pics.disable();
    }
    cpus::register(apic_ids);
    let me = cpus::get(0);
    // SAFETY: once, on the boot CPU, with the APIC vectors in the IDT.
    unsafe { me.install(Lapic::init()) };
    cpus::set_online(0);
    let tsc = timer::calibrate_tsc();
    let lapic = timer::calibrate_lapic();
    timer::start_tick();
    (tsc, lapic)
}

/// What [`start_aps`] needs from the kernel's memory management.
pub struct ApStart<'a> {
    /// Physical address of a reserved, page-aligned frame below 1 MiB.
    pub trampoline_phys: u64,
    /// Where that frame is mapped for writing.
    pub trampoline_virt: u64,
    /// Page-table root the APs load; must identity-map the trampoline frame.
    pub cr3: u64,
    /// One stack top per AP (guard pages below are the caller's business).
    pub stack_tops: &'a [u64],
}

/// Result of [`start_aps`].
#[derive(Debug)]
pub struct ApReport {
    /// CPUs online, the boot CPU included.
    pub online: usize,
    /// Logical indices of APs that did not come up within the timeout.
    pub missing: Vec<usize>,
    /// TSC cycles from the first INIT to the last AP online.
    pub cycles: u64,
}

/// Starts every registered AP with INIT-SIPI-SIPI (Intel SDM Vol. 3, 9.4.4) and waits
/// for them; an AP that does not answer within the timeout is reported and left out.
/// Each AP then runs the kernel's [`hooks::KernelHooks::ap_main`], which must have been
/// registered (asserted).
pub fn start_aps(cfg: &ApStart) -> ApReport {
    let n = cpus::count();
    assert!(hooks::kernel().is_some(), "smp: start_aps before hooks::register");
    if n == 1 {
        return ApReport {
            online: 1,
            missing: Vec::new(),
            cycles: 0,
        };
    }
    // SAFETY: the caller reserved and identity-mapped the frame, and keeps the stacks.
    let tramp = unsafe {
        Trampoline::install(
            cfg.trampoline_phys,
            cfg.trampoline_virt,
            cfg.cr3,
            cfg.stack_tops,
            ap_entry,
        )
    };
    let start = rdtsc();
    let aps = 1..n;
    for i in aps.clone() {
        with_lapic(|l| l.send_init(cpus::get(i).apic_id));
    }
    timer::delay_us(10_000); // 10 ms after INIT
    for round in 0..2 {
        for i in aps
            .clone()
            .filter(|&i| !cpus::get(i).online.load(Ordering::Acquire))
        {
            with_lapic(|l| l.send_startup(cpus::get(i).apic_id, tramp.sipi_vector()));
        }
        if round == 0 {
            timer::delay_us(200); // 200 us between the two SIPIs
        }
    }
    // Generous under TCG with many vCPUs on few host cores.
    let timeout_us = 2_000_000 + 50_000 * n as u64;
    let deadline = rdtsc() + timeout_us * timer::tsc_hz() / 1_000_000;
    while cpus::online_count() < n && rdtsc() < deadline {
        core::hint::spin_loop();
    }
    let cycles = rdtsc() - start;
    let missing: Vec<usize> = aps
        .filter(|&i| !cpus::get(i).online.load(Ordering::Acquire))
        .collect();
    for &i in &missing {
        log::warn!(
            "smp: cpu {i} (apic id {}) did not come online within {} ms; left out (trampoline tickets={})",
            cpus::get(i).apic_id,
            timeout_us / 1000,
            tramp.tickets()
        );
    }
    ApReport {
        online: cpus::online_count(),
        missing,
        cycles,
    }
}

/// First Rust code on an AP (called by the trampoline on its own stack).
extern "C" fn ap_entry(_ticket: u64) -> ! {
    let apic_id = crate::cpu::apic_id();
    let Some(index) = cpus::index_of_apic_id(apic_id) else {
        // Not in the MADT: nothing to do here.
        crate::cpu::halt_forever()
    };
    Box::leak(Box::new(CpuTables::new())).load();
    idt::load();
    let me = cpus::get(index);
    // SAFETY: once, on the CPU that owns `me`, with the IDT loaded.
    unsafe { me.install(Lapic::init()) };
    timer::start_tick();
    hooks::kernel()
        .expect("hooks registered before start_aps")
        .ap_main(index)
}

/// Publishes the running AP as online (it now takes cross calls) and enables interrupts.
pub fn mark_online(index: usize) {
    cpus::set_online(index);
    x86_64::instructions::interrupts::enable();
}

/// Stops every other online CPU with an NMI (panic path). They halt in
/// [`halt_if_stopping`] because [`crate::cpu::PANICKING`] is set.
pub fn stop_other_cpus() {
    let Some(me) = percpu::current() else { return };
    for i in cpus::online().iter().filter(|&i| i != me.index) {
        with_lapic(|l| l.send_nmi(cpus::get(i).apic_id));
    }
}
