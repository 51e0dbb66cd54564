//! State that survives crashes: what a component writes into a checkpoint ([`Snapshot`]), what
//! it reads back when a run resumes ([`Restore`]), and [`KeyedState`], a map that checkpoints
//! only what changed and is split into key groups so a restore can change the parallelism.
//!
//! ```text
//!  barrier reaches a task ─► component.snapshot(&mut Snapshot)
//!                              ├─ put(name, value)        operator state: a position, a seen set
//!                              └─ put_keyed(name, state)  keyed state: the entries changed since
//!                                                         the last checkpoint (or all of them)
//!                           ─► files written off the task ─► coordinator ─► manifest (complete)
//!  a run resumes ──────────► component.restore(&Restore)
//!                              ├─ get(name) / get_all(name)
//!                              └─ keyed(name, state)      the key groups this task owns, from
//!                                                         every old task's file chain
//! ```
//!
//! # Key groups
//! A keyed state's entries are stored by key group: [`key_group`] of the key's
//! [`StateKey::key_hash`], one of [`Config::max_parallelism`](crate::Config::max_parallelism)
//! buckets. A fields grouping routes by the same key groups (task = a contiguous range of them),
//! so when a checkpoint is restored with another parallelism each new task takes the groups it
//! now owns from every old task's files. A key's hash must be computed from the same values, in
//! the same order, as the fields grouping that feeds the component ([`key_hash_of`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use smol_str::SmolStr;

use crate::checkpoint::CheckpointId;
use crate::checkpoint::manifest::{PartKind, PartState, TaskState};
use crate::checkpoint::storage::CheckpointStorage;
use crate::grouping::{key_group, key_groups_of_task, key_hash_of};
use crate::value::Value;

/// Any error, boxed (the components' `BoxError`).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// After this many incremental snapshots in a row, a keyed state is written whole again, so a
/// restore reads a bounded chain of files.
const MAX_CHAIN: usize = 8;

/// A key of [`KeyedState`]: it can say its stable hash, the one a fields grouping on the same
/// values computes ([`key_hash_of`]).
pub trait StateKey: Clone + Eq + Hash + Serialize + DeserializeOwned + Send + 'static {
    /// The key's stable hash: `key_hash_of(&[the key's values])`.
    fn key_hash(&self) -> u64;
}

impl StateKey for SmolStr {
    fn key_hash(&self) -> u64 {
        key_hash_of(&[Value::Str(self.clone())])
    }
}

impl StateKey for String {
    fn key_hash(&self) -> u64 {
        key_hash_of(&[Value::Str(self.as_str().into())])
    }
}

impl StateKey for i64 {
    fn key_hash(&self) -> u64 {
        key_hash_of(&[Value::Int(*self)])
    }
}

/// A value of [`KeyedState`].
pub trait StateValue: Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + 'static> StateValue for T {}

/// One entry of a keyed state and the checkpoint epoch it last changed in.
#[derive(Clone, Debug)]
struct Slot<V> {
    value: V,
    epoch: u32,
}

/// A map whose checkpoints write only the entries changed since the last one: the pause a
/// checkpoint costs the task grows with what changed, not with the state's size.
///
/// Reads are plain map reads; [`get_mut`](KeyedState::get_mut), [`insert`](KeyedState::insert)
/// and [`remove`](KeyedState::remove) note the key as changed (once per checkpoint interval).
/// Write it with [`Snapshot::put_keyed`] and read it back with [`Restore::keyed`].
#[derive(Debug)]
pub struct KeyedState<K, V> {
    map: hashbrown::HashMap<K, Slot<V>, foldhash::fast::RandomState>,
    /// Keys set or changed since the last snapshot (a key may appear twice).
    changed: Vec<K>,
    /// Keys removed since the last snapshot.
    removed: Vec<K>,
    epoch: u32,
    /// Snapshots written since the last whole one; `None` before the first (or after a
    /// restore): the next snapshot is whole.
    chain: Option<usize>,
}

impl<K: StateKey, V: StateValue> Default for KeyedState<K, V> {
    fn default() -> Self {
        KeyedState::new()
    }
}

