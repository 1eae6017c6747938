//! Kernel side of SMP bring-up: finds the CPUs, picks the APIC mode, prepares what the
//! APs need from memory management (trampoline frame, identity mapping, stacks with
//! guard pages) and hands over to `arch::smp`.

extern crate alloc;
use alloc::boxed::Box;
use alloc::vec::Vec;
use arch::apic::{self, ApicMode};
use arch::cpuid::CpuFeatures;
use arch::cpus;
use bootloader_api::info::MemoryRegions;
use mm::entry::EntryFlags as F;

use crate::mem::phys::MEM;
use crate::mem::{frames, kernel_space, paging};

/// Size of each AP stack.
pub const AP_STACK_SIZE: u64 = 64 * 1024;

/// How SMP came up, for the boot log and tests.
#[derive(Debug, Clone, Copy)]
pub struct SmpSummary {
    /// CPUs online.
    pub online: usize,
    /// CPUs the firmware reported (enabled).
    pub total: usize,
    /// APIC mode in use.
    pub mode: ApicMode,
    /// TSC cycles from the first INIT to all online.
    pub start_cycles: u64,
}

static SUMMARY: spin::Once<SmpSummary> = spin::Once::new();

/// The SMP summary (after [`init`]).
pub fn summary() -> SmpSummary {
    *SUMMARY.get().expect("smp not initialised")
}

fn map(page: u64, frame: u64, flags: F) {
    kernel_space::map_page(&MEM, page, frame, flags).expect("smp: mapping failed");
}

fn unmap(page: u64) {
    kernel_space::unmap_page(&MEM, page).expect("smp: unmapping failed");
}

/// Maps a stack for AP `i` (1-based) above a guard page; returns its top.
fn map_stack(i: usize) -> u64 {
    let base = crate::mem::layout::AP_STACKS_START + (i as u64) * (AP_STACK_SIZE + 4096) + 4096;
    for off in (0..AP_STACK_SIZE).step_by(4096) {
        let frame = frames::alloc_zeroed().expect("smp: out of memory for AP stacks");
        map(base + off, frame.as_u64(), F::WRITABLE | F::NO_EXECUTE);
    }
    base + AP_STACK_SIZE
}

/// Memory kept free after the per-CPU reservations, for page tables and user pages.
const MEMORY_MARGIN: u64 = 16 << 20;

/// Grows the heap for `cpus` CPUs and checks that their stacks fit, before any AP starts
/// and before any work: a machine too small for its CPU count is told how much it needs.
fn reserve_memory_for(cpus: usize) {
    let stacks = (cpus as u64 - 1) * AP_STACK_SIZE;
    let need = crate::mem::heap::growth_for_cpus(cpus) as u64 + stacks + MEMORY_MARGIN;
    let free = frames::stats().free * frames::FRAME_SIZE;
    if need <= free {
        crate::mem::heap::reserve_for_cpus(cpus).expect("smp: the heap could not grow into free frames");
        return;
    }
    log::error!(
        "smp: error: cpus={cpus} need_mib={} free_mib={}: not enough memory for this many CPUs; \
         give the machine at least {} MiB more (QEMU: --mem)",
        need.div_ceil(1 << 20),
        free >> 20,
        (need - free).div_ceil(1 << 20)
    );
    crate::exit::exit_held(arch::qemu_exit::ExitCode::Failure)
}

