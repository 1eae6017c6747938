//! The gatherOS kernel: entry point and initialisation order, nothing else.
#![no_std]
#![no_main]

extern crate alloc;

mod bench_smp;
mod bench_tlb;
mod coherence;
mod coherence_tests;
mod console;
mod demo;
mod frames;
mod harness;
mod heap;
mod logger;
mod options;
mod options_fuzz;
mod paging;
mod panic;
mod race_tests;
mod sched;
mod share_tests;
mod smp;
mod smp_tests;
mod soak_tests;
mod tlb_tests;
mod vm;
mod watchdog_tests;
mod workload;

use alloc::boxed::Box;
use arch::cpuid::CpuFeatures;
use arch::gdt::CpuTables;
use arch::qemu_exit::ExitCode;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::info::MemoryRegionKind;
use bootloader_api::{BootInfo, entry_point};

/// How the bootloader must set the kernel up.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    // Keep the bootloader's own mappings below the kernel heap (heap::HEAP_START).
    config.mappings.dynamic_range_start = Some(0xffff_8000_0000_0000);
    config.mappings.dynamic_range_end = Some(0xffff_bfff_ffff_f000);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// Which firmware loaded us, told apart by the memory map's region kinds.
fn firmware(boot_info: &BootInfo) -> &'static str {
    let kinds = || boot_info.memory_regions.iter().map(|r| r.kind);
    if kinds().any(|k| matches!(k, MemoryRegionKind::UnknownUefi(_))) {
        "uefi"
    } else if kinds().any(|k| matches!(k, MemoryRegionKind::UnknownBios(_))) {
        "bios"
    } else {
        "unknown firmware"
    }
}

/// The boot options text handed over in the ramdisk (empty without one).
fn option_text(boot_info: &BootInfo) -> &'static str {
    let Some(addr) = boot_info.ramdisk_addr.into_option() else {
        return "";
    };
    // SAFETY: the bootloader maps the ramdisk at `addr` for `ramdisk_len` bytes and never
    // unmaps it; nothing writes to it.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize) };
    match core::str::from_utf8(bytes) {
        Ok(text) => text.trim_end_matches('\0'),
        Err(_) => {
            log::warn!("options: ramdisk is not UTF-8 text, ignoring it");
            ""
        }
    }
}

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    logger::init();
    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("bootloader did not map physical memory");
    paging::init(phys_offset);
    let usable = frames::init(&boot_info.memory_regions, phys_offset);
    heap::init();
    console::init(boot_info.framebuffer.take());
    arch::smp::install_vectors();
    Box::leak(Box::new(CpuTables::new())).load();
    arch::idt::load();

    let (opts, errors) = options::BootOptions::parse(option_text(boot_info));
    log::set_max_level(opts.log_level);
    HOLD_MS.store(opts.hold_ms, core::sync::atomic::Ordering::Relaxed);
    arch::watchdog::set_bound_ms(opts.watchdog_ms);
    soak_tests::TABLES.store(opts.soak_tables, core::sync::atomic::Ordering::Relaxed);
    log::info!(
        "gatherOS {}: booted via {}, {} MiB usable",
        env!("CARGO_PKG_VERSION"),
        firmware(boot_info),
        usable >> 20
    );
    for e in &errors {
        log::warn!("{e}");
    }
    let mut features = CpuFeatures::detect();
    for &(name, on) in &opts.cpuid_overrides {
        if features.apply_override(name, on) {
            log::info!("cpuid: override {name}={}", if on { "on" } else { "off" });
        } else {
            log::warn!("options: unknown CPU feature '{name}' in cpuid.{name} (ignored)");
        }
    }
    log::info!("{features}");
    log::info!("{}", frames::stats());
    vm::init(choose_backend(&features, &opts));
    vm::FREER.set_mode(opts.table_sync);
    vm::FREER.set_batch_allocation_fails(opts.table_batch_fails);
    if opts.tlb_break != mm::breakage::Breakage::None {
        log::warn!("tlb: test-only breakage: tlb.break={}", opts.tlb_break.name());
        vm::set_breakage(opts.tlb_break);
    }
    vm::reserve_huge_blocks(4);
    sched::install_hooks();
    smp::init(
        boot_info.rsdp_addr.into_option(),
        &boot_info.memory_regions,
        &features,
        opts.force_xapic,
    );

    if let Some(test) = &opts.test {
        harness::run(test);
    }
    match opts.bench {
        Some("smp") => bench_smp::run(),
        Some("tlb") => {
            bench_tlb::run(&opts.bench_tlb);
            done_ok()
        }
        _ => {}
    }
    vm::settle();
    let frames_before = frames::used_outside_heap();
    demo::run();
    vm::settle();
    let leaked = frames::used_outside_heap() as i64 - frames_before as i64;
    log::info!("{}", smp_tests::ipi_totals());
    log::info!("{} {} frames_leaked={leaked}", heap::stats(), frames::stats());
    if leaked != 0 {
        log::error!("demo: error: frames_leaked={leaked}: the workload did not give back what it took");
        exit_held(ExitCode::Failure)
    }
    done_ok()
}

/// Picks the flush backend and fixes the static key: boot CPU, before the APs start.
fn choose_backend(features: &CpuFeatures, opts: &options::BootOptions) -> &'static dyn mm::hw::FlushBackend {
    static NATIVE: arch::backend::native::NativeIpi = arch::backend::native::NativeIpi;
    static PV: arch::backend::pv::Paravirt = arch::backend::pv::Paravirt;
    static INVLPGB: spin::Once<arch::backend::invlpgb::Invlpgb> = spin::Once::new();
    let real_invlpgb = arch::cpuid::CpuFeatures::detect().invlpgb;
    let backend: &'static dyn mm::hw::FlushBackend = if features.invlpgb {
        INVLPGB.call_once(|| arch::backend::invlpgb::Invlpgb {
            hardware: real_invlpgb,
        })
    } else if opts.tlb_backend == "pv" {
        &PV
    } else {
        &NATIVE
    };
    let skip = mm::table_free::flush_implies_ipi_broadcast(backend.kind(), features.invlpgb);
    arch::static_key::decide_tlb_ipi_broadcast(skip);
    log::info!(
        "tlb: backend={} invlpgb={} table-sync={}",
        backend.kind().name(),
        if features.invlpgb { "yes" } else { "no" },
        if arch::static_key::tlb_table_flush_implies_ipi_broadcast() {
            "skip"
        } else {
            "ipi"
        }
    );
    if opts.table_sync != mm::table_free::SyncMode::Decided {
        log::warn!("tlb: table sync mode overridden: {:?}", opts.table_sync);
    }
    backend
}

/// `hold=<ms>`: how long the final screen stays up before the exit.
pub static HOLD_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Ends the run with `code` after the `hold=` delay.
pub fn exit_held(code: ExitCode) -> ! {
    let ms = HOLD_MS.load(core::sync::atomic::Ordering::Relaxed);
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
