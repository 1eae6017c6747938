//! CPU discovery from ACPI's MADT, through the `acpi` crate.
//!
//! The MADT's Local APIC and Local x2APIC entries name every CPU; entries whose
//! "enabled" flag is clear are left out (the crate reports them as disabled; an
//! "online capable" CPU is hot-plug hardware that is not present yet).

extern crate alloc;
use acpi::platform::ProcessorState;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// Maps ACPI tables through the bootloader's physical-memory mapping.
#[derive(Clone, Copy)]
struct OffsetHandler {
    phys_offset: u64,
}

impl AcpiHandler for OffsetHandler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = NonNull::new((phys as u64 + self.phys_offset) as *mut T).expect("null ACPI mapping");
        // SAFETY: all physical memory is mapped at `phys_offset` (the first 4 GiB at least,
        // where firmware keeps its tables), and never unmapped.
        unsafe { PhysicalMapping::new(phys, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The CPUs the firmware reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTopology {
    /// APIC ID of the boot CPU according to the MADT.
    pub boot_apic_id: u32,
    /// APIC IDs of the enabled application processors, in MADT order.
    pub ap_apic_ids: Vec<u32>,
    /// Entries marked disabled (not started).
    pub disabled: usize,
}

/// Reads the MADT found through the RSDP at physical `rsdp`.
///
/// # Safety
/// `rsdp` must be the RSDP address handed over by the firmware, and all physical memory
/// must be mapped at `phys_offset`.
pub unsafe fn discover(rsdp: u64, phys_offset: u64) -> Result<CpuTopology, alloc::string::String> {
    use alloc::format;
    let handler = OffsetHandler { phys_offset };
    // SAFETY: per the function's contract.
    let tables = unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }
        .map_err(|e| format!("acpi: cannot read tables at RSDP {rsdp:#x}: {e:?}"))?;
    let info = tables
        .platform_info()
        .map_err(|e| format!("acpi: no usable MADT: {e:?}"))?;
    let procs = info.processor_info.ok_or("acpi: MADT lists no processors")?;
    let mut disabled = 0;
    let mut aps = Vec::new();
    for p in procs.application_processors.iter() {
        if p.state == ProcessorState::Disabled {
            disabled += 1;
        } else {
            aps.push(p.local_apic_id);
        }
    }
    Ok(CpuTopology {
        boot_apic_id: procs.boot_processor.local_apic_id,
        ap_apic_ids: aps,
        disabled,
    })
}
