//! Kernel-stack context switching: callee-saved registers on the stack, stack pointer
//! saved in the task.

core::arch::global_asm!(
    r#"
.text
.global gatheros_switch_stack
gatheros_switch_stack:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

unsafe extern "C" {
    fn gatheros_switch_stack(save_rsp: *mut u64, next_rsp: u64);
}

/// Saves the callee-saved registers and stack pointer into `*save_rsp` and resumes the
/// context whose stack pointer is `next_rsp`.
///
/// # Safety
/// Interrupts off; `next_rsp` must come from a previous switch or [`initial_stack`], and
/// its stack must stay alive while it runs.
pub unsafe fn switch_stack(save_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: per the function's contract.
    unsafe { gatheros_switch_stack(save_rsp, next_rsp) }
}

/// Prepares a fresh stack ending at `top` so that switching to it starts `entry`.
/// Returns the stack pointer to switch to.
///
/// # Safety
/// `top` must be the 16-byte aligned end of a writable stack of at least 128 bytes.
pub unsafe fn initial_stack(top: u64, entry: extern "C" fn() -> !) -> u64 {
    // Layout from the returned rsp upwards: r15 r14 r13 r12 rbx rbp, return address
    // (entry), then a zero "return address" for entry itself, keeping the ABI alignment
    // (rsp + 8 is 16-byte aligned at entry).
    let frame = (top - 8 * 8) as *mut u64;
    // SAFETY: within the caller's stack, per the contract.
    unsafe {
        for i in 0..6 {
            frame.add(i).write(0);
        }
        frame.add(6).write(entry as usize as u64);
        frame.add(7).write(0);
    }
    frame as u64
}
