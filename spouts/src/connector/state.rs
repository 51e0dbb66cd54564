//! Where a connector keeps its state across restarts (the `file` and `kinesis` checkpoints, the
//! `feed` seen sets): the component's `state_dir` option when set, else
//! `$TOPO_STATE_DIR/<topology>/<component>`, `TOPO_STATE_DIR` defaulting to `.topo/state` under
//! the working directory.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use topo_runtime::CheckpointId;

/// The positions a spout wrote into checkpoints that have not completed yet, oldest first. With
/// topology checkpoints a spout commits a position of its own (an offsets file, a consumer
/// group, shard files, seen sets) only when a checkpoint completes, and only that checkpoint's
/// position: never ahead of the state that goes with it.
#[derive(Debug)]
pub struct PendingPositions<T> {
    queue: VecDeque<(CheckpointId, T)>,
}

impl<T> Default for PendingPositions<T> {
    fn default() -> Self {
        PendingPositions {
            queue: VecDeque::new(),
        }
    }
}

impl<T> PendingPositions<T> {
    /// At most this many are kept; a checkpoint that never completes is dropped with the older
    /// ones.
    pub const KEPT: usize = 16;

    /// Notes the position written into checkpoint `id`.
    pub fn taken(&mut self, id: CheckpointId, position: T) {
        if self.queue.len() >= Self::KEPT {
            self.queue.pop_front();
        }
        self.queue.push_back((id, position));
    }

    /// Checkpoint `id` completed: its position (if this spout wrote one into it), dropped with
    /// every older one.
    pub fn completed(&mut self, id: CheckpointId) -> Option<T> {
        let mut done = None;
        while self.queue.front().is_some_and(|(c, _)| *c <= id) {
            done = self.queue.pop_front();
        }
        done.filter(|(c, _)| *c == id).map(|(_, p)| p)
    }
}

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
    fn a_completed_checkpoint_gives_its_position_and_drops_the_older_ones() {
        let mut p = PendingPositions::default();
        p.taken(3, "a");
        p.taken(4, "b");
        p.taken(6, "c");
        assert_eq!(p.completed(4), Some("b"), "3 is dropped on the way");
        assert_eq!(p.completed(5), None, "5 was not taken here");
        assert_eq!(p.completed(6), Some("c"));
        assert_eq!(p.completed(6), None);
    }

    #[test]
    fn a_configured_directory_wins_else_the_root_joined_with_topology_and_component() {
        assert_eq!(
            state_dir(Some(Path::new("/var/lib/x")), "t", "c"),
            PathBuf::from("/var/lib/x")
        );
        assert!(state_dir(None, "t", "c").ends_with("t/c"));
    }
}
