//! What Linux users read: `/proc/interrupts` (`TLB`: remote runs of the TLB flush
//! handler; `CAL`: every function-call interrupt, flushes included) and the page-table
//! memory of the process (`VmPTE` in `/proc/self/status`, in kB).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Interrupt totals over all CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ipis {
    /// `TLB` row: TLB shootdowns received.
    pub tlb: u64,
    /// `CAL` row: function-call interrupts.
    pub cal: u64,
}

/// Sums the per-CPU columns of the `TLB` and `CAL` rows of a `/proc/interrupts` text.
pub fn parse_interrupts(text: &str) -> Ipis {
    let row = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(|rest| rest.split_whitespace().map_while(|w| w.parse::<u64>().ok()).sum())
            .unwrap_or(0)
    };
    Ipis {
        tlb: row("TLB:"),
        cal: row("CAL:"),
    }
}

/// The `VmPTE:` value (kB) of a `/proc/<pid>/status` text.
pub fn parse_vm_pte(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("VmPTE:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Open handles, re-read from the start each time (no allocation of new file handles
/// between the reads around an operation).
pub struct Counters {
    interrupts: File,
    status: File,
    buf: String,
}

impl Counters {
    /// Opens `/proc/interrupts` and `/proc/self/status`.
    pub fn open() -> std::io::Result<Self> {
        Ok(Self {
            interrupts: File::open("/proc/interrupts")?,
            status: File::open("/proc/self/status")?,
            buf: String::with_capacity(64 * 1024),
        })
    }

    fn read<'b>(file: &mut File, buf: &'b mut String) -> &'b str {
        buf.clear();
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.read_to_string(buf);
        buf
    }

    /// Current interrupt totals.
    pub fn ipis(&mut self) -> Ipis {
        parse_interrupts(Self::read(&mut self.interrupts, &mut self.buf))
    }

    /// Current page-table memory of this process, kB.
    pub fn vm_pte_kb(&mut self) -> u64 {
        parse_vm_pte(Self::read(&mut self.status, &mut self.buf))
    }
}

#[cfg(test)]
#[path = "counters_tests.rs"]
mod tests;
