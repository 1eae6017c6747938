//! The gatherOS kernel: entry point and initialisation order, nothing else.
#![no_std]
#![no_main]

extern crate alloc;

mod bench;
mod console;
mod demo;
mod exit;
mod hooks;
mod ktests;
mod mem;
mod options;
mod sched;
mod smp;
mod tlb;
mod tracing;
mod user_space;
mod workload;

use alloc::boxed::Box;
use arch::cpuid::CpuFeatures;
use arch::gdt::CpuTables;
use arch::qemu_exit::ExitCode;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::info::MemoryRegionKind;
use bootloader_api::{BootInfo, entry_point};
use ktest::registry::Firmware;

/// How the bootloader must set the kernel up.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    // Keep the bootloader's own mappings below the kernel heap (see mem::layout).
    config.mappings.dynamic_range_start = Some(mem::layout::BOOTLOADER_DYNAMIC_START);
    config.mappings.dynamic_range_end = Some(mem::layout::BOOTLOADER_DYNAMIC_END);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// Which firmware loaded us, told apart by the memory map's region kinds.
fn firmware(boot_info: &BootInfo) -> Option<Firmware> {
    let kinds = || boot_info.memory_regions.iter().map(|r| r.kind);
    if kinds().any(|k| matches!(k, MemoryRegionKind::UnknownUefi(_))) {
        Some(Firmware::Uefi)
    } else if kinds().any(|k| matches!(k, MemoryRegionKind::UnknownBios(_))) {
        Some(Firmware::Bios)
    } else {
        None
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
    console::logger::init();
    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("bootloader did not map physical memory");
    mem::paging::init(phys_offset);
    let usable = mem::frames::init(&boot_info.memory_regions, phys_offset);
    mem::kernel_space::init();
    mem::heap::init();
    console::screen::init(boot_info.framebuffer.take());
    arch::smp::install_vectors();
    Box::leak(Box::new(CpuTables::new())).load();
    arch::idt::load();
    // The double-fault handler reports from the kernel's tables, which are never freed.
    arch::idt::set_fault_root(mem::kernel_space::kernel_mm().root().as_u64());

    let (opts, errors) = options::BootOptions::parse(option_text(boot_info));
    let opts = options::keep(opts);
    log::set_max_level(opts.log_level);
    exit::set_hold_ms(opts.hold_ms);
    arch::watchdog::set_bound_ms(opts.watchdog_ms);
    log::info!(
        "gatherOS {}: booted via {}, {} MiB usable",
        env!("CARGO_PKG_VERSION"),
        firmware(boot_info).map_or("unknown firmware", Firmware::name),
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
    log::info!("{}", mem::frames::stats());
    tlb::init(tlb::backend::choose_backend(&features, opts));
    match opts.table_sync {
        tlb::faults::TableSync::Mode(mode) => tlb::FREER.set_mode(mode),
        tlb::faults::TableSync::ForceSkip => tlb::faults::Fault::ForceSkip.set(true),
    }
    tlb::FREER.set_form(opts.sync_form);
    tlb::set_round_mode(opts.round);
    log::info!("tlb: round={}", opts.round.name());
    sched::set_idle_policy(opts.idle.unwrap_or(sched::DEFAULT_IDLE));
    log::info!("idle: leave_mm={}", sched::idle_policy());
    tlb::faults::Fault::NoBatchPages.set(opts.table_batch_fails);
    if let Some(fault) = opts.tlb_break {
        log::warn!("tlb: test-only fault: tlb.break={}", fault.name());
        fault.set(true);
    }
    if opts.trace {
        tracing::enable();
    }
    mem::huge_pool::reserve_huge_blocks(4);
    hooks::register();
    smp::init(
        boot_info.rsdp_addr.into_option(),
        &boot_info.memory_regions,
        &features,
        opts.force_xapic,
    );
    tracing::install();

    if let Some(test) = &opts.test {
        // The one call from the product path into the tests: `test=on` hands the boot
        // to the in-kernel harness.
        ktests::harness::run(test, firmware(boot_info));
    }
    match opts.bench {
        Some("smp") => bench::smp::run(),
        Some("tlb") => {
            bench::tlb::run(&opts.bench_tlb);
            exit::done_ok()
        }
        Some("shootdown") => match bench::shootdown::run(opts.bench_tlb.shootdown_iters) {
            Ok(()) => {
                log::info!("bench: done");
                exit::done_ok()
            }
            Err(e) => {
                log::error!("bench-shootdown: {e}");
                exit::exit_held(ExitCode::Failure)
            }
        },
        _ => {}
    }
    tlb::settle();
    let frames_before = mem::frames_used_outside_heap();
    tracing::record_boot();
    demo::run();
    tlb::settle();
    tracing::dump(format_args!("demo"));
    let leaked = mem::frames_used_outside_heap() as i64 - frames_before as i64;
    log::info!("{}", arch::cpus::ipi_totals());
    log::info!(
        "{} {} frames_leaked={leaked}",
        mem::heap::stats(),
        mem::frames::stats()
    );
    if leaked != 0 {
        log::error!("demo: error: frames_leaked={leaked}: the workload did not give back what it took");
        exit::exit_held(ExitCode::Failure)
    }
    exit::done_ok()
}
