//! Boot options: known keys parse, unknown keys and bad values are reported and leave the
//! defaults.

use crate::options::{BootOptions, OptionError};
use log::LevelFilter;

arch::kernel_test!(
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

arch::kernel_test!(
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

arch::kernel_test!(
    fn parses_the_benchmark_matrix_and_refuses_unknown_ops() {
        use bench_spec::{Op, Scenario};
        let (o, errors) =
            BootOptions::parse("bench=tlb bench.ops=unshare,collapse bench.scen=C,A bench.iters=0");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(o.bench_tlb.ops, [Op::Unshare, Op::Collapse]);
        assert_eq!(o.bench_tlb.scenarios, [Scenario::C, Scenario::A]);
        assert_eq!(o.bench_tlb.iters, 1);
        let (o, errors) = BootOptions::parse("bench.ops=unmap,share bench.scen=D");
        assert_eq!(o.bench_tlb.ops, Op::ALL);
        assert_eq!(o.bench_tlb.scenarios, Scenario::ALL);
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
);
