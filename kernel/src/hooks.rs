//! The kernel's side of every back-edge: the calls that lower layers make upward, each
//! declared as a trait by the layer that calls it and implemented here, once.
//!
//! - [`arch::hooks::KernelHooks`]: arch's timer tick and reschedule IPI call the
//!   scheduler; each AP, once its arch set-up is done, runs the kernel's AP main.
//! - [`crate::tlb::hw::Relax`]: the table freer's waits yield to the scheduler.
//!
//! (The panic handler's observer, [`crate::console::panic::PanicObserver`], is the test
//! harness's, registered by it when a test run starts.)

/// The kernel, as the lower layers see it.
struct Kernel;

impl arch::hooks::KernelHooks for Kernel {
    fn tick(&self) {
        crate::sched::on_tick();
    }

    fn reschedule(&self) {
        crate::sched::schedule();
    }

    fn ap_main(&self, cpu: usize) -> ! {
        crate::smp::ap_main(cpu)
    }
}

impl crate::tlb::hw::Relax for Kernel {
    fn relax(&self) {
        crate::sched::yield_now();
    }
}

/// Registers the kernel's hooks with arch and with the table freer: once, on the boot
/// CPU, before the APs start (the scheduler takes ticks from then on).
pub fn register() {
    arch::hooks::register(&Kernel);
    crate::tlb::hw::set_relax(&Kernel);
}