impl<K: StateKey, V: StateValue> KeyedState<K, V> {
    /// An empty state.
    pub fn new() -> Self {
        KeyedState {
            map: hashbrown::HashMap::default(),
            changed: Vec::new(),
            removed: Vec::new(),
            epoch: 1,
            chain: None,
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    /// The value of `key`, to change in place; the key is noted as changed.
    #[inline]
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let epoch = self.epoch;
        let (k, slot) = self.map.get_key_value_mut(key)?;
        if slot.epoch != epoch {
            slot.epoch = epoch;
            self.changed.push(k.clone());
        }
        Some(&mut slot.value)
    }

    /// Sets `key` to `value`; returns the old value.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let epoch = self.epoch;
        match self.map.get_mut(&key) {
            Some(slot) => {
                if slot.epoch != epoch {
                    slot.epoch = epoch;
                    self.changed.push(key);
                }
                Some(std::mem::replace(&mut slot.value, value))
            }
            None => {
                self.changed.push(key.clone());
                self.map.insert(key, Slot { value, epoch });
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (k, slot) = self.map.remove_entry(key)?;
        self.removed.push(k);
        Some(slot.value)
    }

    /// How many keys are set.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.map.clear();
        self.changed.clear();
        self.removed.clear();
        self.chain = None;
    }

    /// The entries to write now, and whether they are the whole state. Starts a new epoch.
    fn take_changes(&mut self, force_whole: bool) -> (Vec<(K, Option<V>)>, bool) {
        let whole = force_whole || self.chain.is_none_or(|n| n >= MAX_CHAIN);
        let removed = std::mem::take(&mut self.removed);
        let changed = std::mem::take(&mut self.changed);
        let out = if whole {
            self.chain = Some(0);
            self.map
                .iter()
                .map(|(k, s)| (k.clone(), Some(s.value.clone())))
                .collect()
        } else {
            self.chain = self.chain.map(|n| n + 1);
            let mut out = Vec::with_capacity(changed.len() + removed.len());
            // Removed keys not set again since.
            for k in removed {
                if !self.map.contains_key(&k) {
                    out.push((k, None));
                }
            }
            if changed.len() * 4 > self.map.len() {
                // Many changes: one pass over the entries changed in this epoch beats a lookup
                // per key (a quarter of a 1 M-key map: ~3x less pause).
                let epoch = self.epoch;
                out.extend(
                    self.map
                        .iter()
                        .filter(|(_, s)| s.epoch == epoch)
                        .map(|(k, s)| (k.clone(), Some(s.value.clone()))),
                );
            } else {
                for k in changed {
                    if let Some(s) = self.map.get(&k) {
                        out.push((k, Some(s.value.clone())));
                    }
                }
            }
            out
        };
        self.epoch = self.epoch.wrapping_add(1).max(1);
        (out, whole)
    }

    /// The next snapshot must be whole (after a restore, or a failed write).
    fn reset_chain(&mut self) {
        self.chain = None;
    }
}

/// What a snapshot part becomes on disk: its bytes are made off the task.
pub(crate) struct PartData {
    pub(crate) name: SmolStr,
    pub(crate) kind: PartKind,
    /// For keyed parts: whether this file starts a new chain.
    pub(crate) whole: bool,
    pub(crate) encode: Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>,
}

/// What a component writes into a checkpoint; given to `snapshot`.
///
/// Each part has a name, unique in the component. Parts are serialized with serde (postcard)
/// after the call returns, off the task, so `snapshot` only copies what it must.
pub struct Snapshot {
    pub(crate) id: CheckpointId,
    pub(crate) key_groups: u32,
    pub(crate) parts: Vec<PartData>,
    pub(crate) error: Option<String>,
    /// Keyed state must be written whole (the task's last write failed).
    pub(crate) force_whole: bool,
}

impl Snapshot {
    pub(crate) fn new(id: CheckpointId, key_groups: u32, force_whole: bool) -> Snapshot {
        Snapshot {
            id,
            key_groups,
            parts: Vec::new(),
            error: None,
            force_whole,
        }
    }

    /// The id of the checkpoint being taken.
    pub fn checkpoint_id(&self) -> CheckpointId {
        self.id
    }

    fn check_name(&mut self, name: &str) -> bool {
        if self.parts.iter().any(|p| p.name == name) {
            self.error
                .get_or_insert_with(|| format!("state part `{name}` written twice"));
            return false;
        }
        true
    }

