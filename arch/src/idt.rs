//! The interrupt descriptor table and the CPU exception handlers.
//!
//! Every fatal exception reports vector, name, error code, RIP and CR2 through a panic;
//! the kernel's panic handler adds the CPU and ends the run. Breakpoints are logged and
//! resumed. Interrupt vectors (IPIs, timer) are installed by their owners with
//! [`set_interrupt_handler`] before [`load`] runs on each CPU.
//!
//! A page fault or double fault while the CPU is releasing an address space adds
//! `fault during teardown: step=.. cpu=.. mm=.. root=..` ([`crate::teardown_record`]).
//!
//! What a handler can reach when CR3 holds a user root: the IDT, the GDT and TSS, the
//! IST stacks and the handlers' code are kernel memory (statics, the kernel image),
//! mapped in the upper half, whose top-level entries every user root copies from the
//! kernel's, pointing to the same lower-level tables, which are never freed. A
//! teardown unlinks and frees tables of the lower half only, and the root itself only
//! once no CPU has it in CR3 (`mm::release`), so a fault in any step of a teardown is
//! delivered and its handler runs. What no handler can survive is the bug that rule
//! prevents: a root freed (and poisoned) while in some CPU's CR3 makes every access of
//! that CPU fault, the delivery of the fault included, and it ends in a triple fault
//! unless the translations it needs are still in its TLB. The double-fault handler
//! loads the kernel's root first ([`set_fault_root`]), a root that is never freed, so
//! that its report does not depend on the user root any further.

use spin::Mutex;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use crate::gdt::{DOUBLE_FAULT_IST, MACHINE_CHECK_IST, NMI_IST};

/// One IDT shared by all CPUs: handlers are the same everywhere; per-CPU state is reached
/// through the running CPU's identity. Built on the boot CPU, then frozen by [`load`].
static IDT: Mutex<InterruptDescriptorTable> = Mutex::new(InterruptDescriptorTable::new());
static FROZEN: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// The kernel's page-table root (never freed), which the double-fault handler loads
/// before it reports; 0 until the kernel names it.
static FAULT_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Names the page-table root the double-fault handler switches to: the kernel's, which
/// maps everything a report touches and is never freed. Once, at boot.
pub fn set_fault_root(root: u64) {
    FAULT_ROOT.store(root, core::sync::atomic::Ordering::SeqCst);
}

fn cr2() -> u64 {
    Cr2::read_raw()
}

macro_rules! fatal_handler {
    ($fn_name:ident, $vector:expr, $what:expr) => {
        extern "x86-interrupt" fn $fn_name(frame: InterruptStackFrame) {
            panic!(
                "exception: vector={} ({}) error=none rip={:#x} cr2={:#x}",
                $vector,
                $what,
                frame.instruction_pointer.as_u64(),
                cr2()
            );
        }
    };
    ($fn_name:ident, $vector:expr, $what:expr, error) => {
        extern "x86-interrupt" fn $fn_name(frame: InterruptStackFrame, error: u64) {
            panic!(
                "exception: vector={} ({}) error={:#x} rip={:#x} cr2={:#x}",
                $vector,
                $what,
                error,
                frame.instruction_pointer.as_u64(),
                cr2()
            );
        }
    };
}

fatal_handler!(divide_error, 0, "divide error");
fatal_handler!(debug, 1, "debug");
fatal_handler!(overflow, 4, "overflow");
fatal_handler!(bound_range, 5, "bound range exceeded");
fatal_handler!(invalid_opcode, 6, "invalid opcode");
fatal_handler!(device_not_available, 7, "device not available");
fatal_handler!(invalid_tss, 10, "invalid TSS", error);
fatal_handler!(segment_not_present, 11, "segment not present", error);
fatal_handler!(stack_segment, 12, "stack-segment fault", error);
fatal_handler!(general_protection, 13, "general protection fault", error);
fatal_handler!(x87_floating_point, 16, "x87 floating point");
fatal_handler!(alignment_check, 17, "alignment check", error);
fatal_handler!(simd_floating_point, 19, "SIMD floating point");
fatal_handler!(virtualization, 20, "virtualization");

