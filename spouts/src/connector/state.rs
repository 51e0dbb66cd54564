//! Where a connector keeps its state across restarts (the `file` and `kinesis` checkpoints, the
//! `feed` seen sets): the component's `state_dir` option when set, else
//! `$TOPO_STATE_DIR/<topology>/<component>`, `TOPO_STATE_DIR` defaulting to `.topo/state` under
//! the working directory.

use std::path::{Path, PathBuf};

/// The environment variable that overrides the root of the default state directory.
pub const STATE_DIR_ENV: &str = "TOPO_STATE_DIR";

/// The root of the default state directories: `$TOPO_STATE_DIR`, else `.topo/state`.
fn state_root() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(".topo/state"), PathBuf::from)
}

/// The state directory of a component: `configured` (its `state_dir` option) if set, else
/// `$TOPO_STATE_DIR/<topology>/<component>`.
pub fn state_dir(configured: Option<&Path>, topology: &str, component: &str) -> PathBuf {
    match configured {
        Some(dir) => dir.to_path_buf(),
        None => state_root().join(topology).join(component),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_directory_wins_else_the_root_joined_with_topology_and_component() {
        assert_eq!(
            state_dir(Some(Path::new("/var/lib/x")), "t", "c"),
            PathBuf::from("/var/lib/x")
        );
        assert!(state_dir(None, "t", "c").ends_with("t/c"));
    }
}