    /// Writes one value (a read position, a seen set, a list of pending files). Restored by
    /// [`Restore::get`] or [`Restore::get_all`].
    pub fn put<T: Serialize>(&mut self, name: &str, value: &T) {
        if !self.check_name(name) {
            return;
        }
        // Small values are encoded here; the bytes move to the writer.
        match postcard::to_stdvec(value) {
            Ok(bytes) => self.parts.push(PartData {
                name: name.into(),
                kind: PartKind::Value,
                whole: true,
                encode: Box::new(move || Ok(bytes)),
            }),
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("state part `{name}`: {e}"));
            }
        }
    }

    /// Writes a keyed state: the entries changed since its last snapshot, or every entry when a
    /// new chain starts (the first time, after a restore, and every few checkpoints).
    pub fn put_keyed<K: StateKey, V: StateValue>(
        &mut self,
        name: &str,
        state: &mut KeyedState<K, V>,
    ) {
        if !self.check_name(name) {
            return;
        }
        let (entries, whole) = state.take_changes(self.force_whole);
        let groups = self.key_groups;
        self.parts.push(PartData {
            name: name.into(),
            kind: PartKind::Keyed,
            whole,
            encode: Box::new(move || encode_keyed(&entries, groups)),
        });
    }
}

/// A task's chains of keyed files, by part name, as of its last snapshot.
pub(crate) type Chains = HashMap<SmolStr, Vec<String>>;

/// A file name's safe form: letters, digits, `-` and `_` kept, anything else as `%xx`.
fn file_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Encodes and stores a task's snapshot parts (off the task: this blocks), extending `chains`;
/// returns what the manifest records for the task. On an error the chains are cleared, and the
/// task must write its keyed state whole next time.
pub(crate) fn write_parts(
    storage: &dyn CheckpointStorage,
    id: CheckpointId,
    component: &str,
    index: usize,
    parts: Vec<PartData>,
    chains: &mut Chains,
) -> Result<TaskState, String> {
    let mut task = TaskState::default();
    for part in parts {
        let name = format!(
            "data/{id}/{}.{index}.{}",
            file_safe(component),
            file_safe(&part.name)
        );
        let bytes =
            (part.encode)().map_err(|e| format!("encoding state part `{}`: {e}", part.name))?;
        storage
            .put(&name, &bytes)
            .map_err(|e| format!("writing {}: {e}", storage.locate(&name)))?;
        let files = match part.kind {
            PartKind::Value => vec![name],
            PartKind::Keyed => {
                let chain = chains.entry(part.name.clone()).or_default();
                if part.whole {
                    chain.clear();
                } else if chain.is_empty() {
                    return Err(format!(
                        "state part `{}`: changes without the whole state before them",
                        part.name
                    ));
                }
                chain.push(name);
                chain.clone()
            }
        };
        task.parts.insert(
            part.name.to_string(),
            PartState {
                kind: part.kind,
                files,
                bytes: bytes.len() as u64,
            },
        );
    }
    Ok(task)
}

/// The start of every keyed state file.
const KEYED_MAGIC: &[u8] = b"topo-keyed-1\n";

