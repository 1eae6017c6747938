use super::*;

/// A fabricated CPU: an AMD family 0x19 part, with INVLPGB when asked.
#[derive(Clone)]
struct FakeCpu {
    invlpgb: bool,
}

impl CpuIdReader for FakeCpu {
    fn cpuid2(&self, leaf: u32, _sub: u32) -> CpuIdResult {
        let z = CpuIdResult {
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        };
        match leaf {
            // "AuthenticAMD" in EBX, EDX, ECX.
            0 => CpuIdResult {
                eax: 0xd,
                ebx: 0x6874_7541,
                edx: 0x6974_6e65,
                ecx: 0x444d_4163,
            },
            // family 0xf + ext 0xa = 0x19; x2APIC (bit 21) and PCID (bit 17).
            1 => CpuIdResult {
                eax: 0x00a0_0f00,
                ebx: 0,
                ecx: (1 << 21) | (1 << 17),
                edx: 0,
            },
            0x8000_0000 => CpuIdResult {
                eax: 0x8000_0008,
                ..z
            },
            0x8000_0008 => CpuIdResult {
                ebx: if self.invlpgb { 1 << 3 } else { 0 },
                ..z
            },
            _ => z,
        }
    }
}

#[test]
fn decodes_fabricated_amd_cpu() {
    let f = CpuFeatures::from_cpuid(&CpuId::with_cpuid_reader(FakeCpu { invlpgb: true }));
    assert_eq!(f.vendor, Vendor::Amd);
    assert_eq!(f.family, 0x19);
    assert!(f.x2apic && f.pcid && f.invlpgb);
    assert!(!f.invpcid);
    let line = format!("{f}");
    assert_eq!(
        line,
        "cpu: amd family 25 x2apic=yes pcid=yes invpcid=no invlpgb=yes"
    );
}

#[test]
fn invlpgb_bit_is_ebx_bit_3_of_leaf_8000_0008() {
    let f = CpuFeatures::from_cpuid(&CpuId::with_cpuid_reader(FakeCpu { invlpgb: false }));
    assert!(!f.invlpgb);
}

#[test]
fn overrides_switch_single_features() {
    let mut f = CpuFeatures::from_cpuid(&CpuId::with_cpuid_reader(FakeCpu { invlpgb: false }));
    assert!(f.apply_override("invlpgb", true));
    assert!(f.invlpgb);
    assert!(f.apply_override("x2apic", false));
    assert!(!f.x2apic);
    assert!(!f.apply_override("avx9000", true));
}
