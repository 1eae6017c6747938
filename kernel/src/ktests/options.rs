//! Boot options: known keys parse, unknown keys and bad values are reported and leave the
//! defaults.

use crate::options::{BootOptions, KEYS, OptionError};
use log::LevelFilter;

ktest::kernel_test!(
    fn parses_known_keys() {
        let (o, errors) = BootOptions::parse(
            "log=debug apic=xapic test=on test.filter=gather test.filter=flush test.start=3 cpuid.invlpgb=on clearcpuid=pcid tlb.backend=pv tlb.table_sync=force-skip tlb.table_batch=fail",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(o.log_level, LevelFilter::Debug);
        assert!(o.force_xapic);
        let t = o.test.unwrap();
        assert_eq!(t.filters, ["gather", "flush"]);
        assert_eq!(t.start, 3);
        assert_eq!(o.cpuid_overrides, [("invlpgb", true), ("pcid", false)]);
        assert_eq!(o.tlb_backend, "pv");
        assert_eq!(o.table_sync, crate::tlb::faults::TableSync::ForceSkip);
        assert!(o.table_batch_fails);
    }
);

ktest::kernel_test!(
    fn reports_unknown_keys_and_bad_values_and_keeps_defaults() {
        let (o, errors) = BootOptions::parse("frobnicate=1 log=loud test.start=x");
        assert_eq!(o.log_level, LevelFilter::Info);
        assert_eq!(
            errors,
            [
                OptionError::UnknownKey("frobnicate"),
                OptionError::BadValue {
                    key: "log",
                    value: "loud",
                    expected: "error|warn|info|debug|trace"
                },
                OptionError::BadValue {
                    key: "test.start",
                    value: "x",
                    expected: "a number"
                },
            ]
        );
    }
);

ktest::kernel_test!(
    fn parses_the_benchmark_matrix_and_refuses_unknown_ops() {
        use bench_spec::{Idle, Op, Scenario, Sync, Walkers};
        let (o, errors) = BootOptions::parse(
            "bench=tlb bench.ops=unshare,collapse bench.scen=C,A bench.iters=0 bench.syncs=wait,broadcast bench.walkers=all,0 bench.idle=always,never",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(o.bench_tlb.ops, [Op::Unshare, Op::Collapse]);
        assert_eq!(o.bench_tlb.scenarios, [Scenario::C, Scenario::A]);
        assert_eq!(o.bench_tlb.iters, 1);
        assert_eq!(o.bench_tlb.syncs, [Sync::Wait, Sync::Broadcast]);
        assert_eq!(o.bench_tlb.walkers, [Walkers::All, Walkers::None]);
        assert_eq!(o.bench_tlb.idles, [Idle::Always, Idle::Never]);
        let (o, errors) = BootOptions::parse(
            "bench.ops=unmap,share bench.scen=D bench.syncs=targeted,skip bench.walkers=1 bench.idle=deep,sometimes",
        );
        assert_eq!(o.bench_tlb.ops, Op::ALL);
        assert_eq!(o.bench_tlb.scenarios, Scenario::ALL);
        assert_eq!(o.bench_tlb.syncs, [], "skip is not a form; the boot's form");
        assert_eq!(o.bench_tlb.walkers, [Walkers::None]);
        assert_eq!(o.bench_tlb.idles, [], "the boot's policy");
        assert_eq!(errors.len(), 5, "{errors:?}");
    }
);

ktest::kernel_test!(
    fn every_value_a_choice_key_lists_is_taken_and_others_are_refused_with_the_list() {
        for key in KEYS.iter().filter(|k| k.accepts.contains('|')) {
            for value in key.accepts.split('|').chain(["zzz"]) {
                let text = alloc::format!("{}={value}", key.name);
                let text: &'static str = alloc::boxed::Box::leak(text.into_boxed_str());
                let (_, errors) = BootOptions::parse(text);
                if value == "zzz" {
                    let refusal = OptionError::BadValue {
                        key: key.name,
                        value,
                        expected: key.accepts,
                    };
                    assert_eq!(errors, [refusal], "{text}");
                } else {
                    assert!(errors.is_empty(), "{text} is listed but refused: {errors:?}");
                }
            }
        }
    }
);

ktest::kernel_test!(
    fn the_booted_sync_form_is_the_one_in_force() {
        // `tlb.sync=` (or its default) must reach the table freer: the race tests set a
        // form per run and would not notice a boot that kept the freer's own default.
        let booted = crate::options::boot_options().sync_form;
        assert_eq!(
            crate::tlb::FREER.form(),
            booted,
            "tlb.sync={} booted, the freer runs {}",
            booted.name(),
            crate::tlb::FREER.form().name()
        );
    }
);