/// A keyed file: the magic, then `(key group, key, value or none)` records, postcard each.
fn encode_keyed<K: StateKey, V: StateValue>(
    entries: &[(K, Option<V>)],
    groups: u32,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(KEYED_MAGIC.len() + entries.len() * 16);
    out.extend_from_slice(KEYED_MAGIC);
    for (k, v) in entries {
        let group = key_group(k.key_hash(), groups);
        out = postcard::to_extend(&(group, k, v), out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Applies a keyed file's records whose key group `keep` accepts.
fn decode_keyed<K: StateKey, V: StateValue>(
    bytes: &[u8],
    keep: impl Fn(u32) -> bool,
    mut apply: impl FnMut(K, Option<V>),
) -> Result<(), String> {
    let mut rest = bytes
        .strip_prefix(KEYED_MAGIC)
        .ok_or("not a keyed state file (bad header)")?;
    while !rest.is_empty() {
        let ((group, k, v), tail): ((u32, K, Option<V>), &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| e.to_string())?;
        rest = tail;
        if keep(group) {
            apply(k, v);
        }
    }
    Ok(())
}

/// One old task's stored parts, as a manifest lists them.
#[derive(Clone, Debug, Default)]
pub(crate) struct OldTask {
    /// Part name -> files, oldest first (a value part has one).
    pub(crate) parts: HashMap<SmolStr, (PartKind, Vec<String>)>,
}

/// What a component's old tasks stored, and where this task stands among the new ones.
#[derive(Debug)]
pub(crate) struct RestoreSource {
    pub(crate) storage: Arc<dyn CheckpointStorage>,
    pub(crate) checkpoint: CheckpointId,
    pub(crate) key_groups: u32,
    /// The component's tasks in the checkpoint, by index.
    pub(crate) old: Vec<OldTask>,
}

/// What a component reads back when a run resumes from a checkpoint; given to `restore`.
#[derive(Clone, Debug)]
pub struct Restore {
    pub(crate) source: Arc<RestoreSource>,
    pub(crate) index: usize,
    pub(crate) parallelism: usize,
}

impl Restore {
    /// The checkpoint being restored.
    pub fn checkpoint_id(&self) -> CheckpointId {
        self.source.checkpoint
    }

    /// The component's parallelism when the checkpoint was taken.
    pub fn old_parallelism(&self) -> usize {
        self.source.old.len()
    }

    /// Whether the parallelism is what it was: task `i` then restores old task `i`'s state.
    pub fn same_parallelism(&self) -> bool {
        self.source.old.len() == self.parallelism
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BoxError> {
        let storage = &self.source.storage;
        storage
            .get(name)
            .map_err(|e| format!("reading checkpoint file {}: {e}", storage.locate(name)).into())
    }

    fn value_of<T: DeserializeOwned>(
        &self,
        old: &OldTask,
        name: &str,
    ) -> Result<Option<T>, BoxError> {
        let Some((kind, files)) = old.parts.get(name) else {
            return Ok(None);
        };
        if *kind != PartKind::Value {
            return Err(format!("state part `{name}` is keyed state, not a value").into());
        }
        let Some(path) = files.last() else {
            return Ok(None);
        };
        let bytes = self.read(path)?;
        postcard::from_bytes(&bytes).map(Some).map_err(|e| {
            format!(
                "state part `{name}` in {} does not read as this type (did its type change?): {e}",
                self.source.storage.locate(path)
            )
            .into()
        })
    }

    /// This task's own value `name`, when the parallelism is unchanged (`None` if it was not
    /// written, or the parallelism changed: then use [`get_all`](Restore::get_all)).
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, BoxError> {
        if !self.same_parallelism() {
            return Ok(None);
        }
        self.value_of(&self.source.old[self.index], name)
    }

    /// Value `name` of every old task, by old task index (for a state that is split anew
    /// when the parallelism changes: offsets by partition, files by path).
    pub fn get_all<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, BoxError> {
        let mut out = Vec::new();
        for old in &self.source.old {
            if let Some(v) = self.value_of(old, name)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Loads keyed state `name`: the key groups this task owns, from every old task's files;
    /// a key found in two old tasks (possible only when the input is not grouped by that key)
    /// keeps the later task's value. See [`keyed_merge`](Restore::keyed_merge).
    pub fn keyed<K: StateKey, V: StateValue>(
        &self,
        name: &str,
        state: &mut KeyedState<K, V>,
    ) -> Result<(), BoxError> {
        self.keyed_merge(name, state, |_, new| new)
    }

    /// Loads keyed state `name` as [`keyed`](Restore::keyed) does, combining a key found in
    /// several old tasks with `merge(old, new)` (a count adds them).
    pub fn keyed_merge<K: StateKey, V: StateValue>(
        &self,
        name: &str,
        state: &mut KeyedState<K, V>,
        mut merge: impl FnMut(V, V) -> V,
    ) -> Result<(), BoxError> {
        let groups = self.source.key_groups;
        let mine = key_groups_of_task(self.index, self.parallelism, groups);
        let olds: Vec<&OldTask> = if self.same_parallelism() {
            vec![&self.source.old[self.index]]
        } else {
            self.source.old.iter().collect()
        };
        let all_groups = self.same_parallelism();
        for old in olds {
            let Some((kind, files)) = old.parts.get(name) else {
                continue;
            };
            if *kind != PartKind::Keyed {
                return Err(format!("state part `{name}` is a value, not keyed state").into());
            }
            // One old task's chain: later files override earlier ones.
            let mut entries: HashMap<K, Option<V>> = HashMap::new();
            for path in files {
                let bytes = self.read(path)?;
                decode_keyed::<K, V>(
                    &bytes,
                    |g| all_groups || mine.contains(&g),
                    |k, v| {
                        entries.insert(k, v);
                    },
                )
                .map_err(|e| {
                    format!(
                        "state part `{name}` in {} does not read as this type (did its type change?): {e}",
                        self.source.storage.locate(path)
                    )
                })?;
            }
            for (k, v) in entries {
                let Some(v) = v else { continue };
                let v = match state.map.remove(&k) {
                    Some(old) => merge(old.value, v),
                    None => v,
                };
                state.map.insert(k, Slot { value: v, epoch: 0 });
            }
        }
        state.changed.clear();
        state.removed.clear();
        state.reset_chain();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::checkpoint::storage::LocalDir;

    fn write(storage: &LocalDir, name: &str, part: PartData) -> String {
        storage
            .put(name, &(part.encode)().expect("encode"))
            .expect("write");
        name.to_string()
    }

    fn source(storage: LocalDir, old: Vec<Vec<String>>) -> Arc<RestoreSource> {
        Arc::new(RestoreSource {
            storage: Arc::new(storage),
            checkpoint: 1,
            key_groups: 16,
            old: old
                .into_iter()
                .map(|files| OldTask {
                    parts: [("counts".into(), (PartKind::Keyed, files))].into(),
                })
                .collect(),
        })
    }

    #[test]
    fn a_chain_of_changes_restores_the_state_and_rescales_by_key_group() {
        let dir = std::env::temp_dir().join(format!("topo-state-test-{}", std::process::id()));
        let storage = LocalDir::new(&dir);
        let mut s: KeyedState<SmolStr, i64> = KeyedState::new();
        for i in 0..100 {
            s.insert(format!("k{i}").into(), i);
        }
        let mut snap = Snapshot::new(1, 16, false);
        snap.put_keyed("counts", &mut s);
        let part = snap.parts.pop().expect("a part");
        assert!(part.whole);
        let f1 = write(&storage, "1", part);
        *s.get_mut("k1").expect("k1") += 10;
        s.remove("k2");
        s.insert("new".into(), 7);
        let mut snap = Snapshot::new(2, 16, false);
        snap.put_keyed("counts", &mut s);
        let part = snap.parts.pop().expect("a part");
        assert!(!part.whole, "only the changes");
        let f2 = write(&storage, "2", part);

        // Many changes (over a quarter of the keys): written by a pass over the changed
        // entries; removals and a removed-then-set-again key among them.
        for i in 10..70 {
            *s.get_mut(format!("k{i}").as_str()).expect("a key") += 1000;
        }
        for i in 70..75 {
            s.remove(format!("k{i}").as_str());
        }
        s.remove("k3");
        s.insert("k3".into(), -3);
        let mut snap = Snapshot::new(3, 16, false);
        snap.put_keyed("counts", &mut s);
        let part = snap.parts.pop().expect("a part");
        assert!(!part.whole, "only the changes");
        let f3 = write(&storage, "3", part);

        let src = source(storage, vec![vec![f1, f2, f3]]);
        let mut back: KeyedState<SmolStr, i64> = KeyedState::new();
        Restore {
            source: src.clone(),
            index: 0,
            parallelism: 1,
        }
        .keyed("counts", &mut back)
        .expect("restore");
        let mut want: HashMap<SmolStr, i64> = s.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let got: HashMap<SmolStr, i64> = back.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(got, want);
        assert_eq!(got.get("k1"), Some(&11));
        assert_eq!(got.get("k3"), Some(&-3));
        assert_eq!(got.get("k12"), Some(&1012));
        assert!(!got.contains_key("k2") && !got.contains_key("k71"));

        // Three new tasks split the keys, each key to the task a fields grouping sends it to.
        let mut union = HashMap::new();
        for index in 0..3 {
            let mut part: KeyedState<SmolStr, i64> = KeyedState::new();
            Restore {
                source: src.clone(),
                index,
                parallelism: 3,
            }
            .keyed("counts", &mut part)
            .expect("restore");
            for (k, v) in part.iter() {
                let group = key_group(k.key_hash(), 16);
                assert_eq!(crate::grouping::task_of_key_group(group, 16, 3), index);
                union.insert(k.clone(), *v);
            }
        }
        assert_eq!(union.len(), want.len());
        want.retain(|k, v| union.get(k) == Some(v));
        assert_eq!(union.len(), want.len());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn key_group_ranges_partition_the_groups_as_routing_does() {
        for p in 1..=20 {
            let mut next = 0;
            for i in 0..p {
                let r = key_groups_of_task(i, p, 128);
                assert_eq!(r.start, next);
                for g in r.clone() {
                    assert_eq!(crate::grouping::task_of_key_group(g, 128, p), i);
                }
                next = r.end;
            }
            assert_eq!(next, 128);
        }
    }
}
