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
//!
//! # The pause
//! `snapshot` runs on the task, between two tuples; everything else (serializing, writing) runs
//! off it. `put` serializes its small value at once; `put_keyed` copies a few changed entries,
//! or shares a large state's segments with the writer, copy-on-write (see [`KeyedState`]): the
//! pause stays at a few milliseconds at most whatever the state's size.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
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

/// A keyed state is split into `2^SEGMENT_BITS` segments by bits of each key's hash: a large
/// snapshot shares them with the writer instead of copying entries on the task.
const SEGMENT_BITS: u32 = 8;
/// How many segments a keyed state has.
const SEGMENTS: usize = 1 << SEGMENT_BITS;

/// Up to this many entries to write (changed, or all for a whole snapshot), a snapshot copies
/// them on the task — about a millisecond at most, and nothing is copied later. Above it, the
/// segments are shared with the writer, unless the entries are at most an eighth of the state
/// and fewer than [`LIST_LIMIT`]: sharing would then make the task copy every segment it
/// changes while the writer reads them (up to the whole state), over 8 times the work of a copy
/// of a few ms.
const COPY_LIMIT: usize = 16_384;

/// More entries than a snapshot copies on the task (see [`COPY_LIMIT`]); the changed keys are
/// listed up to this many: a snapshot of more is shared anyway, and the writer then finds the
/// changed entries by their epoch, so the task stops listing (a clone and a push less per first
/// change).
const LIST_LIMIT: usize = 4 * COPY_LIMIT;

/// A key's hash as a keyed state uses it: its segment (bits 48..56) and the low 32 bits, which
/// its slot keeps. The segment's table hash is made from those 32 bits ([`table_hash`]), so a
/// growing table moves its entries without hashing any key again, and a lookup compares keys
/// only where the 32 bits match.
#[derive(Clone, Copy)]
struct KeyHash {
    segment: usize,
    short: u32,
}

impl KeyHash {
    #[inline]
    fn of<Q: Hash + ?Sized>(hasher: &Hasher, key: &Q) -> KeyHash {
        let hash = hasher.hash_one(key);
        KeyHash {
            segment: (hash >> 48) as usize & (SEGMENTS - 1),
            short: hash as u32,
        }
    }

    /// The hash of the key in its segment's table.
    #[inline]
    fn table(self) -> u64 {
        table_hash(self.short)
    }
}

