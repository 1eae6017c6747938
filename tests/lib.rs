//! The QEMU integration tests live in `tests/kernel.rs`; this library is empty.
