//! gatherOS x86_64 layer: everything that touches the processor directly.
//!
//! `mm` decides *what* must happen to address spaces and TLBs; this crate executes it on
//! real hardware (CPUID, descriptor tables, serial port, the QEMU exit device) and offers
//! the in-kernel test registry that every kernel crate can add tests to.
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
pub mod idt;
pub mod ipi;
pub mod irq;
pub mod ktest;
pub mod madt;
pub mod percpu;
pub mod probe;
pub mod pv_host;
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
