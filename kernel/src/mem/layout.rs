//! The kernel's virtual address map, in one place. Lower half: user address spaces
//! (top-level entries 0..256, private to each root). Upper half: the kernel's, shared by
//! every root (entries 256..512 are copied into each new root, so every kernel mapping
//! below must exist before the first user address space is made).
//!
//! | range | what | who maps it |
//! |---|---|---|
//! | `0x0000_0000_0000_0000..0x0000_8000_0000_0000` | user address spaces | `user_space`, mm |
//! | [`BOOTLOADER_DYNAMIC_START`]..[`BOOTLOADER_DYNAMIC_END`] | the bootloader's dynamic mappings: all physical memory (`paging::phys_offset`), the boot info, the ramdisk, the framebuffer | the bootloader |
//! | [`HEAP_START`]..`HEAP_START + 64 GiB` | the kernel heap, grown on demand | `heap` |
//! | the AP trampoline's frame, below 1 MiB | identity-mapped in the kernel's root while the APs start, unmapped after | `smp` |
//! | [`AP_STACKS_START`].. | one stack per AP, each above an unmapped guard page | `smp` |
//! | [`XAPIC_PAGE`] | the xAPIC registers, uncached (xAPIC mode only) | `smp` |
//! | [`NEVER_MAPPED`] | never mapped (the page-fault test reads it) | nobody |
//! | the kernel image | code and data, where the bootloader loads the ELF | the bootloader |
//!
//! Every kernel mapping goes through [`super::kernel_space`] (mm's page-table code under
//! the kernel address space's lock); the bootloader's own mappings predate it.

/// Start of the bootloader's dynamic mappings (physical memory, boot info, ramdisk).
pub const BOOTLOADER_DYNAMIC_START: u64 = 0xffff_8000_0000_0000;
/// End of the bootloader's dynamic mappings: kept below the heap.
pub const BOOTLOADER_DYNAMIC_END: u64 = 0xffff_bfff_ffff_f000;
/// Where the kernel heap starts.
pub const HEAP_START: u64 = 0xffff_c000_0000_0000;
/// Where AP stacks are mapped.
pub const AP_STACKS_START: u64 = 0xffff_c800_0000_0000;
/// Where the xAPIC register page is mapped (uncached) in xAPIC mode.
pub const XAPIC_PAGE: u64 = 0xffff_cf00_0000_0000;
/// An address that is never mapped.
pub const NEVER_MAPPED: u64 = 0xffff_d000_0000_0000;
