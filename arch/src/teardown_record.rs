//! Which step of releasing an address space each CPU is in: mm's [`TeardownSteps`]
//! record, one per CPU, printed by the page-fault and double-fault handlers
//! ([`crate::idt`]) as `fault during teardown: step=.. cpu=.. mm=.. root=..` (and by
//! the kernel's panic handler for any panic in a step).
//!
//! Written only by the CPU it belongs to (between the steps of `release`), read by that
//! CPU's fault handlers, which interrupt the writer. The scheduler suspends the record
//! while another task runs on the CPU ([`suspend`], [`resume`]), so that a fault in that
//! task is not reported as the release's.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::PhysAddr;
use mm::cpumask::MAX_CPUS;
use mm::hw::TeardownSteps;
use mm::teardown_step::TeardownStep;

/// One CPU's record: the step's number (0: none), the address space's id and root.
struct Record {
    step: AtomicU64,
    mm_id: AtomicU64,
    root: AtomicU64,
}

static RECORDS: [Record; MAX_CPUS] = [const {
    Record {
        step: AtomicU64::new(0),
        mm_id: AtomicU64::new(0),
        root: AtomicU64::new(0),
    }
}; MAX_CPUS];

// Ordering: the only reader is the writer's own CPU, in a fault handler that interrupts
// it, so the hardware needs no ordering (an interrupt sees the CPU's own stores in
// program order); SeqCst only keeps the compiler from moving the three stores past one
// another (Relaxed would let it), so that a handler never pairs a step with another
// release's address space. The step is cleared first and set last.

/// The per-CPU teardown record, as mm's [`TeardownSteps`].
pub struct TeardownRecord;

/// The record `release` is given (`mm::release::release_with_steps`).
pub static TEARDOWN_RECORD: TeardownRecord = TeardownRecord;

fn mine() -> &'static Record {
    &RECORDS[crate::percpu::cpu_index()]
}

impl TeardownSteps for TeardownRecord {
    fn enter(&self, mm_id: usize, root: PhysAddr, step: TeardownStep) {
        let r = mine();
        r.step.store(0, Ordering::SeqCst);
        r.mm_id.store(mm_id as u64, Ordering::SeqCst);
        r.root.store(root.as_u64(), Ordering::SeqCst);
        r.step.store(step as u64, Ordering::SeqCst);
        if step == TeardownStep::FreeRoot {
            refuse_a_root_still_loaded(root);
        }
    }

    fn leave(&self) {
        mine().step.store(0, Ordering::SeqCst);
    }
}

/// The last check before a root is freed: no CPU may still have it in CR3. A CPU that
/// does would take its next TLB miss through a freed (poisoned) page: the kernel half
/// is gone with it, so not even a double fault can be delivered, and QEMU ends in a
/// triple fault with no word. Panicking here says which CPU, address space and step
/// while the machine can still speak.
fn refuse_a_root_still_loaded(root: PhysAddr) {
    let on = crate::tlb::cpus_on_root(root);
    assert!(
        on.is_empty(),
        "teardown: freeing the root {:#x} while cpus {on:?} still have it in CR3 ({})",
        root.as_u64(),
        note()
    );
}

/// What the running CPU's record held, for [`resume`].
#[derive(Clone, Copy)]
pub struct Suspended(u64, u64, u64);

/// Clears the running CPU's record before it switches to another task, and returns it.
pub fn suspend() -> Suspended {
    let r = mine();
    let step = r.step.swap(0, Ordering::SeqCst);
    Suspended(
        step,
        r.mm_id.load(Ordering::SeqCst),
        r.root.load(Ordering::SeqCst),
    )
}

/// Puts back what [`suspend`] took, once the task that was switched away runs again
/// (on the same CPU: tasks never migrate).
pub fn resume(s: Suspended) {
    if s.0 == 0 {
        return;
    }
    let r = mine();
    r.mm_id.store(s.1, Ordering::SeqCst);
    r.root.store(s.2, Ordering::SeqCst);
    r.step.store(s.0, Ordering::SeqCst);
}

/// The running CPU's record: `step=.. cpu=.. mm=.. root=..` (see [`Note::in_teardown`]).
/// Reads atomics only, so it may run in any handler.
pub fn note() -> Note {
    let cpu = crate::percpu::cpu_index();
    let r = &RECORDS[cpu];
    let step = TeardownStep::from_number(r.step.load(Ordering::SeqCst) as u8);
    Note {
        cpu,
        step,
        mm_id: r.mm_id.load(Ordering::SeqCst),
        root: r.root.load(Ordering::SeqCst),
    }
}

/// See [`note`].
pub struct Note {
    cpu: usize,
    step: Option<TeardownStep>,
    mm_id: u64,
    root: u64,
}

impl Note {
    /// Whether the CPU was in a step of a release.
    pub fn in_teardown(&self) -> bool {
        self.step.is_some()
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step={} cpu={} mm={} root={:#x}",
            self.step.map_or("none", TeardownStep::name),
            self.cpu,
            self.mm_id,
            self.root
        )
    }
}

/// What a fault handler appends to its report: `; fault during teardown: step=..
/// cpu=.. mm=.. root=..` if the running CPU is in a step of a release, else nothing.
pub struct FaultSuffix;

impl fmt::Display for FaultSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let note = note();
        if note.in_teardown() {
            write!(f, "; fault during teardown: {note}")?;
        }
        Ok(())
    }
}
