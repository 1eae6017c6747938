use super::*;

/// A scenario C line under `never`: every idle CPU takes the flush IPI of a freed table.
const NEVER: &str = "gatherOS smp=4 scen=C pages=1 tables=free op=unmap backend=native sync=skip walkers=0 ns_median=100000 ns_p99=120000 tlb_ipis_per_op=3.00 cal_ipis_per_op=3.00 sync_ipis_per_op=0.00 tsc_median=250000 tsc_p99=300000 iters=30 pt_freed_kb=4 apic=x2apic levels=4 idle=never cycle_ns_median=400000 catchups_per_op=0.00 idle_left_per_op=0.00";

fn record(text: &str) -> Record {
    Record::parse(text).unwrap_or_else(|| panic!("not a line: {text}"))
}

#[test]
fn each_policy_is_set_against_never_in_the_same_configuration() {
    let always = NEVER
        .replace("idle=never", "idle=always")
        .replace("tlb_ipis_per_op=3.00", "tlb_ipis_per_op=0.00")
        .replace("ns_median=100000", "ns_median=40000")
        .replace("cycle_ns_median=400000", "cycle_ns_median=500000")
        .replace("idle_left_per_op=0.00", "idle_left_per_op=3.00");
    // The same policy at another CPU count has no `never` twin: no line.
    let other_smp = always.replace("smp=4", "smp=8");
    let records = [record(NEVER), record(&always), record(&other_smp)];
    let out = idle_costs(&records);
    assert_eq!(
        out,
        "idle: os=gatherOS smp=4 scen=C pages=1 tables=free op=unmap backend=native sync=skip walkers=0 idle=always tlb_ipis_per_op=0.00/3.00 op_over_never=0.40 cycle_over_never=1.25 catchups_per_op=0.00 idle_left_per_op=3.00\n"
    );
}

#[test]
fn never_itself_other_scenarios_and_lines_without_a_cycle_are_left_out() {
    let deep_a = NEVER
        .replace("scen=C", "scen=A")
        .replace("idle=never", "idle=deep");
    let never_a = NEVER.replace("scen=C", "scen=A");
    assert_eq!(
        idle_costs(&[record(NEVER), record(&deep_a), record(&never_a)]),
        ""
    );
    // A line without the cycle (an earlier one) still compares the op.
    let cut = |l: &str| l.split(" cycle_ns_median").next().unwrap().to_string();
    let deep = cut(&NEVER.replace("idle=never", "idle=deep"));
    let out = idle_costs(&[record(&cut(NEVER)), record(&deep)]);
    assert!(
        out.contains("idle=deep tlb_ipis_per_op=3.00/3.00 op_over_never=1.00 catchups_per_op= "),
        "{out}"
    );
    assert!(!out.contains("cycle_over_never"), "{out}");
}
