//! Addresses: virtual ([`VirtAddr`]) and physical ([`PhysAddr`]), so that neither can be
//! passed where the other, an entry or a count is meant.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(u64);

/// A physical address (of a frame, a page table, or a byte in one).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(u64);

/// End of the lower (user) half of the address space: what a teardown unmaps.
pub const USER_END: VirtAddr = VirtAddr(1 << 47);

impl VirtAddr {
    /// The address `va`.
    pub const fn new(va: u64) -> Self {
        Self(va)
    }

    /// The address as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// `self + bytes`, or the highest address on overflow.
    pub const fn saturating_add(self, bytes: u64) -> Self {
        Self(self.0.saturating_add(bytes))
    }
}

impl PhysAddr {
    /// The address `pa`.
    pub const fn new(pa: u64) -> Self {
        Self(pa)
    }

    /// The address as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl Add<u64> for VirtAddr {
    type Output = Self;
    fn add(self, bytes: u64) -> Self {
        Self(self.0 + bytes)
    }
}

impl AddAssign<u64> for VirtAddr {
    fn add_assign(&mut self, bytes: u64) {
        self.0 += bytes;
    }
}

impl Sub for VirtAddr {
    type Output = u64;
    /// Bytes from `other` up to `self`.
    fn sub(self, other: Self) -> u64 {
        self.0 - other.0
    }
}

impl Add<u64> for PhysAddr {
    type Output = Self;
    fn add(self, bytes: u64) -> Self {
        Self(self.0 + bytes)
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}