extern "x86-interrupt" fn page_fault(mut frame: InterruptStackFrame, error: PageFaultErrorCode) {
    if crate::probe::fixup(&mut frame, error.bits()) {
        return; // a probe's read faulted: it reports the fault instead
    }
    panic!(
        "exception: vector=14 (page fault){} error={:#x} ({:?}) rip={:#x} cr2={:#x}",
        crate::teardown_record::FaultSuffix,
        error.bits(),
        error,
        frame.instruction_pointer.as_u64(),
        cr2()
    );
}

/// Runs on its own IST stack (a fault while pushing onto a bad kernel stack still gets
/// here), then moves to the kernel's page tables (see the top of this file).
extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, error: u64) -> ! {
    let cr2 = cr2();
    let cr3 = x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64();
    let kernel_root = FAULT_ROOT.load(core::sync::atomic::Ordering::SeqCst);
    if kernel_root != 0 && kernel_root != cr3 {
        let root =
            x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(kernel_root));
        // SAFETY: the kernel's root maps the upper half exactly as every user root does
        // (they copy its top-level entries), so this code, its IST stack and everything
        // the report touches stay mapped; the CPU never returns to the faulting context.
        unsafe {
            x86_64::registers::control::Cr3::write(root, x86_64::registers::control::Cr3Flags::empty())
        };
    }
    panic!(
        "exception: vector=8 (double fault){} error={:#x} rip={:#x} cr2={:#x} rsp={:#x} cr3={:#x}",
        crate::teardown_record::FaultSuffix,
        error,
        frame.instruction_pointer.as_u64(),
        cr2,
        frame.stack_pointer.as_u64(),
        cr3
    );
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    panic!(
        "exception: vector=18 (machine check) error=none rip={:#x} cr2={:#x}",
        frame.instruction_pointer.as_u64(),
        cr2()
    );
}

extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    let watchdogs = crate::watchdog::answer_nmi(frame.instruction_pointer.as_u64(), frame.cpu_flags.bits());
    crate::smp::halt_if_stopping(); // halts here if the run is panicking or stopping
    if watchdogs || crate::watchdog::report_in_flight() {
        return;
    }
    panic!(
        "exception: vector=2 (unexpected NMI) rip={:#x}",
        frame.instruction_pointer.as_u64()
    );
}

/// Breakpoints are not fatal: they are counted and the CPU resumes after the `int3`.
pub static BREAKPOINTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    BREAKPOINTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    log::info!("idt: breakpoint rip={:#x}", frame.instruction_pointer.as_u64());
}

/// Installs `handler` for interrupt `vector` (32..=255). Must precede [`load`].
pub fn set_interrupt_handler(vector: u8, handler: extern "x86-interrupt" fn(InterruptStackFrame)) {
    assert!(vector >= 32, "vector {vector} is reserved for exceptions");
    assert!(
        FROZEN.get().is_none(),
        "IDT already frozen; install handlers before idt::load"
    );
    IDT.lock()[vector].set_handler_fn(handler);
}

fn build() -> InterruptDescriptorTable {
    let mut idt = IDT.lock();
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available.set_handler_fn(device_not_available);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment);
    idt.general_protection_fault.set_handler_fn(general_protection);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    // SAFETY: the IST slots are filled in by `CpuTables::load`, which every CPU runs
    // before loading the IDT.
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(DOUBLE_FAULT_IST);
        idt.non_maskable_interrupt
            .set_handler_fn(nmi)
            .set_stack_index(NMI_IST);
        idt.machine_check
            .set_handler_fn(machine_check)
            .set_stack_index(MACHINE_CHECK_IST);
    }
    // The frozen copy lives forever in `FROZEN`; the IDT register points into it.
    idt.clone()
}

/// Loads the (shared) IDT on the running CPU; the first call freezes it.
pub fn load() {
    FROZEN.call_once(build).load();
}
