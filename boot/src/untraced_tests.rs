use super::*;

#[test]
fn the_kernel_executable_is_read_from_cargos_messages() {
    let messages = [
        r#"{"reason":"compiler-artifact","target":{"name":"trace","kind":["lib"]},"executable":null}"#,
        "not json",
        r#"{"reason":"compiler-artifact","target":{"name":"kernel","kind":["bin"]},"executable":"/t/untraced/x86_64-unknown-none/debug/kernel"}"#,
        r#"{"reason":"build-finished","success":true}"#,
    ]
    .join("\n");
    assert_eq!(
        executable(&messages),
        Some(PathBuf::from("/t/untraced/x86_64-unknown-none/debug/kernel"))
    );
    assert_eq!(executable(&messages.replace(r#""kernel""#, r#""mm""#)), None);
    assert_eq!(executable(r#"{"reason":"build-finished","success":false}"#), None);
}

#[test]
fn the_build_runs_in_this_workspace_without_the_trace_feature() {
    let cmd = command();
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into()).collect();
    for want in ["-p", "kernel", "x86_64-unknown-none", "--no-default-features"] {
        assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
    }
    let dir = cmd.get_current_dir().expect("the workspace root");
    assert!(
        dir.join(".cargo/config.toml").is_file() && dir.join("rust-toolchain.toml").is_file(),
        "{} holds the workspace's cargo configuration and toolchain",
        dir.display()
    );
    assert!(target_dir().ends_with("untraced"), "{}", target_dir().display());
}
