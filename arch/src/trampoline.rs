//! The real-mode trampoline that takes an application processor from its start-up IPI
//! to 64-bit Rust code.
//!
//! A start-up IPI with vector V starts the AP in real mode at `V * 4096` with `CS = V << 8`
//! and `IP = 0`, so the code is copied to a page-aligned frame below 1 MiB and addresses
//! its data relative to CS. It switches straight from real mode to long mode (PAE,
//! EFER.LME|NXE, CR0.PG|PE|WP together), on the kernel's own page tables, which must
//! identity-map the trampoline page while APs start. In 64-bit mode each AP takes a
//! ticket (`lock xadd`), loads the stack top `stacks[ticket]` and jumps to the Rust entry
//! with the ticket as argument. Several APs can therefore start at the same time.
//!
//! Fields patched by [`Trampoline::install`]: the GDT pointer's base, CR3, the far-jump
//! target, the stack table and the entry point (all at fixed offsets in the copy).

use core::sync::atomic::{AtomicU32, Ordering};

core::arch::global_asm!(
    r#"
.section .rodata.ap_trampoline, "a"
.balign 4096
.global gatheros_ap_trampoline_start
gatheros_ap_trampoline_start:
.code16
    cli
    cld
    mov ax, cs
    mov ds, ax
    lgdt [0xF18]                       # gatheros_ap_gdtr
    mov eax, cr4
    or eax, (1 << 5)                  # PAE
    mov cr4, eax
    mov eax, [0xF20]                   # gatheros_ap_cr3
    mov cr3, eax
    mov ecx, 0xC0000080               # IA32_EFER
    rdmsr
    or eax, (1 << 8) | (1 << 11)      # LME | NXE
    wrmsr
    mov eax, cr0
    or eax, 0x80010001                # PG | WP | PE
    mov cr0, eax
    # jmp far 0x08:target32 (patched), 32-bit offset form.
    .byte 0x66, 0xEA
.global gatheros_ap_ljmp_target
gatheros_ap_ljmp_target:
    .long 0
    .word 0x08

.code64
.global gatheros_ap_long_mode
gatheros_ap_long_mode:
    xor eax, eax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    mov eax, 1
    lock xadd dword ptr [rip + gatheros_ap_ticket], eax
    mov edi, eax
    mov rbx, [rip + gatheros_ap_stacks]
    mov rsp, [rbx + rdi * 8]
    xor ebp, ebp
    push 0
    mov rax, [rip + gatheros_ap_entry]
    jmp rax

# Data at fixed offsets: real-mode code cannot name them by symbol differences.
.org 0xF00
.global gatheros_ap_gdt
gatheros_ap_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF          # 0x08: 64-bit code
    .quad 0x00CF92000000FFFF          # 0x10: data
gatheros_ap_gdt_end:
.global gatheros_ap_gdtr
gatheros_ap_gdtr:
    .word gatheros_ap_gdt_end - gatheros_ap_gdt - 1
.global gatheros_ap_gdt_base
gatheros_ap_gdt_base:
    .long 0
.org 0xF20
.global gatheros_ap_cr3
gatheros_ap_cr3:
    .long 0
.global gatheros_ap_ticket
gatheros_ap_ticket:
    .long 0
.org 0xF28
.global gatheros_ap_stacks
gatheros_ap_stacks:
    .quad 0
.global gatheros_ap_entry
gatheros_ap_entry:
    .quad 0
.global gatheros_ap_trampoline_end
gatheros_ap_trampoline_end:
.text
"#
);

unsafe extern "C" {
    static gatheros_ap_trampoline_start: u8;
    static gatheros_ap_trampoline_end: u8;
    static gatheros_ap_ljmp_target: u8;
    static gatheros_ap_long_mode: u8;
    static gatheros_ap_gdt: u8;
    static gatheros_ap_gdtr: u8;
    static gatheros_ap_gdt_base: u8;
    static gatheros_ap_cr3: u8;
    static gatheros_ap_ticket: u8;
    static gatheros_ap_stacks: u8;
    static gatheros_ap_entry: u8;
}

fn offset(sym: *const u8) -> usize {
    sym as usize - &raw const gatheros_ap_trampoline_start as usize
}

/// A trampoline copied to its low frame.
pub struct Trampoline {
    phys: u64,
    virt: u64,
}

impl Trampoline {
    /// Copies the trampoline to `phys` (page-aligned, below 1 MiB, mapped at `virt`)
    /// and patches it. `stacks` is an array of stack tops, one per ticket; `entry` is
    /// `extern "C" fn(ticket: u64) -> !`.
    ///
    /// # Safety
    /// The frame at `phys` must be reserved for the trampoline and identity-mapped in the
    /// page tables at `cr3` (which must lie below 4 GiB); `stacks` must outlive AP start.
    pub unsafe fn install(
        phys: u64,
        virt: u64,
        cr3: u64,
        stacks: &[u64],
        entry: extern "C" fn(u64) -> !,
    ) -> Self {
        assert!(
            phys % 4096 == 0 && phys < 0x10_0000,
            "trampoline frame {phys:#x} unusable"
        );
        assert!(cr3 < (1 << 32), "kernel page tables at {cr3:#x} are above 4 GiB");
        let (start, end) = (
            &raw const gatheros_ap_trampoline_start,
            &raw const gatheros_ap_trampoline_end,
        );
        let len = end as usize - start as usize;
        assert!(len <= 4096);
        // The real-mode code uses these offsets as literals.
        assert_eq!(offset(&raw const gatheros_ap_gdtr), 0xF18);
        assert_eq!(offset(&raw const gatheros_ap_cr3), 0xF20);
        let put32 = |sym: *const u8, v: u32| {
            // SAFETY: within the copied page, at a 4-byte field of the trampoline.
            unsafe { core::ptr::write_unaligned((virt as usize + offset(sym)) as *mut u32, v) }
        };
        let put64 = |sym: *const u8, v: u64| {
            // SAFETY: within the copied page, at an 8-byte field of the trampoline.
            unsafe { core::ptr::write_unaligned((virt as usize + offset(sym)) as *mut u64, v) }
        };
        // SAFETY: `virt` maps the reserved frame (caller), `len` <= one page.
        unsafe { core::ptr::copy_nonoverlapping(start, virt as *mut u8, len) };
        put32(
            &raw const gatheros_ap_gdt_base,
            (phys as usize + offset(&raw const gatheros_ap_gdt)) as u32,
        );
        put32(&raw const gatheros_ap_cr3, cr3 as u32);
        put32(
            &raw const gatheros_ap_ljmp_target,
            (phys as usize + offset(&raw const gatheros_ap_long_mode)) as u32,
        );
        put32(&raw const gatheros_ap_ticket, 0);
        put64(&raw const gatheros_ap_stacks, stacks.as_ptr() as u64);
        put64(&raw const gatheros_ap_entry, entry as usize as u64);
        Self { phys, virt }
    }

    /// The start-up IPI vector (page number) of this trampoline.
    pub fn sipi_vector(&self) -> u8 {
        (self.phys / 4096) as u8
    }

    /// Tickets taken so far (APs that reached 64-bit mode).
    pub fn tickets(&self) -> u32 {
        // SAFETY: the ticket field inside the copied page; APs update it with `lock xadd`.
        let ticket =
            unsafe { &*((self.virt as usize + offset(&raw const gatheros_ap_ticket)) as *const AtomicU32) };
        ticket.load(Ordering::SeqCst)
    }
}
