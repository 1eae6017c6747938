//! The physical frame allocator over the bootloader's memory map.
//!
//! Usable regions above 1 MiB are handed out by a bump pointer; freed frames go on a
//! free list threaded through the frames themselves (reached through the physical-memory
//! mapping) and are reused first. The lowest 1 MiB is kept back: the AP start-up
//! trampoline needs a page-aligned frame there. Counters make leaks and double frees
//! visible: `frames: total=.. free=.. used=..`.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use x86_64::PhysAddr;

/// Frame size.
pub const FRAME_SIZE: u64 = 4096;
/// Regions below this address are never handed out by the general allocator.
pub const LOW_MEMORY_END: u64 = 0x10_0000;
/// Most usable regions the allocator tracks (the rest are ignored, with a warning).
const MAX_REGIONS: usize = 256;

/// A contiguous run of usable physical memory, `[start, end)`.
#[derive(Clone, Copy, Debug)]
struct Region {
    start: u64,
    end: u64,
}

/// The allocator's state (behind [`FRAMES`]).
pub struct Frames {
    regions: [Region; MAX_REGIONS],
    count: usize,
    /// Index of the region the bump pointer is in, and the pointer itself.
    current: usize,
    next: u64,
    /// Head of the free list (physical address, 0 = empty).
    free_head: u64,
    phys_offset: u64,
    total: u64,
}

/// The global frame allocator; `None` until [`init`].
///
/// Taken with interrupts off, always ([`with_frames`]): the heap grows from it inside
/// the global allocator, with interrupts off and the heap lock held, and the tick
/// handler allocates; a task holding this lock with interrupts on could be interrupted
/// by exactly that allocation. Lock order: heap, then the kernel address space's
/// page-table lock (`kernel_space`), then frames (never the other way).
pub static FRAMES: Mutex<Option<Frames>> = Mutex::new(None);

/// Runs `f` on the allocator, locked with interrupts off (see [`FRAMES`]).
fn with_frames<R>(f: impl FnOnce(&mut Frames) -> R) -> R {
    arch::irq::without_interrupts(|| f(FRAMES.lock().as_mut().expect("frames: allocator not initialised")))
}
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// Counters of the frame allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames above 1 MiB.
    pub total: u64,
    /// Frames currently free.
    pub free: u64,
    /// Frames currently allocated.
    pub used: u64,
}

impl core::fmt::Display for FrameStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "frames: total={} free={} used={}",
            self.total, self.free, self.used
        )
    }
}

/// Builds the allocator from the memory map. Returns usable bytes (all regions).
pub fn init(map: &MemoryRegions, phys_offset: u64) -> u64 {
    let mut f = Frames {
        regions: [Region { start: 0, end: 0 }; MAX_REGIONS],
        count: 0,
        current: 0,
        next: 0,
        free_head: 0,
        phys_offset,
        total: 0,
    };
    let mut usable_bytes = 0;
    for r in map.iter().filter(|r| r.kind == MemoryRegionKind::Usable) {
        usable_bytes += r.end - r.start;
        let start = r.start.max(LOW_MEMORY_END).next_multiple_of(FRAME_SIZE);
        let end = r.end & !(FRAME_SIZE - 1);
        if start >= end {
            continue;
        }
        // UEFI maps come in many small pieces: merge a region that continues the last one.
        if f.count > 0 && f.regions[f.count - 1].end == start {
            f.regions[f.count - 1].end = end;
            f.total += (end - start) / FRAME_SIZE;
            continue;
        }
        if f.count == MAX_REGIONS {
            log::warn!("frames: more than {MAX_REGIONS} usable regions, ignoring {start:#x}..{end:#x}");
            continue;
        }
        f.regions[f.count] = Region { start, end };
        f.count += 1;
        f.total += (end - start) / FRAME_SIZE;
    }
    // The bootloader sorts the map, but do not rely on it for the bump order.
    f.regions[..f.count].sort_unstable_by_key(|r| r.start);
    f.next = if f.count > 0 { f.regions[0].start } else { 0 };
    *FRAMES.lock() = Some(f);
    usable_bytes
}

