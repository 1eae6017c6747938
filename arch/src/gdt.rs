//! Global descriptor table and task-state segment, one set per CPU.
//!
//! Each CPU gets its own TSS because the interrupt stack table (IST) holds per-CPU stacks:
//! double faults, NMIs and machine checks switch to a known-good stack, so a kernel stack
//! overflow or an NMI during a flush cannot corrupt the interrupted context.

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot used by the double-fault handler.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot used by the NMI handler (panic broadcast, watchdogs).
pub const NMI_IST: u16 = 1;
/// IST slot used by the machine-check handler.
pub const MACHINE_CHECK_IST: u16 = 2;
/// Size of each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// One CPU's descriptor tables and exception stacks. Must live forever once loaded.
pub struct CpuTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
    stacks: [[u8; IST_STACK_SIZE]; 3],
    code: SegmentSelector,
    data: SegmentSelector,
    tss_sel: SegmentSelector,
}

impl CpuTables {
    /// An unloaded set; call [`CpuTables::load`] on the CPU that owns it.
    pub const fn new() -> Self {
        Self {
            gdt: GlobalDescriptorTable::new(),
            tss: TaskStateSegment::new(),
            stacks: [[0; IST_STACK_SIZE]; 3],
            code: SegmentSelector(0),
            data: SegmentSelector(0),
            tss_sel: SegmentSelector(0),
        }
    }

    /// Fills in the IST, builds the GDT and loads GDT, segments and TSS on this CPU.
    pub fn load(&'static mut self) {
        for (slot, stack) in self.stacks.iter().enumerate() {
            let top = VirtAddr::from_ptr(stack.as_ptr_range().end);
            // The stack grows down from its (16-byte aligned) top.
            self.tss.interrupt_stack_table[slot] = top.align_down(16u64);
        }
        // The GDT refers to the TSS by address; both live in `self`, which is 'static.
        let tss: &'static TaskStateSegment =
            // SAFETY: `self` is 'static and the TSS is never moved or mutated after this.
            unsafe { &*(&self.tss as *const TaskStateSegment) };
        self.code = self.gdt.append(Descriptor::kernel_code_segment());
        self.data = self.gdt.append(Descriptor::kernel_data_segment());
        self.tss_sel = self.gdt.append(Descriptor::tss_segment(tss));
        let this: &'static Self = self;
        this.gdt.load();
        // SAFETY: the selectors index the GDT just loaded, with the right descriptor types.
        unsafe {
            CS::set_reg(this.code);
            SS::set_reg(this.data);
            DS::set_reg(this.data);
            ES::set_reg(this.data);
            load_tss(this.tss_sel);
        }
    }

    /// The IST stack range `[bottom, top)` of `slot`, for tests and diagnostics.
    pub fn ist_stack(&self, slot: u16) -> (VirtAddr, VirtAddr) {
        let r = self.stacks[slot as usize].as_ptr_range();
        (VirtAddr::from_ptr(r.start), VirtAddr::from_ptr(r.end))
    }
}

impl Default for CpuTables {
    fn default() -> Self {
        Self::new()
    }
}
