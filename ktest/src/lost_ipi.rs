//! Fault injection on the cross-call path: the next call IPI to a chosen CPU is lost on
//! the way (not sent), as if the interrupt had been dropped; its request stays queued,
//! unserved, until the watchdog reports the wait and its kick resends the IPI. The
//! watchdog's tests (`kernel/src/ktests/watchdog.rs`) use it; it reaches the send path
//! through [`arch::ipi::CallIpiFilter`].

use core::sync::atomic::{AtomicUsize, Ordering};

/// The CPU whose next call IPI is lost (usize::MAX: none).
static LOSE_CALL_IPI_TO: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The filter installed on the send path.
struct LoseNext;

impl arch::ipi::CallIpiFilter for LoseNext {
    /// A plain load first, so that the send path writes no shared line when nothing is
    /// injected; SeqCst on the take, so that one IPI only is lost per injection.
    fn drops(&self, target: usize) -> bool {
        LOSE_CALL_IPI_TO.load(Ordering::Relaxed) == target
            && LOSE_CALL_IPI_TO
                .compare_exchange(target, usize::MAX, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }
}

/// Loses the next call IPI to `cpu` (its request stays queued, unserved).
pub fn lose_next_call_ipi_to(cpu: usize) {
    arch::ipi::install_call_ipi_filter(&LoseNext);
    LOSE_CALL_IPI_TO.store(cpu, Ordering::SeqCst);
}
