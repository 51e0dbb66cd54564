//! The manifest: the one file that makes a checkpoint complete. It names, for every stateful
//! component and task, the files that hold its state; a checkpoint without a manifest never
//! happened. [`Checkpoints`] lists, reads, commits and prunes them over a [`CheckpointStorage`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::CheckpointId;
use super::storage::CheckpointStorage;
use crate::config::Guarantee;

/// How a part of a task's snapshot is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// One serialized value.
    Value,
    /// Keyed entries by key group, as a chain of files: a whole state, then the changes since.
    Keyed,
}

/// A completed checkpoint: what was stored, for which topology, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The checkpoint's id (ascending across runs of the topology).
    pub id: CheckpointId,
    /// The topology's name.
    pub topology: String,
    /// When it completed, milliseconds since the Unix epoch.
    pub completed_at_ms: u64,
    /// From its start (the trigger) to its completion, milliseconds.
    pub duration_ms: u64,
    /// The guarantee the topology ran with.
    pub guarantee: Guarantee,
    /// The number of key groups keyed state was split into.
    pub max_parallelism: u32,
    /// Taken at a graceful stop (a savepoint): the run ended right after it.
    pub savepoint: bool,
    /// Every component's stored state, by component id.
    pub components: BTreeMap<String, ComponentState>,
}

/// One component's state in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentState {
    /// How many tasks it ran.
    pub parallelism: usize,
    /// Each task's parts, by task index.
    pub tasks: Vec<TaskState>,
}

/// One task's stored parts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// Part name -> how it is stored.
    pub parts: BTreeMap<String, PartState>,
}

/// One stored part of a task's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartState {
    /// A value, or keyed entries.
    pub kind: PartKind,
    /// The files, oldest first: a value has one; keyed state has a whole state and then the
    /// changes of each later checkpoint.
    pub files: Vec<String>,
    /// The size of the files written for this checkpoint (not the earlier ones of the chain).
    pub bytes: u64,
}

impl Manifest {
    /// The bytes written for this checkpoint.
    pub fn bytes(&self) -> u64 {
        self.components
            .values()
            .flat_map(|c| &c.tasks)
            .flat_map(|t| t.parts.values())
            .map(|p| p.bytes)
            .sum()
    }

    /// Every file the checkpoint needs.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.components
            .values()
            .flat_map(|c| &c.tasks)
            .flat_map(|t| t.parts.values())
            .flat_map(|p| p.files.iter().map(String::as_str))
    }
}

/// The name of checkpoint `id`'s manifest.
pub fn manifest_name(id: CheckpointId) -> String {
    format!("chk-{id:010}.json")
}

