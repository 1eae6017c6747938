//! The kernel heap: `linked_list_allocator` over pages mapped at a fixed address, grown
//! from the frame allocator when it runs out.
//!
//! Sizing: [`init`] maps [`HEAP_FLOOR`] early in boot; once the CPU count is known,
//! [`reserve_for_cpus`] grows it to the floor plus [`HEAP_PER_CPU`] per CPU (before any
//! AP starts, so a machine too small for its CPU count is told so before any work). After
//! that the heap still grows on demand, in [`GROW_STEP`] steps, until [`HEAP_MAX`] or the
//! frames run out; only then does an allocation fail, and the failure is reported with
//! the size asked, the heap's use and the free frames (`heap: alloc-failed ...`).
//!
//! Growing maps pages into the kernel's address space through
//! [`super::kernel_space::map_page`] (the one kernel mapping path). Every address space
//! shares the kernel half's lower-level tables (their PML4 entries are copies), and the
//! heap's PML4 entry exists from [`init`] on, so a page mapped here is visible in every
//! address space. Mapping a page that was not present needs no TLB flush on x86:
//! not-present entries are never cached (SDM Vol. 3A, 4.10.2.3). The heap lock, held
//! with interrupts off, serialises growers; nothing else maps into the heap's range.

use arch::irq as interrupts;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::Heap;
use mm::addr::PhysAddr;
use mm::entry::EntryFlags;
use mm::hw::PhysMem;

use crate::mem::layout::HEAP_START;
use crate::mem::{kernel_space, phys::MEM};

/// The heap mapped at boot, whatever the machine.
pub const HEAP_FLOOR: usize = 16 << 20;
/// Heap bytes set aside per CPU at boot: its descriptor tables and IST stacks, its
/// per-CPU TLB and scheduler state, and room for one 64 KiB task stack (tests and the
/// demo run a task on every CPU). Measured at `-smp 288`: 65 KiB per CPU resident
/// after the demo (heap used 18.8 MiB at 288 CPUs, 4.2 MiB at 64).
pub const HEAP_PER_CPU: usize = 192 << 10;
/// The most the heap may grow to (its virtual range; AP stacks start 8 TiB above).
pub const HEAP_MAX: usize = 64 << 30;
/// The smallest step the heap grows by on demand.
pub const GROW_STEP: usize = 1 << 20;

/// The heap lock is held with interrupts off: an interrupt handler (or an IPI that the
/// holder is waiting to be answered) must never find it taken by the code it interrupted.
struct GrowingHeap(spin::Mutex<Heap>);

static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Frames the heap has taken for good (its pages and the page tables that map them): the
/// harness's leak check counts frames in use outside the heap.
static FRAMES_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// Frames the heap holds (it never gives them back).
pub fn frames_taken() -> u64 {
    FRAMES_TAKEN.load(Ordering::SeqCst) as u64
}

/// Physical memory for the heap's pages and page tables: the kernel's, counting what it
/// hands out (the heap keeps it for good).
struct CountingFrames;

impl PhysMem for CountingFrames {
    fn alloc_frame(&self) -> Option<PhysAddr> {
        let f = MEM.alloc_frame()?;
        FRAMES_TAKEN.fetch_add(1, Ordering::SeqCst);
        Some(f)
    }

    fn free_frame(&self, frame: PhysAddr) {
        FRAMES_TAKEN.fetch_sub(1, Ordering::SeqCst);
        crate::mem::frames::free(x86_64::PhysAddr::new(frame.as_u64()));
    }

    fn word(&self, frame: PhysAddr, index: usize) -> &core::sync::atomic::AtomicU64 {
        MEM.word(frame, index)
    }
}

/// Maps fresh frames at `[start, start + bytes)` (inside the heap's reserved range, above
/// its top). Returns the bytes mapped, and why it stopped short if it did.
fn map_pages(start: u64, bytes: usize) -> (usize, Result<(), &'static str>) {
    let flags = EntryFlags::WRITABLE | EntryFlags::NO_EXECUTE;
    for off in (0..bytes).step_by(4096) {
        let Some(frame) = CountingFrames.alloc_frame() else {
            return (off, Err("heap: out of physical frames"));
        };
        // The page is above the heap's top, inside its reserved range: unmapped.
        if kernel_space::map_page(&CountingFrames, start + off as u64, frame.as_u64(), flags).is_err() {
            CountingFrames.free_frame(frame);
            return (off, Err("heap: mapping failed"));
        }
    }
    (bytes, Ok(()))
}

