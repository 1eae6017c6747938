use super::*;

/// One entry at `at` whose words point at `site`, `target` and `key` (+ `sense`).
fn entry(at: u64, site: u64, target: u64, key: u64, sense: u64) -> Vec<u8> {
    [site, target, key + sense]
        .iter()
        .enumerate()
        .flat_map(|(n, &to)| (to.wrapping_sub(at + 8 * n as u64) as i64).to_le_bytes())
        .collect()
}

#[test]
fn each_entry_names_its_key_whatever_its_sense_and_place() {
    let base = 0x20_0000;
    let mut data = entry(base, 0x1000, 0x1010, 0x30_0008, 1);
    data.extend(entry(base + 24, 0x40_0000, 0x40_0020, 0x30_0010, 0));
    data.extend([0; 5]); // a partial entry is no entry
    assert_eq!(entry_keys(base, &data), vec![0x30_0008, 0x30_0010]);
}

#[test]
fn the_kernel_of_this_tool_has_trace_sites() {
    // The artifact dependency: tracing compiled in (the kernel's default features).
    let f = Footprint::of(&crate::image::kernel_elf()).unwrap();
    assert!(f.trace_sites > 0, "{f:?}");
    assert!(
        f.static_key_sites > f.trace_sites,
        "the table-sync key's site too: {f:?}"
    );
    assert!(f.text_bytes > 0, "{f:?}");
}
