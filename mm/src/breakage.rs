//! Test-only breakage: one TLB mechanism switched off at a time (boot option
//! `tlb.break=`), so that the coherence oracle can show it catches each failure.
//!
//! Never set in a normal run; the kernel logs a warning when it is.

/// Which mechanism is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breakage {
    /// Nothing: the real protocol.
    #[default]
    None,
    /// Collapse and unshare flush with the cleared entry's own stride (2 MiB, 1 GiB)
    /// instead of the stride of the leaves under it: one INVLPG where hundreds are due.
    Stride,
    /// Flushes skip lazy CPUs even when page tables were freed or unshared.
    Lazy,
    /// Flushes leave out the remote flush altogether (only the local TLB is flushed).
    NoFlush,
}

impl Breakage {
    /// Parses a `tlb.break=` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "stride" => Self::Stride,
            "lazy" => Self::Lazy,
            "noflush" => Self::NoFlush,
            _ => return None,
        })
    }

    /// Name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Stride => "stride",
            Self::Lazy => "lazy",
            Self::NoFlush => "noflush",
        }
    }
}
