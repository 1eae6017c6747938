//! Synchronisation primitives of the model, laid out as std's (`tso::sync::atomic`).

pub mod atomic;
