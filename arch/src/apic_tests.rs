use super::*;

#[test]
fn mode_follows_cpuid_and_the_boot_option() {
    assert_eq!(choose_mode(true, false, 7), Ok(ApicMode::X2Apic));
    assert_eq!(choose_mode(true, true, 7), Ok(ApicMode::XApic));
    assert_eq!(choose_mode(false, false, 7), Ok(ApicMode::XApic));
    assert!(choose_mode(true, true, 287).is_err());
    assert!(choose_mode(false, false, 300).is_err());
}
