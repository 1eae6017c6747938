//! The wiring of mm's TLB machinery to this machine: the per-CPU TLB states and
//! counters, the kernel's own address space (`init_mm`), the flush backend, the table
//! freer, and the hardware they reach through mm's traits ([`hw`]).
//!
//! Order: [`init`] runs on the boot CPU after the backend is chosen ([`backend`]) and
//! before any AP starts; every CPU then joins the kernel's address space with
//! [`init_cpu`]. mm's own protocols (flush generations, lazy CPUs, grace periods) are
//! written at the top of the mm files that hold them.

pub mod backend;
pub mod faults;
pub mod hw;

use arch::cpu::X86Cpu;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
use mm::addr_space::AddressSpace;
use mm::flush::{FlushInfo, Mmu};
use mm::hw::FlushBackend;
use mm::irq::{IrqsOff, IrqsOn};
use mm::round::RoundMode;
use mm::stats::TlbStats;
use mm::tlb_state::TlbStates;
use spin::Once;

use crate::mem::{phys::MEM, poison};

static STATES: TlbStates = TlbStates::new();
/// TLB counters of every CPU.
pub static STATS: TlbStats = TlbStats::new();
static BACKEND: Once<&'static dyn FlushBackend> = Once::new();
static TLB: arch::tlb::X86Tlb = arch::tlb::X86Tlb;

/// The table freer's state (grace periods, queued batches, sync mode).
pub static FREER: mm::table_free::TableFreerState = mm::table_free::TableFreerState::new();

/// Every CPU's walk marker: the lock-free walker publishes into it, the `targeted` and
/// `wait` syncs and walk periods read it (`mm::walk_marker`).
pub static WALKS: mm::walk_marker::WalkMarkers = mm::walk_marker::WalkMarkers::new();

pub use crate::mem::kernel_space::kernel_mm;

/// Records the flush backend. Boot CPU, before the APs start.
pub fn init(backend: &'static dyn FlushBackend) {
    BACKEND.call_once(|| backend);
}

/// The flush backend chosen at boot.
fn real_backend() -> &'static dyn FlushBackend {
    *BACKEND.get().expect("tlb not initialised")
}

/// How shootdown rounds run ([`mm::round::RoundMode`]: bit 0 the concurrent local
/// flush, bit 1 early acknowledgement). Relaxed: a setting that publishes no data, set
/// at boot before the APs start (`tlb.local_flush=`, `tlb.early_ack=`) or by the
/// benchmark between its measurements, on the CPU that then flushes; a responder reads
/// only what the request carries.
static ROUND: AtomicU8 = AtomicU8::new(1);

/// Sets how shootdown rounds run from now on (boot options; the benchmark's modes).
pub fn set_round_mode(mode: RoundMode) {
    ROUND.store(mode.concurrent_local as u8 | (mode.early_ack as u8) << 1, Relaxed);
}

/// How shootdown rounds run now.
pub fn round_mode() -> RoundMode {
    let bits = ROUND.load(Relaxed);
    RoundMode {
        concurrent_local: bits & 1 != 0,
        early_ack: bits & 2 != 0,
    }
}

/// What a responder of an early-acknowledged round runs (`mm::flush` rule 8): the flush
/// handler on its own copy of the request, with this machine's TLB machinery, which
/// acknowledges as soon as it may.
fn respond_early(off: IrqsOff<'_>, info: &FlushInfo<'_>, ack: &mut dyn FnMut()) {
    mmu().flush_tlb_func_acked(off, info, ack)
}

/// The TLB machinery bound to this machine (its backend a double under a `tlb.break=`
/// fault, [`faults`]).
pub fn mmu() -> Mmu<'static> {
    Mmu {
        tlb: &TLB,
        backend: faults::backend(real_backend()),
        states: &STATES,
        stats: &STATS,
        kernel: kernel_mm(),
        calls: &arch::ipi::IpiCalls,
        round: round_mode(),
        responder: Some(respond_early),
    }
}

/// The table freer bound to this machine (its hardware or its batch memory a double
/// under a fault, [`faults`]).
pub fn freer() -> mm::table_free::TableFreer<'static> {
    mm::table_free::TableFreer {
        state: &FREER,
        hw: faults::table_sync_hw(),
        mem: faults::batch_mem(),
        stats: &STATS,
        walks: faults::freer_markers(),
    }
}

/// Makes this CPU use the kernel's address space for the first time (CPU bring-up).
pub fn init_cpu() {
    let mmu = mmu();
    arch::irq::without_interrupts(|| {
        IrqsOff::entered(&X86Cpu, "joins the kernel's address space", |off| {
            mmu.switch_mm(off, kernel_mm())
        })
    });
}

/// The running task's capability to wait for other CPUs (mm's flushes, syncs and
/// drains take it): made from the interrupt flag, panicking, naming the caller and
/// `what` it was about to do, if interrupts are off.
#[track_caller]
pub fn irqs_on(what: &str) -> IrqsOn {
    IrqsOn::check(&X86Cpu, what)
}

/// Everything an mmu_gather needs on this machine.
pub fn gather_ctx() -> mm::gather::GatherCtx<'static> {
    mm::gather::GatherCtx {
        mmu: mmu(),
        mem: &MEM,
        freer: freer(),
        flushes: faults::flushes(),
    }
}

/// Lock-free walk of `va` in the running task's address space `mm` (refused,
/// `Walk::NotLoaded`, if `mm` is not the one in this CPU's CR3).
pub fn walk(mm: &AddressSpace, va: u64) -> mm::walker::Walk {
    mm::walker::walk(
        &mut irqs_on("walks page tables lock-free"),
        &hw::WALKER_HW,
        faults::walker_markers(),
        &MEM,
        &STATS,
        mm,
        mm::addr::VirtAddr::new(va),
    )
}

/// [`walk`] without publishing the walk in this CPU's marker: for the benchmark's
/// `walk-cost:` measurement only (`mm::walker::walk_unpublished`; the `targeted` and
/// `wait` syncs do not see such a walk).
pub fn walk_unpublished(mm: &AddressSpace, va: u64) -> mm::walker::Walk {
    mm::walker::walk_unpublished(
        &mut irqs_on("walks page tables lock-free"),
        &hw::WALKER_HW,
        &MEM,
        &STATS,
        mm,
        mm::addr::VirtAddr::new(va),
    )
}

/// Waits for every deferred table and empties the quarantine: afterwards the frame
/// accounting reflects only live memory.
pub fn settle() {
    freer().drain(&irqs_on("drains the table freer"));
    poison::drain_quarantine();
}
