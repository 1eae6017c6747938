//! The trace key gates every event site: in a boot without `trace=tlb` (the key off),
//! nothing is recorded even with rings installed and recording switched on. The key is
//! what makes tracing cost nothing when off; this shows that an event site reads it.
//! Test-only code.

use crate::ktests::oracle::{self, Op, Scenario, Tables};

ktest::kernel_test!(
    // A few boots show it (each other boot would only repeat the unmap).
    needs(native().and_cpus(2).and(up_to_cpus(4))) fn an_untraced_boot_records_nothing_with_recording_on() {
        if trace::gate::key_enabled() {
            // A `trace=tlb` boot: the key is on by design; the check needs it off.
            log::info!("trace_gate: traced boot, key on: nothing to check here");
            return;
        }
        assert!(
            !crate::tracing::enabled(),
            "trace_gate: key off but tracing enabled"
        );
        // Rings and the recording flag, as a traced run has them; only the key is off.
        trace::gate::install(arch::cpus::count(), 256, crate::tracing::clock);
        trace::gate::recording(true);
        let op = Op::Unmap {
            pages: 1,
            tables: Tables::Free,
            batch: true,
        };
        oracle::run(op, Scenario::A);
        trace::gate::recording(false);
        let kept: usize = trace::gate::collect().iter().map(|(evs, _)| evs.len()).sum();
        assert_eq!(
            kept, 0,
            "trace_gate: the key is off, yet an unmap recorded {kept} events"
        );
    }
);