/// Finds a page-aligned usable frame below 1 MiB at or above `min` (for the AP
/// trampoline; the general allocator never hands these out).
pub fn low_frame(map: &MemoryRegions, min: u64) -> Option<PhysAddr> {
    map.iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .map(|r| {
            (
                r.start.max(min).next_multiple_of(FRAME_SIZE),
                r.end.min(LOW_MEMORY_END),
            )
        })
        .find(|(s, e)| s + FRAME_SIZE <= *e)
        .map(|(s, _)| PhysAddr::new(s))
}

impl Frames {
    fn alloc(&mut self) -> Option<PhysAddr> {
        if self.free_head != 0 {
            let frame = self.free_head;
            // SAFETY: frames on the free list are owned by the allocator, mapped at
            // phys_offset, and store the next link in their first word.
            self.free_head = unsafe { *((frame + self.phys_offset) as *const u64) };
            return Some(PhysAddr::new(frame));
        }
        while self.current < self.count {
            let r = self.regions[self.current];
            if self.next < r.end {
                let frame = self.next;
                self.next += FRAME_SIZE;
                return Some(PhysAddr::new(frame));
            }
            self.current += 1;
            if self.current < self.count {
                self.next = self.regions[self.current].start;
            }
        }
        None
    }

    /// A physically contiguous, `frames`-aligned run of `frames` frames from the bump
    /// region; frames skipped for alignment go on the free list.
    fn alloc_block(&mut self, frames: u64) -> Option<u64> {
        let size = frames * FRAME_SIZE;
        while self.current < self.count {
            let r = self.regions[self.current];
            let aligned = self.next.next_multiple_of(size);
            if aligned + size <= r.end {
                while self.next < aligned {
                    let f = self.next;
                    self.next += FRAME_SIZE;
                    self.free(PhysAddr::new(f));
                }
                self.next = aligned + size;
                return Some(aligned);
            }
            self.current += 1;
            if self.current < self.count {
                self.next = self.regions[self.current].start;
            }
        }
        None
    }

    fn free(&mut self, frame: PhysAddr) {
        let addr = frame.as_u64();
        assert!(
            addr.is_multiple_of(FRAME_SIZE) && addr >= LOW_MEMORY_END,
            "frames: bad free of {addr:#x}"
        );
        // SAFETY: the caller gives the frame back; it is mapped at phys_offset and is
        // ours to overwrite.
        unsafe { *((addr + self.phys_offset) as *mut u64) = self.free_head };
        self.free_head = addr;
    }
}

/// Allocates one zeroed 4 KiB frame.
pub fn alloc_zeroed() -> Option<PhysAddr> {
    let (frame, offset) = with_frames(|f| Some((f.alloc()?, f.phys_offset)))?;
    ALLOCATED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the frame was just allocated to us and is mapped at `offset`.
    unsafe { core::ptr::write_bytes((frame.as_u64() + offset) as *mut u8, 0, FRAME_SIZE as usize) };
    Some(frame)
}

/// Allocates a zeroed, 2 MiB-aligned, contiguous 2 MiB block (512 frames).
pub fn alloc_huge_block() -> Option<PhysAddr> {
    let (block, offset) = with_frames(|f| Some((f.alloc_block(512)?, f.phys_offset)))?;
    ALLOCATED.fetch_add(512, Ordering::Relaxed);
    // SAFETY: the block was just allocated to us and is mapped at `offset`.
    unsafe { core::ptr::write_bytes((block + offset) as *mut u8, 0, 2 << 20) };
    Some(PhysAddr::new(block))
}

/// Returns a frame to the allocator. The caller must no longer use it anywhere.
pub fn free(frame: PhysAddr) {
    with_frames(|f| f.free(frame));
    FREED.fetch_add(1, Ordering::Relaxed);
}

/// Current counters.
pub fn stats() -> FrameStats {
    let total = arch::irq::without_interrupts(|| FRAMES.lock().as_ref().map_or(0, |f| f.total));
    let used = ALLOCATED.load(Ordering::Relaxed) - FREED.load(Ordering::Relaxed);
    FrameStats {
        total,
        free: total - used,
        used,
    }
}
