//! What compiling tracing in changes in a kernel ELF, counted without running it: the
//! size of its code (`.text`) and its static-key branch sites, each a 5-byte NOP or JMP
//! that the `static-keys` crate lists in the `__static_keys` section (one entry per
//! site), told apart by the key they belong to (the trace key `trace::gate::TRACING`, the
//! table-sync decision, ...).
//!
//! An entry is three 64-bit words, each an offset from the word's own address (the crate
//! writes `.quad x - .`): the site, the jump target, and the key's address plus one bit
//! (the branch's sense). Offsets from their own place need no relocation, so the file's
//! section addresses are enough to find each entry's key.

use std::path::Path;

use xmas_elf::ElfFile;
use xmas_elf::sections::SectionData;
use xmas_elf::symbol_table::Entry;

/// Bytes of one `__static_keys` entry (three 64-bit words).
pub const ENTRY_BYTES: usize = 24;

/// A piece of the trace key's symbol name in either Rust mangling (`trace::gate::TRACING`).
const TRACE_KEY: &str = "5trace4gate7TRACING";

/// The counts of one kernel ELF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Size of `.text` in bytes.
    pub text_bytes: u64,
    /// Entries in `__static_keys`: branch sites of every key (and the crate's own
    /// placeholder entries).
    pub static_key_sites: usize,
    /// The sites of the trace key (each an `event!` site kept by the compiler, after
    /// inlining).
    pub trace_sites: usize,
}

impl Footprint {
    /// Reads the counts from the ELF at `path`.
    pub fn of(path: &Path) -> Result<Footprint, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let elf = ElfFile::new(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = elf
            .find_section_by_name(".text")
            .ok_or(format!("{}: no .text section", path.display()))?;
        let keys = match elf.find_section_by_name("__static_keys") {
            Some(s) => entry_keys(s.address(), s.raw_data(&elf)),
            None => Vec::new(),
        };
        let trace_key = symbol_address(&elf, TRACE_KEY);
        Ok(Footprint {
            text_bytes: text.size(),
            static_key_sites: keys.len(),
            trace_sites: keys.iter().filter(|&&k| Some(k) == trace_key).count(),
        })
    }
}

/// The key address of each entry of a `__static_keys` section loaded at `addr`
/// (its bytes `data`; a trailing partial entry is ignored).
pub fn entry_keys(addr: u64, data: &[u8]) -> Vec<u64> {
    let (entries, _partial) = data.as_chunks::<ENTRY_BYTES>();
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (words, _) = e.as_chunks::<8>();
            let word = |n: usize| i64::from_le_bytes(words[n]);
            let key_word = addr + (i * ENTRY_BYTES) as u64 + 16;
            // The low bit is the branch's sense, not part of the (aligned) key's address.
            key_word.wrapping_add_signed(word(2)) & !1
        })
        .collect()
}

/// The address of the first symbol whose name contains `part`.
fn symbol_address(elf: &ElfFile, part: &str) -> Option<u64> {
    let symtab = elf.find_section_by_name(".symtab")?;
    match symtab.get_data(elf).ok()? {
        SectionData::SymbolTable64(syms) => syms
            .iter()
            .find(|s| s.get_name(elf).is_ok_and(|n| n.contains(part)))
            .map(|s| s.value()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "kernel_footprint_tests.rs"]
mod tests;