fn id_of_manifest(name: &str) -> Option<CheckpointId> {
    name.strip_prefix("chk-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The checkpoint id in a data file's name (`data/<id>/...`).
fn id_of_data(name: &str) -> Option<CheckpointId> {
    name.strip_prefix("data/")?.split('/').next()?.parse().ok()
}

/// A topology's checkpoints in one storage.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    storage: Arc<dyn CheckpointStorage>,
}

impl Checkpoints {
    /// The checkpoints kept in `storage`.
    pub fn new(storage: Arc<dyn CheckpointStorage>) -> Checkpoints {
        Checkpoints { storage }
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn CheckpointStorage> {
        &self.storage
    }

    /// The ids of the completed checkpoints, ascending.
    pub fn ids(&self) -> std::io::Result<Vec<CheckpointId>> {
        let mut ids: Vec<_> = self
            .storage
            .list("chk-")?
            .iter()
            .filter_map(|n| id_of_manifest(n))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads checkpoint `id`'s manifest.
    pub fn load(&self, id: CheckpointId) -> Result<Manifest, String> {
        let name = manifest_name(id);
        let bytes = self
            .storage
            .get(&name)
            .map_err(|e| format!("{}: {e}", self.storage.locate(&name)))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a checkpoint manifest: {e}",
                self.storage.locate(&name)
            )
        })
    }

    /// The newest completed checkpoint, if any. A manifest that cannot be read is skipped with
    /// a warning (the one before it is used).
    pub fn latest(&self) -> std::io::Result<Option<Manifest>> {
        for id in self.ids()?.into_iter().rev() {
            match self.load(id) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => tracing::warn!("skipping checkpoint {id}: {e}"),
            }
        }
        Ok(None)
    }

    /// The id after every checkpoint started so far (files of unfinished ones included), so a
    /// new run never reuses a name.
    pub fn next_id(&self) -> std::io::Result<CheckpointId> {
        let manifests = self.ids()?.last().copied().unwrap_or(0);
        let data = self
            .storage
            .list("data/")?
            .iter()
            .filter_map(|n| id_of_data(n))
            .max()
            .unwrap_or(0);
        Ok(manifests.max(data) + 1)
    }

    /// Makes a checkpoint complete: writes its manifest (atomically).
    pub fn commit(&self, manifest: &Manifest) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
        self.storage.put(&manifest_name(manifest.id), &json)
    }

    /// Deletes all but the newest `retain` checkpoints, and every data file no kept checkpoint
    /// needs that belongs to a checkpoint no newer than the newest kept one (files of a
    /// checkpoint still being taken are left alone). Returns how many files were deleted.
    pub fn prune(&self, retain: usize) -> std::io::Result<usize> {
        let ids = self.ids()?;
        let Some(&newest) = ids.last() else {
            return Ok(0);
        };
        let keep_from = ids.len().saturating_sub(retain.max(1));
        let mut deleted = 0;
        let mut needed = BTreeSet::new();
        for &id in &ids[keep_from..] {
            match self.load(id) {
                Ok(m) => needed.extend(m.files().map(str::to_string)),
                // Unreadable: keep everything rather than guess.
                Err(_) => return Ok(0),
            }
        }
        for &id in &ids[..keep_from] {
            self.storage.delete(&manifest_name(id))?;
            deleted += 1;
        }
        for name in self.storage.list("data/")? {
            if id_of_data(&name).is_some_and(|id| id <= newest) && !needed.contains(&name) {
                self.storage.delete(&name)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::LocalDir;

    fn manifest(id: CheckpointId, files: &[&str]) -> Manifest {
        let parts = files
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    PartState {
                        kind: PartKind::Value,
                        files: vec![f.to_string()],
                        bytes: 1,
                    },
                )
            })
            .collect();
        Manifest {
            id,
            topology: "t".into(),
            completed_at_ms: 0,
            duration_ms: 0,
            guarantee: Guarantee::ExactlyOnce,
            max_parallelism: 128,
            savepoint: false,
            components: [(
                "c".to_string(),
                ComponentState {
                    parallelism: 1,
                    tasks: vec![TaskState { parts }],
                },
            )]
            .into(),
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_what_they_reference() {
        let dir = std::env::temp_dir().join(format!("topo-manifest-{}", std::process::id()));
        let c = Checkpoints::new(Arc::new(LocalDir::new(&dir)));
        for (id, file) in [
            (1, "data/1/a"),
            (2, "data/2/a"),
            (3, "data/3/a"),
            (4, "data/4/a"),
        ] {
            c.storage().put(file, b"x").expect("put");
            // Checkpoint 4 still refers to 1's file (a chain).
            let files: Vec<&str> = if id == 4 {
                vec![file, "data/1/a"]
            } else {
                vec![file]
            };
            c.commit(&manifest(id, &files)).expect("commit");
        }
        c.storage().put("data/5/a", b"in flight").expect("put");
        assert_eq!(c.next_id().expect("next"), 6);
        c.prune(2).expect("prune");
        assert_eq!(c.ids().expect("ids"), [3, 4]);
        let mut left = c.storage().list("data/").expect("list");
        left.sort();
        assert_eq!(left, ["data/1/a", "data/3/a", "data/4/a", "data/5/a"]);
        assert_eq!(c.latest().expect("latest").map(|m| m.id), Some(4));
        std::fs::remove_dir_all(&dir).ok();
    }
}