impl GrowingHeap {
    /// Maps `bytes` (page multiple) above the heap's top and hands them to the allocator
    /// (as much as was mapped, if it stops short).
    fn grow(heap: &mut Heap, bytes: usize) -> Result<(), &'static str> {
        if heap.size() + bytes > HEAP_MAX {
            return Err("heap: its virtual range is full");
        }
        let (mapped, result) = map_pages(heap.top() as u64, bytes);
        if mapped > 0 {
            // SAFETY: [top, top + mapped) was just mapped writable and belongs to us.
            unsafe { heap.extend(mapped) };
        }
        result
    }
}

// SAFETY: allocation is first-fit over memory this allocator owns exclusively, under
// its lock; growing only adds memory.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        interrupts::without_interrupts(|| {
            let mut heap = self.0.lock();
            let mut result = heap.allocate_first_fit(layout);
            if result.is_err() {
                let want = (layout.size() + layout.align() + 4096).next_multiple_of(GROW_STEP);
                match Self::grow(&mut heap, want) {
                    Ok(()) => result = heap.allocate_first_fit(layout),
                    Err(why) => report_failure(&heap, layout, why),
                }
            }
            PEAK.fetch_max(heap.used(), Ordering::Relaxed);
            result.map_or(core::ptr::null_mut(), NonNull::as_ptr)
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        interrupts::without_interrupts(|| {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract).
            unsafe { self.0.lock().deallocate(NonNull::new_unchecked(ptr), layout) }
        })
    }
}

/// The allocation failure report; the panic that follows names the failed size again.
fn report_failure(heap: &Heap, layout: Layout, why: &str) {
    log::error!(
        "heap: alloc-failed size={} align={} heap_size={} heap_used={} heap_free={} frames_free={} cpu={}: {why}",
        layout.size(),
        layout.align(),
        heap.size(),
        heap.used(),
        heap.free(),
        crate::mem::frames::stats().free,
        arch::percpu::cpu_index(),
    );
}

#[global_allocator]
static ALLOCATOR: GrowingHeap = GrowingHeap(spin::Mutex::new(Heap::empty()));

/// Maps the heap's floor and hands it to the allocator. Boot CPU, once.
pub fn init() {
    interrupts::without_interrupts(|| {
        let (_, mapped) = map_pages(HEAP_START, HEAP_FLOOR);
        mapped.expect("heap: cannot map the floor");
        // SAFETY: the range was just mapped writable and is used by nothing else.
        unsafe { ALLOCATOR.0.lock().init(HEAP_START as *mut u8, HEAP_FLOOR) };
    });
}

/// Bytes the heap must still grow by to hold `cpus` CPUs' share.
pub fn growth_for_cpus(cpus: usize) -> usize {
    let target = HEAP_FLOOR + cpus * HEAP_PER_CPU;
    target.saturating_sub(stats().size).next_multiple_of(4096)
}

/// Grows the heap to hold `cpus` CPUs' share (boot CPU, before the APs start).
pub fn reserve_for_cpus(cpus: usize) -> Result<(), &'static str> {
    let bytes = growth_for_cpus(cpus);
    if bytes == 0 {
        return Ok(());
    }
    interrupts::without_interrupts(|| GrowingHeap::grow(&mut ALLOCATOR.0.lock(), bytes))
}

/// The heap's counters.
#[derive(Debug, Clone, Copy)]
pub struct HeapStats {
    /// Bytes mapped for the heap.
    pub size: usize,
    /// Bytes allocated now.
    pub used: usize,
    /// The most bytes ever allocated at once.
    pub peak: usize,
}

impl core::fmt::Display for HeapStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "heap: size_kib={} used_kib={} peak_kib={}",
            self.size >> 10,
            self.used >> 10,
            self.peak >> 10
        )
    }
}

/// Current counters.
pub fn stats() -> HeapStats {
    interrupts::without_interrupts(|| {
        let heap = ALLOCATOR.0.lock();
        HeapStats {
            size: heap.size(),
            used: heap.used(),
            peak: PEAK.load(Ordering::Relaxed),
        }
    })
}

/// Bytes in use and free in the heap.
pub fn usage() -> (usize, usize) {
    let s = stats();
    (s.used, s.size - s.used)
}
