//! gatherOS x86_64 layer: everything that touches the processor directly.
//!
//! `mm` decides *what* must happen to address spaces and TLBs; this crate executes it on
//! real hardware (CPUID, descriptor tables, serial port, the QEMU exit device). Test
//! support (the in-kernel test registry, the hypervisor model, fault injection) lives in
//! the `ktest` crate.
#![cfg_attr(not(test), no_std)]
#![feature(abi_x86_interrupt)]

pub mod apic;
pub mod backend;
mod call_queue;
pub mod context;
pub mod cpu;
pub mod cpuid;
pub mod cpus;
pub mod gdt;
pub mod hooks;
pub mod idt;
pub mod ipi;
pub mod irq;
pub mod madt;
pub mod percpu;
pub mod probe;
pub mod qemu_exit;
pub mod serial;
pub mod smp;
pub mod static_key;
pub mod stats;
pub mod teardown_record;
pub mod timer;
pub mod tlb;
pub mod trampoline;
pub mod watchdog;
mod watchdog_cpu;
