//! The `topo` binary's allocator options (src/allocator.rs): mimalloc reports them under their
//! names, so the option numbers set are the options meant, and the environment still wins.
#![cfg(target_os = "linux")]

use std::process::Command;

fn options(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_topo"))
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .envs(env.iter().copied())
        .output()
        .expect("topo runs");
    assert!(out.status.success(), "topo --version failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn memory_is_purged_at_once_and_committed_on_demand_unless_the_environment_says_otherwise() {
    let defaults = options(&[]);
    assert!(
        defaults.contains("option 'purge_delay': 0"),
        "mimalloc's options: {defaults}"
    );
    assert!(
        defaults.contains("option 'arena_eager_commit': 0"),
        "mimalloc's options: {defaults}"
    );
    let set = options(&[("MIMALLOC_PURGE_DELAY", "250")]);
    assert!(
        set.contains("option 'purge_delay': 250"),
        "mimalloc's options: {set}"
    );
    assert!(set.contains("option 'arena_eager_commit': 0"), "{set}");
}