/// Discovers the CPUs, brings them all online and logs `smp: n/N CPUs online (mode)`.
pub fn init(rsdp: Option<u64>, map_regions: &MemoryRegions, features: &CpuFeatures, force_xapic: bool) {
    let boot_apic = arch::cpu::apic_id();
    let topo = match rsdp {
        // SAFETY: the RSDP comes from the bootloader; physical memory is mapped.
        Some(rsdp) => unsafe { arch::madt::discover(rsdp, paging::phys_offset()) },
        None => Err("acpi: the bootloader found no RSDP".into()),
    };
    let mut ids = alloc::vec![boot_apic];
    match topo {
        Ok(t) => {
            if t.boot_apic_id != boot_apic {
                log::warn!(
                    "smp: MADT's first CPU has apic id {}, but the boot CPU is {boot_apic}",
                    t.boot_apic_id
                );
            }
            ids.extend(t.ap_apic_ids.iter().copied().filter(|&id| id != boot_apic));
            if t.boot_apic_id != boot_apic && !ids.contains(&t.boot_apic_id) {
                ids.push(t.boot_apic_id);
            }
            if t.disabled > 0 {
                log::info!(
                    "smp: {} CPUs marked disabled in the MADT, not started",
                    t.disabled
                );
            }
        }
        Err(e) => log::error!("{e}; running on the boot CPU only"),
    }
    reserve_memory_for(ids.len());
    let max_id = ids.iter().copied().max().unwrap_or(0);
    let mode = match apic::choose_mode(features.x2apic, force_xapic, max_id) {
        Ok(m) => m,
        Err(why) => {
            log::warn!("apic: {why}; using x2apic");
            ApicMode::X2Apic
        }
    };
    if mode == ApicMode::XApic {
        map(
            crate::mem::layout::XAPIC_PAGE,
            apic::XAPIC_PHYS,
            F::WRITABLE | F::NO_CACHE | F::WRITE_THROUGH | F::NO_EXECUTE,
        );
    }
    apic::set_mode(mode, crate::mem::layout::XAPIC_PAGE);
    let (tsc_hz, lapic_per_ms) = arch::smp::init_boot_cpu(&ids);
    crate::tlb::init_cpu();
    crate::sched::init_cpu(0);
    log::info!(
        "timer: tsc_hz={tsc_hz} invariant_tsc={} lapic_per_ms={lapic_per_ms} tick_hz={}",
        if features.invariant_tsc { "yes" } else { "no" },
        arch::timer::TICK_HZ
    );

    let mut report_cycles = 0;
    if ids.len() > 1 {
        // The lowest usable page-aligned frame above the real-mode IVT/BDA.
        let tramp = frames::low_frame(map_regions, 0x1000)
            .expect("smp: no free frame below 1 MiB for the trampoline");
        map(tramp.as_u64(), tramp.as_u64(), F::WRITABLE);
        let stacks: Vec<u64> = (1..ids.len()).map(map_stack).collect();
        let report = arch::smp::start_aps(&arch::smp::ApStart {
            trampoline_phys: tramp.as_u64(),
            trampoline_virt: tramp.as_u64() + paging::phys_offset(),
            cr3: kernel_space::kernel_mm().root().as_u64(),
            stack_tops: &stacks,
        });
        unmap(tramp.as_u64());
        // The stack table was read by every AP that started; keep it for any late one.
        Box::leak(stacks.into_boxed_slice());
        report_cycles = report.cycles;
    }
    let s = SmpSummary {
        online: cpus::online_count(),
        total: ids.len(),
        mode,
        start_cycles: report_cycles,
    };
    SUMMARY.call_once(|| s);
    log::info!("smp: {}/{} CPUs online ({})", s.online, s.total, mode.name());
    arch::irq::enable();
}

/// An AP's life after its arch set-up (from arch, through `crate::hooks`): TLB state,
/// scheduler, online, idle loop.
pub fn ap_main(cpu: usize) -> ! {
    crate::tlb::init_cpu();
    crate::sched::init_cpu(cpu);
    arch::smp::mark_online(cpu);
    crate::sched::idle_loop()
}

/// Runs `f` as a kernel task on `cpu` and waits for it (at most 30 s, then panics).
pub fn run_on(cpu: usize, f: impl FnOnce() + Send + 'static) {
    crate::sched::spawn("run_on", cpu, None, f).join(crate::sched::JOIN_BOUND_MS);
}
