//! Remote TLB flush backends (implementations of mm's `FlushBackend`).

pub mod native;
