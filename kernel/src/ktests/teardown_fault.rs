//! A fault in the middle of releasing an address space says which CPU, which address
//! space and which step before the run dies (`arch::teardown_record`, printed by the
//! page-fault and double-fault handlers, `arch::idt`).
//!
//! Each test ends its boot (a panic), so they run where a boot costs least: at
//! `-smp 2` only (`needs(cpus(2).and(up_to_cpus(2)))`: one configuration of `cargo
//! test`), on CPU 1, so that the report must name a CPU other than the harness's.

use mm::addr::{PhysAddr, VirtAddr};
use mm::entry::Entry;
use mm::hw::TeardownSteps;
use mm::level::Level;
use mm::pt_walk::PathWalk;
use mm::teardown_step::TeardownStep;

use crate::mem::layout::NEVER_MAPPED;
use crate::mem::paging::phys_offset;
use crate::mem::phys::MEM;
use crate::{sched, user_space};

/// The test's page.
const X: u64 = 0x4000_0000;

ktest::kernel_test!(needs(cpus(2).and(up_to_cpus(2))) should_panic(expected = "(page fault); fault during teardown: step=unmap cpu=1 mm=") fn a_page_fault_in_a_teardown_step_names_the_cpu_the_address_space_and_the_step() {
    let mm = user_space::new_address_space();
    crate::workload::map_page(mm, X);
    {
        // Corrupt the PUD entry on the way to X: it now points to a "PMD table" at the
        // physical address that the physical-memory mapping puts at `NEVER_MAPPED`, so
        // the teardown's walk (the `unmap` step) faults when it reads that table.
        let locked = mm.lock();
        let pud = PathWalk::new(&MEM, mm.root(), VirtAddr::new(X))
            .find(|s| s.level == Level::Pud)
            .expect("X has a PUD entry");
        let nowhere = PhysAddr::new(NEVER_MAPPED - phys_offset());
        pud.slot.install(&locked, Entry::table(nowhere, VirtAddr::new(X)));
    }
    sched::spawn("teardown", 1, None, move || user_space::destroy(mm)).join(crate::sched::JOIN_BOUND_MS);
    unreachable!("the teardown of a corrupted address space returned");
});

ktest::kernel_test!(needs(cpus(2).and(up_to_cpus(2))) should_panic(expected = "(double fault); fault during teardown: step=sweep-tables cpu=1 mm=") fn a_double_fault_in_a_teardown_step_is_reported_from_its_own_stack() {
    // A fault whose delivery faults too: CPU 1, running the address space (its root in
    // CR3) and recorded in a step of its release, loses its stack, so the page fault
    // cannot push its frame and becomes a double fault, which runs on its IST stack
    // (reachable from the user root: the kernel half is shared), moves to the kernel's
    // root and reports the step (its `cr3=` is the user root it found).
    let mm = user_space::new_address_space();
    sched::spawn("teardown", 1, Some(mm), move || {
        arch::teardown_record::TEARDOWN_RECORD.enter(mm.id(), mm.root(), TeardownStep::SweepTables);
        // SAFETY: deliberately moves the stack to a page that is never mapped and
        // pushes: the push and the page fault's delivery both fault, and the double
        // fault ends this boot; nothing runs on the bad stack.
        unsafe {
            core::arch::asm!(
                "mov rsp, {top}",
                "push rax",
                top = in(reg) NEVER_MAPPED + 4096,
                options(noreturn)
            )
        }
    })
    .join(crate::sched::JOIN_BOUND_MS);
    unreachable!("the double fault returned");
});

ktest::kernel_test!(needs(cpus(2).and(up_to_cpus(2))) should_panic(expected = "still have it in CR3 (step=free-root cpu=0 mm=") fn freeing_a_root_another_cpu_still_has_in_cr3_is_refused_with_a_report() {
    // What a release that did not wait would do (with the INVLPGB backend the flush runs
    // nothing remotely, so only the wait keeps the root): CPU 1 runs the address space,
    // and CPU 0 reaches the free-root step. The step's check must refuse, naming CPU 1,
    // before the frame is poisoned under CPU 1's CR3 (after which that CPU dies in a
    // triple fault with no word).
    use core::sync::atomic::{AtomicBool, Ordering};
    // SeqCst (Release/Acquire would do): CPU 1 says it has switched to mm.
    static RUNNING: AtomicBool = AtomicBool::new(false);
    let mm = user_space::new_address_space();
    let _runner = sched::spawn("runner", 1, Some(mm), || {
        RUNNING.store(true, Ordering::SeqCst);
        loop {
            core::hint::spin_loop();
        }
    });
    while !RUNNING.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    arch::teardown_record::TEARDOWN_RECORD.enter(mm.id(), mm.root(), TeardownStep::FreeRoot);
    unreachable!("the free-root step let a root still in CR3 go");
});