/// A table hash from a slot's 32 bits: the low bits (the bucket) are those bits times an odd
/// number (a bijection, so as evenly spread), the top 7 (the table's tag) mix all 32.
#[inline]
fn table_hash(short: u32) -> u64 {
    u64::from(short).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The hasher of a keyed state's tables (fast, seeded per state).
type Hasher = foldhash::fast::RandomState;

/// One segment's entries.
type Table<K, V> = hashbrown::HashTable<(K, Slot<V>)>;

/// A segment of a keyed state: the task's own, or shared with snapshots being written (then it
/// is copied on the first change, unless the writer is done with it by then).
#[derive(Debug)]
enum Segment<K, V> {
    Own(Table<K, V>),
    Shared(Arc<Table<K, V>>),
}

impl<K: Clone, V: Clone> Segment<K, V> {
    /// The entries, to read.
    #[inline]
    fn table(&self) -> &Table<K, V> {
        match self {
            Segment::Own(t) => t,
            Segment::Shared(t) => t,
        }
    }

    /// The entries, to change: a shared segment becomes the task's own first.
    #[inline]
    fn own(&mut self) -> &mut Table<K, V> {
        if let Segment::Shared(_) = self {
            self.unshare();
        }
        match self {
            Segment::Own(t) => t,
            // Not reached: `unshare` made it the task's own.
            Segment::Shared(t) => Arc::make_mut(t),
        }
    }

    /// Takes a shared segment back: as it is if no snapshot reads it any more, else a copy.
    #[cold]
    #[inline(never)]
    fn unshare(&mut self) {
        if let Segment::Shared(shared) = std::mem::replace(self, Segment::Own(Table::new())) {
            *self = Segment::Own(Arc::unwrap_or_clone(shared));
        }
    }

    /// Shares the segment with a snapshot (no entry copied).
    fn share(&mut self) -> Arc<Table<K, V>> {
        let shared = match std::mem::replace(self, Segment::Own(Table::new())) {
            Segment::Own(t) => Arc::new(t),
            Segment::Shared(s) => s,
        };
        *self = Segment::Shared(shared.clone());
        shared
    }
}

/// A key of [`KeyedState`]: it can say its stable hash, the one a fields grouping on the same
/// values computes ([`key_hash_of`]). `Sync`: a checkpoint's writer reads the keys while the task
/// goes on.
pub trait StateKey:
    Clone + Eq + Hash + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The key's stable hash: `key_hash_of(&[the key's values])`.
    fn key_hash(&self) -> u64;
}

impl StateKey for SmolStr {
    fn key_hash(&self) -> u64 {
        crate::grouping::key_hash_of_str(self)
    }
}

impl StateKey for String {
    fn key_hash(&self) -> u64 {
        crate::grouping::key_hash_of_str(self)
    }
}

impl StateKey for i64 {
    fn key_hash(&self) -> u64 {
        key_hash_of(&[Value::Int(*self)])
    }
}

/// A value of [`KeyedState`]. `Sync`: a checkpoint's writer reads the values while the task
/// goes on.
pub trait StateValue: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> StateValue for T {}

/// One entry of a keyed state and the checkpoint epoch it last changed in.
#[derive(Clone, Debug)]
struct Slot<V> {
    value: V,
    epoch: u32,
    /// The low 32 bits of the key's hash ([`KeyHash`]).
    hash: u32,
}

/// A map whose checkpoints write only the entries changed since the last one, and cost the task
/// almost no pause however large it is.
///
/// Reads are plain map reads; [`get_mut`](KeyedState::get_mut), [`insert`](KeyedState::insert)
/// and [`remove`](KeyedState::remove) note the key as changed (once per checkpoint interval).
/// Write it with [`Snapshot::put_keyed`] and read it back with [`Restore::keyed`].
///
/// # What a checkpoint costs the task
/// The entries live in 256 segments, each a hash table (a key's segment is 8 bits of its hash).
/// At a checkpoint, what is to be written — the entries changed since the last one, or all of
/// them when a new chain of files starts (the first snapshot, after a restore, after 8
/// incremental ones) — is either:
/// - **copied** on the task when it is small: up to 16,384 entries (about 1 ms at most), or up to
///   65,535 when that is at most an eighth of the state (a few ms). Nothing else is left to do;
/// - else **shared**: the segments go to the writer as they are (a pause of tens of
///   microseconds at any size) and the writer picks the entries from them off the task. A segment
///   the task then changes while the writer still reads it is copied first (copy-on-write), once;
///   one the writer is done with is taken back as it is. The copying is not gone, it is spread:
///   each copy is one segment (a 256th of the state, ~0.1 ms at 500,000 entries), made when the
///   task first changes it, instead of one pause for all of them; while the writer runs, both
///   versions of a copied segment are in memory.
///
/// From 65,536 changed keys in an interval the task stops listing them (the snapshot is shared
/// then, and the writer finds the changed entries by the epoch each entry carries).
///
/// Measured (BENCHMARKS.md "State and exactly-once", 500,000 counts per task): the longest pause
/// went from 26–36 ms (one copy of the changed entries; up to 50 ms with the cores busy) to
/// under 0.05 ms; the copies after a checkpoint cost each task 18–34 ms of processor time
/// (half or more of it page faults) over the next 30–55 ms, about what the single copy cost. The
/// price of the segments: a lookup reads the segment's table header first, 6–10% more per
/// repeated update in a microbenchmark (`cargo bench -p topo-runtime --bench keyed_state`; first
/// changes level, inserts cheaper), which the word count's throughput does not show.
///
/// Keys and values are `Sync`: the writer reads shared segments while the task reads them too.
#[derive(Debug)]
pub struct KeyedState<K, V> {
    hasher: Hasher,
    segments: Box<[Segment<K, V>; SEGMENTS]>,
    len: usize,
    /// Keys set or changed since the last snapshot (a key may appear twice), up to `list_limit`:
    /// a full list may miss some, and the snapshot then finds them by their epoch.
    changed: Vec<K>,
    /// Keys removed since the last snapshot.
    removed: Vec<K>,
    epoch: u32,
    /// Snapshots written since the last whole one; `None` before the first (or after a
    /// restore): the next snapshot is whole.
    chain: Option<usize>,
    /// [`COPY_LIMIT`] and [`LIST_LIMIT`] (lower in tests).
    copy_limit: usize,
    list_limit: usize,
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
            hasher: Hasher::default(),
            segments: Box::new(std::array::from_fn(|_| Segment::Own(Table::new()))),
            len: 0,
            changed: Vec::new(),
            removed: Vec::new(),
            epoch: 1,
            chain: None,
            copy_limit: COPY_LIMIT,
            list_limit: LIST_LIMIT,
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = KeyHash::of(&self.hasher, key);
        self.segments[h.segment]
            .table()
            .find(h.table(), |(k, s)| s.hash == h.short && k.borrow() == key)
            .map(|(_, s)| &s.value)
    }

    /// The value of `key`, to change in place; the key is noted as changed.
    #[inline]
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value_mut(key).map(|(_, v)| v)
    }

    /// The stored key and the value of `key`, to change in place; the key is noted as changed.
    /// Where the value goes out with its key (a count emitted as `(word, n)`), the stored key is
    /// cloned instead of a new one built from `key`.
    #[inline]
    pub fn get_key_value_mut<Q>(&mut self, key: &Q) -> Option<(&K, &mut V)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = KeyHash::of(&self.hasher, key);
        let epoch = self.epoch;
        let (k, slot) = self.segments[h.segment]
            .own()
            .find_mut(h.table(), |(k, s)| s.hash == h.short && k.borrow() == key)?;
        if slot.epoch != epoch {
            slot.epoch = epoch;
            if self.changed.len() < self.list_limit {
                self.changed.push(k.clone());
            }
        }
        Some((k, &mut slot.value))
    }

    /// The stored key and the value of `key`, inserting `make(key)` first when it is missing: one
    /// lookup either way. The key is noted as changed.
    #[inline]
    pub fn get_or_insert_with<Q>(
        &mut self,
        key: &Q,
        make: impl FnOnce(&Q) -> (K, V),
    ) -> (&K, &mut V)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = KeyHash::of(&self.hasher, key);
        let epoch = self.epoch;
        let table = self.segments[h.segment].own();
        let listed = self.changed.len() < self.list_limit;
        let (k, slot) = match table.entry(
            h.table(),
            |(k, s)| s.hash == h.short && k.borrow() == key,
            |(_, s)| table_hash(s.hash),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => {
                let (k, slot) = e.into_mut();
                if slot.epoch != epoch {
                    slot.epoch = epoch;
                    if listed {
                        self.changed.push(k.clone());
                    }
                }
                (&*k, slot)
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                let (k, value) = make(key);
                if listed {
                    self.changed.push(k.clone());
                }
                self.len += 1;
                let (k, slot) = e
                    .insert((
                        k,
                        Slot {
                            value,
                            epoch,
                            hash: h.short,
                        },
                    ))
                    .into_mut();
                (&*k, slot)
            }
        };
        (k, &mut slot.value)
    }

    /// Sets `key` to `value`; returns the old value.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let h = KeyHash::of(&self.hasher, &key);
        let epoch = self.epoch;
        let table = self.segments[h.segment].own();
        match table.entry(
            h.table(),
            |(k, s)| s.hash == h.short && *k == key,
            |(_, s)| table_hash(s.hash),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                let slot = &mut e.get_mut().1;
                if slot.epoch != epoch {
                    slot.epoch = epoch;
                    if self.changed.len() < self.list_limit {
                        self.changed.push(key);
                    }
                }
                Some(std::mem::replace(&mut slot.value, value))
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                if self.changed.len() < self.list_limit {
                    self.changed.push(key.clone());
                }
                e.insert((
                    key,
                    Slot {
                        value,
                        epoch,
                        hash: h.short,
                    },
                ));
                self.len += 1;
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
        let h = KeyHash::of(&self.hasher, key);
        let entry = self.segments[h.segment]
            .own()
            .find_entry(h.table(), |(k, s)| s.hash == h.short && k.borrow() == key)
            .ok()?;
        let ((k, slot), _) = entry.remove();
        self.len -= 1;
        self.removed.push(k);
        Some(slot.value)
    }

    /// How many keys are set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.segments
            .iter()
            .flat_map(|s| s.table().iter())
            .map(|(k, s)| (k, &s.value))
    }

    /// How many parts [`iter_part`](KeyedState::iter_part) splits the entries into.
    pub fn parts(&self) -> usize {
        SEGMENTS
    }

    /// The entries of part `part` (of [`parts`](KeyedState::parts)), in no particular order:
    /// the parts together hold every entry once. For going through a large state a part at a
    /// time (a count emitting its whole map at the end, see
    /// [`BasicBolt::finish_next`](crate::BasicBolt::finish_next)). Empty past the last part.
    pub fn iter_part(&self, part: usize) -> impl Iterator<Item = (&K, &V)> {
        self.segments
            .get(part)
            .into_iter()
            .flat_map(|s| s.table().iter())
            .map(|(k, s)| (k, &s.value))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        for s in self.segments.iter_mut() {
            *s = Segment::Own(Table::new());
        }
        self.len = 0;
        self.changed.clear();
        self.removed.clear();
        self.chain = None;
    }

    /// Sets a restored entry (not noted as changed: the next snapshot is whole), combining it
    /// with a value already there by `merge(old, new)`.
    fn restore_entry(&mut self, key: K, value: V, merge: &mut impl FnMut(V, V) -> V) {
        let h = KeyHash::of(&self.hasher, &key);
        let table = self.segments[h.segment].own();
        let slot = |value| Slot {
            value,
            epoch: 0,
            hash: h.short,
        };
        match table.entry(
            h.table(),
            |(k, s)| s.hash == h.short && *k == key,
            |(_, s)| table_hash(s.hash),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => {
                let ((key, old), vacant) = e.remove();
                let value = merge(old.value, value);
                vacant.insert((key, slot(value)));
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert((key, slot(value)));
                self.len += 1;
            }
        }
    }

    /// What to write now, and whether it is the whole state. Starts a new epoch.
    fn take_changes(&mut self, force_whole: bool) -> (Changes<K, V>, bool) {
        let whole = force_whole || self.chain.is_none_or(|n| n >= MAX_CHAIN);
        self.chain = if whole {
            Some(0)
        } else {
            self.chain.map(|n| n + 1)
        };
        let removed = std::mem::take(&mut self.removed);
        let changed = std::mem::take(&mut self.changed);
        let epoch = self.epoch;
        self.epoch = self.epoch.wrapping_add(1).max(1);
        let entries = if whole {
            self.len
        } else {
            changed.len() + removed.len()
        };
        // Copying also walks (or drops) the key lists on the task.
        let work = entries.max(changed.len() + removed.len());
        let limit = self.copy_limit;
        // Every changed key is listed (else a copy could miss some).
        let listed = changed.len() < self.list_limit;
        if !listed || (work > limit && (work >= self.list_limit || 8 * work > self.len)) {
            // Share the segments: the writer picks the entries (and drops the key lists).
            let segments = self.segments.iter_mut().map(Segment::share).collect();
            let shared = SharedChanges {
                hasher: self.hasher.clone(),
                segments,
                epoch: (!whole).then_some(epoch),
                changed,
                listed,
                removed,
            };
            return (Changes::Shared(shared), whole);
        }
        let mut out = Vec::with_capacity(entries);
        if whole {
            out.extend(self.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        } else {
            // Removed keys not set again since.
            for k in removed {
                if self.get(&k).is_none() {
                    out.push((k, None));
                }
            }
            for k in changed {
                if let Some(v) = self.get(&k) {
                    let v = v.clone();
                    out.push((k, Some(v)));
                }
            }
        }
        (Changes::Copied(out), whole)
    }

    /// The next snapshot must be whole (after a restore, or a failed write).
    fn reset_chain(&mut self) {
        self.chain = None;
    }
}

/// What a snapshot writes of a keyed state, taken on the task and serialized off it.
enum Changes<K, V> {
    /// Entries copied on the task (`None`: removed).
    Copied(Vec<(K, Option<V>)>),
    /// The state's segments, shared with the task.
    Shared(SharedChanges<K, V>),
}

/// A snapshot of a keyed state by its segments: every entry (a whole snapshot), or those
/// changed in `epoch` and the removed keys.
struct SharedChanges<K, V> {
    hasher: Hasher,
    segments: Vec<Arc<Table<K, V>>>,
    /// `None`: every entry; else the entries changed in this epoch.
    epoch: Option<u32>,
    /// The keys changed in `epoch` (when few, they are looked up rather than every entry
    /// scanned).
    changed: Vec<K>,
    /// Whether `changed` lists every changed key (else the entries are found by their epoch).
    listed: bool,
    /// Keys removed in `epoch` (written unless set again since).
    removed: Vec<K>,
}

impl<K: StateKey, V: StateValue> Changes<K, V> {
    /// The keyed file's bytes.
    fn encode(self, groups: u32) -> Result<Vec<u8>, String> {
        match self {
            Changes::Copied(entries) => {
                let mut out = Vec::with_capacity(KEYED_MAGIC.len() + entries.len() * 16);
                out.extend_from_slice(KEYED_MAGIC);
                for (k, v) in &entries {
                    out = put_record(out, groups, k, v.as_ref())?;
                }
                Ok(out)
            }
            Changes::Shared(s) => s.encode(groups),
        }
    }
}

impl<K: StateKey, V: StateValue> SharedChanges<K, V> {
    /// The keyed file's bytes; each segment is let go as soon as it is written (the task then
    /// takes it back without a copy).
    fn encode(self, groups: u32) -> Result<Vec<u8>, String> {
        let SharedChanges {
            hasher,
            segments,
            epoch,
            changed,
            listed,
            removed,
        } = self;
        let total: usize = segments.iter().map(|s| s.len()).sum();
        let find = |k: &K| {
            let h = KeyHash::of(&hasher, k);
            segments[h.segment].find(h.table(), |(x, s)| s.hash == h.short && x == k)
        };
        let records = if epoch.is_none() || !listed {
            total
        } else {
            changed.len()
        };
        let mut out = Vec::with_capacity(KEYED_MAGIC.len() + (records + removed.len()) * 16);
        out.extend_from_slice(KEYED_MAGIC);
        // Removed keys not set again since.
        for k in &removed {
            if find(k).is_none() {
                out = put_record::<K, V>(out, groups, k, None)?;
            }
        }
        match epoch {
            Some(_) if listed && changed.len() * 4 <= total => {
                // Few changes: a lookup each beats a pass over every entry.
                for k in &changed {
                    if let Some((k, slot)) = find(k) {
                        out = put_record(out, groups, k, Some(&slot.value))?;
                    }
                }
            }
            _ => {
                for segment in segments {
                    for (k, slot) in segment.iter() {
                        if epoch.is_none_or(|e| slot.epoch == e) {
                            out = put_record(out, groups, k, Some(&slot.value))?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Appends one record of a keyed file: `(key group, key, value or none)`.
fn put_record<K: StateKey, V: StateValue>(
    out: Vec<u8>,
    groups: u32,
    k: &K,
    v: Option<&V>,
) -> Result<Vec<u8>, String> {
    let group = key_group(k.key_hash(), groups);
    postcard::to_extend(&(group, k, v), out).map_err(|e| e.to_string())
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
    /// new chain starts (the first time, after a restore, and every few checkpoints). Few are
    /// copied here; a large state's segments are shared with the writer instead (see
    /// [`KeyedState`]), so this returns within a few milliseconds at any size.
    pub fn put_keyed<K: StateKey, V: StateValue>(
        &mut self,
        name: &str,
        state: &mut KeyedState<K, V>,
    ) {
        if !self.check_name(name) {
            return;
        }
        let (changes, whole) = state.take_changes(self.force_whole);
        let groups = self.key_groups;
        self.parts.push(PartData {
            name: name.into(),
            kind: PartKind::Keyed,
            whole,
            encode: Box::new(move || changes.encode(groups)),
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

/// The start of every keyed state file. A keyed file: the magic, then `(key group, key, value
/// or none)` records, postcard each ([`put_record`]).
const KEYED_MAGIC: &[u8] = b"topo-keyed-1\n";

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
                if let Some(v) = v {
                    state.restore_entry(k, v, &mut merge);
                }
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

    #[test]
    fn string_keys_hash_as_the_fields_grouping_routes_them() {
        for word in [
            "",
            "a",
            "word",
            "a word longer than twenty-three bytes, shared",
        ] {
            let routed = key_hash_of(&[Value::from(word)]);
            assert_eq!(SmolStr::new(word).key_hash(), routed, "{word:?}");
            assert_eq!(word.to_string().key_hash(), routed, "{word:?}");
        }
        assert_ne!(SmolStr::new("a").key_hash(), SmolStr::new("b").key_hash());
    }

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
        let mut want: HashMap<SmolStr, i64> = s.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let got = restored(&src);
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

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    /// `n` random changes to keys `k0..k{space}` of both `s` and `model`: mostly adds (a new
    /// key set to 1), some removals and some overwrites.
    fn churn(
        s: &mut KeyedState<SmolStr, i64>,
        model: &mut HashMap<SmolStr, i64>,
        rng: &mut Rng,
        n: usize,
        space: u64,
    ) {
        for _ in 0..n {
            let key: SmolStr = format!("k{}", rng.below(space)).into();
            match rng.below(10) {
                0 => {
                    assert_eq!(s.remove(&key), model.remove(&key));
                }
                1 => {
                    let v = rng.below(1000) as i64;
                    assert_eq!(s.insert(key.clone(), v), model.insert(key, v));
                }
                _ => match s.get_mut(&key) {
                    Some(v) => {
                        *v += 1;
                        *model.get_mut(&key).expect("in the model") += 1;
                    }
                    None => {
                        assert!(!model.contains_key(&key));
                        s.insert(key.clone(), 1);
                        model.insert(key, 1);
                    }
                },
            }
        }
        assert_eq!(s.len(), model.len());
    }

    fn restored(src: &Arc<RestoreSource>) -> HashMap<SmolStr, i64> {
        let mut back: KeyedState<SmolStr, i64> = KeyedState::new();
        Restore {
            source: src.clone(),
            index: 0,
            parallelism: 1,
        }
        .keyed("counts", &mut back)
        .expect("restore");
        back.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    // Guards the snapshots that share the state's segments with the writer (copy-on-write):
    // whatever the task does after a snapshot and before the writer serializes it — changes,
    // removals, new keys, in the same segments — the file holds the state as of the snapshot,
    // and the chain restores it. Covers each way a snapshot is taken: a whole one shared, a
    // delta of many changes (shared, every entry scanned), of fewer (shared, changed keys
    // looked up), of more than the task lists (shared, by epoch), of few or of an eighth of the
    // state (copied on the task); and the writer lets every segment go.
    #[test]
    fn shared_snapshots_hold_the_state_as_of_the_snapshot() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let storage = LocalDir::new(dir.path());
        let mut s: KeyedState<SmolStr, i64> = KeyedState::new();
        let mut model = HashMap::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut files = Vec::new();
        let mut rebuilt = HashMap::new();
        let mut pending: Option<(Changes<SmolStr, i64>, HashMap<SmolStr, i64>)> = None;
        // (changes before the snapshot, key space, whether it is shared)
        // Sizes against a lower copy limit (a debug build's maps are slow).
        s.copy_limit = 1_000;
        s.list_limit = 4_000;
        let phases: [(usize, u64, bool); 7] = [
            (6_000, 4_000, true),   // whole, 2,800 keys
            (3_000, 4_000, true),   // many changes: a scan
            (7_000, 20_000, true),  // more keys, more than listed: by epoch
            (2_000, 20_000, true),  // fewer changes than a quarter: lookups
            (200, 20_000, false),   // few: copied
            (12_000, 40_000, true), // more keys, more than listed: by epoch
            (1_500, 40_000, false), // over the limit, but an eighth of the state: copied
        ];
        for (i, (n, space, shared)) in phases.into_iter().enumerate() {
            churn(&mut s, &mut model, &mut rng, n, space);
            let (changes, whole) = s.take_changes(false);
            assert_eq!(whole, i == 0);
            assert_eq!(matches!(changes, Changes::Shared(_)), shared, "phase {i}");
            if let Changes::Shared(c) = &changes
                && i == 1
            {
                let total: usize = c.segments.iter().map(|s| s.len()).sum();
                assert!(c.changed.len() * 4 > total, "phase 1 scans");
            }
            if let Changes::Shared(c) = &changes {
                assert_eq!(
                    c.listed,
                    i != 2 && i != 5,
                    "phase {i}: 2 and 5 overflow the list"
                );
            }
            if let Changes::Shared(c) = &changes
                && i == 3
            {
                let total: usize = c.segments.iter().map(|s| s.len()).sum();
                assert!(c.changed.len() * 4 <= total, "phase 3 looks keys up");
            }
            // The previous snapshot is written only now, after this phase's changes; applied
            // over the files before it, it gives the state as of that snapshot.
            if let Some((c, want)) = pending.take() {
                let bytes = c.encode(16).expect("encode");
                apply(&mut rebuilt, &bytes);
                assert_eq!(rebuilt, want, "after phase {}", i - 1);
                files.push(format!("part-{i}"));
                storage.put(&files[i - 1], &bytes).expect("write");
            }
            pending = Some((changes, model.clone()));
        }
        churn(&mut s, &mut model, &mut rng, 1_000, 40_000);
        let (c, want) = pending.take().expect("the last snapshot");
        files.push("part-last".into());
        storage
            .put("part-last", &c.encode(16).expect("encode"))
            .expect("write");
        // The whole chain, restored as a task does.
        let src = source(LocalDir::new(dir.path()), vec![files]);
        assert_eq!(restored(&src), want, "after the last phase");
        // Every segment is the task's alone again: taken back without a copy.
        for seg in s.segments.iter() {
            if let Segment::Shared(t) = seg {
                assert_eq!(Arc::strong_count(t), 1);
            }
        }
        // The keys spread over the segments (no segment over twice its share).
        let most = s.segments.iter().map(|t| t.table().len()).max();
        assert!(most.is_some_and(|m| m < 2 * s.len() / SEGMENTS), "{most:?}");
    }

    // Guards the cap on the list of changed keys: with more changes than listed, few against the
    // state (the writer would look them up), the snapshot is shared and the writer finds the
    // changed entries by their epoch instead of the partial list — no change is lost.
    #[test]
    fn changes_past_the_list_are_found_by_their_epoch() {
        let mut s: KeyedState<SmolStr, i64> = KeyedState::new();
        s.copy_limit = 100;
        s.list_limit = 400;
        for i in 0..10_000 {
            s.insert(format!("k{i}").into(), i);
        }
        let mut rebuilt = HashMap::new();
        let (c, whole) = s.take_changes(false);
        assert!(whole);
        apply(&mut rebuilt, &c.encode(16).expect("encode"));
        // 1,000 changes: more than the 400 listed, a tenth of the state.
        for i in 0..1_000 {
            *s.get_mut(format!("k{}", i * 7).as_str()).expect("a key") += 1;
        }
        let (c, whole) = s.take_changes(false);
        assert!(!whole);
        assert!(
            matches!(&c, Changes::Shared(sh) if !sh.listed && sh.changed.len() == 400),
            "shared, the list marked partial"
        );
        apply(&mut rebuilt, &c.encode(16).expect("encode"));
        let want: HashMap<SmolStr, i64> = s.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(rebuilt, want);
        assert_eq!(rebuilt.get("k6993"), Some(&6994));
    }

    /// Applies a keyed file's records to `map`.
    fn apply(map: &mut HashMap<SmolStr, i64>, bytes: &[u8]) {
        decode_keyed::<SmolStr, i64>(
            bytes,
            |_| true,
            |k, v| match v {
                Some(v) => {
                    map.insert(k, v);
                }
                None => {
                    map.remove(&k);
                }
            },
        )
        .expect("a keyed file");
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
