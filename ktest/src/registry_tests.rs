use super::needs::*;
use super::{Backends, Firmware, Machine, Suite};
use mm::hw::BackendKind;

const BIOS_4_NATIVE: Machine = Machine {
    cpus: 4,
    backend: BackendKind::NativeIpi,
    firmware: Some(Firmware::Bios),
    traced: false,
};

#[test]
fn a_machine_with_what_a_test_needs_runs_it() {
    assert_eq!(NONE.unmet(&BIOS_4_NATIVE), None);
    assert_eq!(cpus(4).unmet(&BIOS_4_NATIVE), None);
    assert_eq!(native().and(bios()).and_cpus(2).unmet(&BIOS_4_NATIVE), None);
}

#[test]
fn each_unmet_need_is_named() {
    assert_eq!(
        cpus(8).unmet(&BIOS_4_NATIVE).as_deref(),
        Some("needs 8 CPUs, has 4")
    );
    assert_eq!(
        up_to_cpus(2).unmet(&BIOS_4_NATIVE).as_deref(),
        Some("run with at most 2 CPUs (its time under TCG), has 4")
    );
    assert_eq!(up_to_cpus(4).unmet(&BIOS_4_NATIVE), None);
    assert_eq!(
        pv().unmet(&BIOS_4_NATIVE).as_deref(),
        Some("needs the pv backend, booted with native")
    );
    let invlpgb = Machine {
        backend: BackendKind::Invlpgb,
        ..BIOS_4_NATIVE
    };
    assert_eq!(
        handler_flush().unmet(&invlpgb).as_deref(),
        Some("needs the native or pv backend, booted with invlpgb")
    );
    let uefi = Machine {
        firmware: Some(Firmware::Uefi),
        ..BIOS_4_NATIVE
    };
    assert_eq!(
        bios().unmet(&uefi).as_deref(),
        Some("needs bios firmware, booted by uefi")
    );
    let unknown = Machine {
        firmware: None,
        ..BIOS_4_NATIVE
    };
    assert_eq!(
        bios().unmet(&unknown).as_deref(),
        Some("needs bios firmware, booted by unknown firmware")
    );
    assert_eq!(
        traced().and_cpus(2).unmet(&BIOS_4_NATIVE).as_deref(),
        Some("needs trace=tlb (the trace key is switched on at boot only)")
    );
    let traced_boot = Machine {
        traced: true,
        ..BIOS_4_NATIVE
    };
    assert_eq!(traced().and(native()).unmet(&traced_boot), None);
}

#[test]
fn and_keeps_the_suite_and_joins_the_needs() {
    let n = soak().and(pv()).and_cpus(2);
    assert_eq!(n.suite, Suite::Soak);
    assert_eq!(n.backends, Backends::only(BackendKind::Paravirt));
    assert!(n.about_the_backend() && !cpus(2).about_the_backend());
    assert!(per_backend().about_the_backend());
    assert_eq!(n.cpus, 2);
    assert_eq!(watchdog().and(cpus(2)).cpus, 2);
    assert_eq!(pv().and(soak()).suite, Suite::Soak, "either order");
    let both = up_to_cpus(16).and(up_to_cpus(8)).and(scale());
    assert_eq!((both.max_cpus, both.about_scale), (8, true));
    assert_eq!(Suite::from_name("watchdog"), Some(Suite::Watchdog));
    assert_eq!(Suite::from_name("slow"), None);
}
