//! Processor features gatherOS cares about, read once with `raw-cpuid`.
//!
//! Detection goes through [`CpuFeatures::from_cpuid`], which takes any CPUID source, so the
//! decision logic built on top (x2APIC or xAPIC, INVLPGB or IPIs) is tested on the host
//! with fabricated CPUID answers. Boot options can override single features
//! ([`CpuFeatures::apply_override`]) to exercise paths QEMU cannot run.

use core::fmt;
use raw_cpuid::{CpuId, CpuIdReader, CpuIdResult};

/// CPU vendor, as far as gatherOS distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// "GenuineIntel".
    Intel,
    /// "AuthenticAMD".
    Amd,
    /// Anything else (e.g. another emulator's string).
    Other,
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vendor::Intel => "intel",
            Vendor::Amd => "amd",
            Vendor::Other => "other",
        })
    }
}

/// The features of the boot CPU that shape gatherOS's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFeatures {
    /// Vendor string, classified.
    pub vendor: Vendor,
    /// Display family (base family plus extended family).
    pub family: u8,
    /// x2APIC mode is available (CPUID.1:ECX[21]).
    pub x2apic: bool,
    /// Process-context identifiers (CPUID.1:ECX[17]).
    pub pcid: bool,
    /// The INVPCID instruction (CPUID.7.0:EBX[10]).
    pub invpcid: bool,
    /// AMD's INVLPGB/TLBSYNC broadcast invalidation (CPUID.8000_0008:EBX[3]).
    pub invlpgb: bool,
    /// The TSC runs at a constant rate in all power states (CPUID.8000_0007:EDX[8]).
    pub invariant_tsc: bool,
}

/// The real CPUID instruction as a [`CpuIdReader`].
#[derive(Clone, Copy)]
pub struct NativeCpuId;

impl CpuIdReader for NativeCpuId {
    fn cpuid2(&self, leaf: u32, subleaf: u32) -> CpuIdResult {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuIdResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
}

impl CpuFeatures {
    /// Reads the running CPU's features.
    pub fn detect() -> Self {
        Self::from_cpuid(&CpuId::with_cpuid_reader(NativeCpuId))
    }

    /// Reads features from any CPUID source (real or fabricated).
    pub fn from_cpuid<R: CpuIdReader>(cpuid: &CpuId<R>) -> Self {
        let vendor = match cpuid.get_vendor_info().as_ref().map(|v| v.as_str()) {
            Some("GenuineIntel") => Vendor::Intel,
            Some("AuthenticAMD") => Vendor::Amd,
            _ => Vendor::Other,
        };
        let fi = cpuid.get_feature_info();
        Self {
            vendor,
            family: fi.as_ref().map_or(0, |f| f.family_id()),
            x2apic: fi.as_ref().is_some_and(|f| f.has_x2apic()),
            pcid: fi.as_ref().is_some_and(|f| f.has_pcid()),
            invpcid: cpuid.get_extended_feature_info().is_some_and(|f| f.has_invpcid()),
            invlpgb: cpuid
                .get_processor_capacity_feature_info()
                .is_some_and(|f| f.has_invlpgb()),
            invariant_tsc: cpuid
                .get_advanced_power_mgmt_info()
                .is_some_and(|f| f.has_invariant_tsc()),
        }
    }

    /// Forces one feature on or off (boot option `cpuid.<name>=on|off`). Returns false for an
    /// unknown feature name.
    pub fn apply_override(&mut self, name: &str, on: bool) -> bool {
        let slot = match name {
            "x2apic" => &mut self.x2apic,
            "pcid" => &mut self.pcid,
            "invpcid" => &mut self.invpcid,
            "invlpgb" => &mut self.invlpgb,
            _ => return false,
        };
        *slot = on;
        true
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The boot log's `cpu:` line.
impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu: {} family {} x2apic={} pcid={} invpcid={} invlpgb={}",
            self.vendor,
            self.family,
            yes_no(self.x2apic),
            yes_no(self.pcid),
            yes_no(self.invpcid),
            yes_no(self.invlpgb)
        )
    }
}

#[cfg(test)]
#[path = "cpuid_tests.rs"]
mod tests;
