//! gatherOS host tool library: disk images, QEMU, machine setup and the in-kernel test
//! driver. The `gatheros` binary (what `cargo run` starts) and the QEMU integration
//! tests in `tests/` are both thin layers over these modules.

pub mod bench;
pub mod bench_idle;
pub mod bench_shootdown;
pub mod flash;
pub mod image;
pub mod install;
pub mod kernel_footprint;
pub mod kvm;
pub mod linux;
pub mod qemu;
pub mod testrun;
pub mod trace;
pub mod trace_cost;
pub mod untraced;
