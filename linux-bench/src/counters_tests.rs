use super::*;

#[test]
fn sums_every_cpu_column_of_the_named_rows() {
    let text = "           CPU0       CPU1\n  0:         40          0   IO-APIC   2-edge      timer\n\
                CAL:         12          7   Function call interrupts\n\
                TLB:          3          4   TLB shootdowns\n";
    assert_eq!(parse_interrupts(text), Ipis { tlb: 7, cal: 19 });
    assert_eq!(parse_interrupts("nothing"), Ipis::default());
}

#[test]
fn reads_vm_pte() {
    assert_eq!(parse_vm_pte("Name:\tx\nVmPTE:\t      48 kB\nVmSwap:\t0 kB\n"), 48);
}
