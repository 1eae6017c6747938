//! gatherOS memory-management core.
#![cfg_attr(not(test), no_std)]
