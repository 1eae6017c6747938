//! A hand-made traced boot for the unit tests: two runs, printed as the kernel prints
//! them (each CPU's events oldest first, CPU after CPU). The first is a forced broadcast
//! on 3 CPUs (1 GHz TSC: a tick is a nanosecond) with an End whose Begin was lost and a
//! ring that lost events; the second, the key's skip on 2 CPUs (2 GHz) whose flush_end
//! was lost (the gather's end cuts it) and whose sync never ends in the trace.

/// The lines, with boot noise around them.
pub const LINES: &str = "\
gatherOS 0.1.0: booted via bios
trace-run: op=collapse scen=C pages=512 sync=broadcast forced=true walkers=0 tsc_hz=1000000000 cpus=3
trace-event: cpu=0 tsc=1000 event=entry_clear mm=6 va=0x0 level=2 table=0x5000
trace-event: cpu=0 tsc=1100 event=flush_begin mm=6 gen=5 start=0x0 end=0xffffffffffffffff targets=1,2 lazy=1,2 lazy_cpus=included backend=native
trace-event: cpu=0 tsc=1200 event=ipi_send reason=flush id=0x1 targets=1,2
trace-event: cpu=0 tsc=1600 event=ipi_acked reason=flush id=0x1
trace-event: cpu=0 tsc=1650 event=flush_run mm=6 gen=5 from=0 result=full
trace-event: cpu=0 tsc=1700 event=flush_end mm=6 gen=5 interrupted=1,2
trace-event: cpu=0 tsc=1800 event=sync_begin mm=6 gen=5 decision=broadcast cpus=1,2
trace-event: cpu=0 tsc=1850 event=ipi_send reason=sync id=0x2 targets=1,2
trace-event: cpu=0 tsc=2100 event=ipi_acked reason=sync id=0x2
trace-event: cpu=0 tsc=2150 event=sync_end mm=6 decision=broadcast
trace-event: cpu=0 tsc=2500 event=table_freed mm=6 table=0x5000 batch=0x0
trace-event: cpu=1 tsc=1300 event=ipi_run reason=flush id=0x1 from=0
trace-event: cpu=1 tsc=1350 event=flush_run mm=6 gen=5 from=0 result=left
trace-event: cpu=1 tsc=1400 event=ipi_ran reason=flush id=0x1
trace-event: cpu=1 tsc=1900 event=ipi_run reason=sync id=0x2 from=0
trace-event: cpu=1 tsc=1950 event=ipi_ran reason=sync id=0x2
trace-event: cpu=2 tsc=1250 event=ipi_ran reason=call id=0x9
trace-event: cpu=2 tsc=1310 event=ipi_run reason=flush id=0x1 from=0
trace-event: cpu=2 tsc=1360 event=flush_run mm=6 gen=5 from=0 result=left
trace-event: cpu=2 tsc=1410 event=ipi_ran reason=flush id=0x1
trace-event: cpu=2 tsc=1900 event=ipi_run reason=sync id=0x2 from=0
trace-event: cpu=2 tsc=1950 event=ipi_ran reason=sync id=0x2
trace-lost: cpu=2 overwritten=7 torn=0
trace-run-end
gatherOS smp=3 ... (a bench line)
trace-run: op=collapse scen=C pages=512 sync=skip forced=false walkers=0 tsc_hz=2000000000 cpus=2
trace-event: cpu=0 tsc=5000 event=gather_begin mm=4
trace-event: cpu=0 tsc=5100 event=flush_begin mm=4 gen=5 start=0x0 end=0x200000 targets=1 lazy=1 lazy_cpus=included backend=native
trace-event: cpu=0 tsc=5200 event=ipi_send reason=flush id=0x3 targets=1
trace-event: cpu=0 tsc=5300 event=ipi_acked reason=flush id=0x3
trace-event: cpu=0 tsc=5400 event=gather_end mm=4 start=0x0 end=0x200000 levels=0x2 tables=1 fullmm=0
trace-event: cpu=0 tsc=5500 event=sync_begin mm=4 gen=5 decision=skip cpus=-
trace-event: cpu=1 tsc=5250 event=ipi_run reason=flush id=0x3 from=0
trace-event: cpu=1 tsc=5260 event=flush_run mm=4 gen=5 from=0 result=left
trace-event: cpu=1 tsc=5270 event=ipi_ran reason=flush id=0x3
trace-run-end
gatherOS: done (ok)
";

/// The runs of [`LINES`].
pub fn runs() -> Vec<super::collect::Run> {
    let mut c = super::collect::Collector::default();
    for l in LINES.lines() {
        c.line(l);
    }
    c.finish()
}
