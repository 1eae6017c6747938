//! A task: a kernel stack, a saved stack pointer, and optionally an address space.

extern crate alloc;
use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use mm::addr_space::AddressSpace;

/// Kernel stack size of a spawned task (heap-allocated; no guard page).
pub const TASK_STACK: usize = 64 * 1024;

/// Can run.
pub const RUNNABLE: u8 = 0;
/// Waits for its wake-up tick.
pub const SLEEPING: u8 = 1;
/// Finished; its stack is freed by the next task on the CPU.
pub const DEAD: u8 = 2;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// One schedulable context, pinned to one CPU.
pub struct Task {
    /// Unique id (for debugging).
    #[allow(dead_code)]
    pub id: usize,
    /// Name, for logs.
    pub name: &'static str,
    /// The CPU it runs on (tasks never migrate).
    pub cpu: usize,
    pub(super) rsp: UnsafeCell<u64>,
    _stack: Option<Box<[u8]>>,
    /// Address space (None: a kernel thread, which runs lazily on the previous one).
    pub(super) mm: UnsafeCell<Option<&'static AddressSpace>>,
    pub(super) state: AtomicU8,
    pub(super) wake_tick: AtomicU64,
    pub(super) entry: spin::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Set when the task's function has returned.
    pub done: AtomicBool,
}

// SAFETY: `rsp` and `mm` are only touched by the task's own CPU with interrupts off
// (in `schedule` and `use_mm`); the rest is atomic or locked.
unsafe impl Sync for Task {}
// SAFETY: as above.
unsafe impl Send for Task {}

impl Task {
    /// The context a CPU booted in (its idle task); its stack is the boot stack.
    pub fn boot_context(cpu: usize) -> Self {
        Self::make("idle", cpu, None, None, None)
    }

    /// A new task that will run `f` on `cpu`, in `mm` if given.
    pub fn spawn(
        name: &'static str,
        cpu: usize,
        mm: Option<&'static AddressSpace>,
        f: Box<dyn FnOnce() + Send>,
    ) -> Self {
        let stack: Box<[u8]> = alloc::vec![0u8; TASK_STACK].into_boxed_slice();
        let top = (stack.as_ptr() as u64 + TASK_STACK as u64) & !0xf;
        let t = Self::make(name, cpu, Some(stack), mm, Some(f));
        // SAFETY: `top` is the aligned end of the task's own stack.
        unsafe { *t.rsp.get() = arch::context::initial_stack(top, super::task_entry) };
        t
    }

    fn make(
        name: &'static str,
        cpu: usize,
        stack: Option<Box<[u8]>>,
        mm: Option<&'static AddressSpace>,
        f: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            cpu,
            rsp: UnsafeCell::new(0),
            _stack: stack,
            mm: UnsafeCell::new(mm),
            state: AtomicU8::new(RUNNABLE),
            wake_tick: AtomicU64::new(0),
            entry: spin::Mutex::new(f),
            done: AtomicBool::new(false),
        }
    }

    pub(super) fn mm(&self) -> Option<&'static AddressSpace> {
        // SAFETY: read on the task's own CPU with interrupts off (see `Sync` above).
        unsafe { *self.mm.get() }
    }
}
