use super::*;

#[test]
fn rejects_missing_and_non_elf_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(check_kernel(&missing).unwrap_err().contains("nope"));
    let text = dir.path().join("text");
    std::fs::write(&text, "hello").unwrap();
    assert!(check_kernel(&text).unwrap_err().contains("not an ELF"));
}

#[test]
fn the_built_kernel_is_an_elf() {
    check_kernel(&kernel_elf()).unwrap();
}
