use super::*;

#[test]
fn snapshots_add_subtract_and_print() {
    let c = IpiCounters::new();
    c.count_sent(IpiReason::Flush);
    c.count_sent(IpiReason::Flush);
    c.count_received(IpiReason::Sync);
    let a = c.snapshot();
    let sum = a + a;
    assert_eq!(sum.sent[IpiReason::Flush as usize], 4);
    assert_eq!(sum - a, a);
    assert_eq!(
        format!("{a}"),
        "ipi-stats: call_sent=0 call_recv=0 flush_sent=2 flush_recv=0 sync_sent=0 sync_recv=1 resched_sent=0 resched_recv=0 cal_irqs=0"
    );
}
