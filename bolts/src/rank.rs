//! `rolling_count` and `rankings`: rolling counts and intermediate/total top-N rankings, for
//! trending topics (as Storm's `RollingTopWords`).
//!
//! ```text
//!                    fields(word)                fields(word)                 global
//! spout ─► split ──────────────► rolling_count ──────────────► rankings ─────────────► rankings
//!                                 (N tasks)                     intermediate            total
//!                                 slot counters;                (N tasks)               (1 task)
//!                                 every emit_every:             latest count per        latest rankings per
//!                                 (word, count, window_end)     word; every emit_every: intermediate task;
//!                                 per word in the window        its top N               top N of their union
//! ```
//!
//! The fields groupings give each word to one `rolling_count` task and one intermediate
//! `rankings` task, so each word's count is computed in one place, each intermediate ranking
//! covers a disjoint set of words, and the total top N — the top N of the union of the
//! intermediate top Ns — is exact: a word in the global top N is in its own task's top N.
//!
//! # Options
//! ```toml
//! [bolts.counts]
//! kind = "rolling_count"
//! inputs = [{ from = "split", grouping = { fields = ["word"] } }]
//! field = "word"         # the object counted
//! window = "5m"          # counts over the last 5 minutes...
//! emit_every = "1m"      # ...emitted every minute (window must be a multiple)
//!
//! [bolts.intermediate]
//! kind = "rankings"
//! inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
//! mode = "intermediate"  # input (word, count) updates
//! top = 10
//! emit_every = "2s"
//! field = "word"         # object field of the input and of each ranking entry
//! count_field = "count"  # count field of the input
//!
//! [bolts.total]
//! kind = "rankings"
//! inputs = [{ from = "intermediate", grouping = "global" }]
//! mode = "total"         # input: `rankings` tuples of intermediate tasks
//! top = 10
//! ```
//!
//! # Semantics
//! - `rolling_count` keeps one counter per object and slot, one slot per `emit_every`
//!   (`window / emit_every` slots). Each input adds one to its object's current slot. On each
//!   tick (every `emit_every`) it emits `(<field>, count, window_end)` for every object counted in
//!   the window — the current slot and the `window / emit_every - 1` before it — with
//!   `window_end` the tick's time in ms; an object whose count fell to zero is emitted once with
//!   count 0 (so rankings drop it) and forgotten. Then the window advances one slot: the oldest
//!   slot is cleared and becomes the current one. At end of input it emits the current counts.
//!   Inputs are acked on receipt; the counts are checkpointed (see below).
//! - `rankings` emits `(rankings, at)`: `rankings` is a list of `{<field>: object, count: n}`
//!   maps, highest count first, ties by object (text order), at most `top` long; `at` is the
//!   time in ms. It emits every `emit_every`, even an empty ranking, and at end of input.
//!   - `intermediate`: each input `(<field>, <count_field>)` sets the object's latest count
//!     (replacing the previous one); a count of 0 removes the object. Every object is kept,
//!     so each ranking is exact for the objects this task sees.
//!   - `total`: each input is a `rankings` tuple of an intermediate task; the latest one per
//!     sending task replaces its previous one, and the output is the top `top` of their union.
//!     An object reported by several tasks (only if the input was not fields-grouped) counts
//!     once, with its highest count.
//! - Objects are compared and reported as text: a non-text object is counted by its printed
//!   form (`42`, `true`).
//! - A tuple without the needed fields, or with a count that is not a non-negative integer, goes
//!   to the `error` stream as `(reason, record)` and is acked.
//!
//! # Checkpoints
//! Both bolts are stateful (`has_state`): a topology with them takes checkpoints.
//! - `rolling_count`: per object (keyed state by the object's text, so a fields grouping on the
//!   field lets a restore change the parallelism), its count per slot, the current slot first.
//!   An object counted by two old tasks (an input not grouped by the field) adds up, slot by
//!   slot. Under `exactly_once` every input is counted once in the restored counts; under
//!   `at_least_once` inputs after the checkpoint are counted again if their spout replays them.
//!   Slots advance by processing-time ticks: a crash's downtime does not advance the window.
//! - `rankings` `intermediate`: the latest count per object (keyed state by object; an object
//!   found in two old tasks keeps its highest count). `total`: each intermediate task's latest
//!   ranking, by component and task index; after a restore that changed the intermediate
//!   component's parallelism, they come with the new tasks' next emits.
//! - Outputs (emitted on ticks) are not part of the state: a ranking or count emitted after
//!   the last checkpoint before a crash may be emitted again, with the state it then has.
//!
//! # Known limits
//! - Processing time only: slots advance on ticks, so a late tick widens its slot.
//! - The first windows after start hold fewer than `window / emit_every` slots of data.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, KeyedState, OutputDeclarer, Restore, Snapshot,
    TaskContext, TaskId, Tuple, Value, Values, clock,
};

use crate::expr::ERROR_STREAM;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Options of the `rolling_count` bolt; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RollingCountOptions {
    /// The input field holding the object counted; also the first output field.
    pub field: String,
    /// The window the counts cover.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub window: Duration,
    /// How often the counts are emitted and the window advances (one slot).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub emit_every: Duration,
}

impl Default for RollingCountOptions {
    fn default() -> Self {
        RollingCountOptions {
            field: "word".into(),
            window: Duration::from_secs(300),
            emit_every: Duration::from_secs(60),
        }
    }
}

/// The `rolling_count` bolt: see the [module docs](self).
#[derive(Debug)]
pub struct RollingCount {
    field: SmolStr,
    emit_every: Duration,
    slots: usize,
    /// Per object, one count per slot, the current slot first (keyed state by object).
    counts: KeyedState<SmolStr, Box<[u64]>>,
}

impl Clone for RollingCount {
    /// A new instance with the same options and no counts (the factory of the bolt's tasks).
    fn clone(&self) -> Self {
        RollingCount {
            field: self.field.clone(),
            emit_every: self.emit_every,
            slots: self.slots,
            counts: KeyedState::new(),
        }
    }
}

/// The text form of an object (strings as they are, anything else printed).
fn object_key(v: &Value) -> SmolStr {
    match v {
        Value::Str(s) => s.clone(),
        other => SmolStr::from(other.to_string()),
    }
}

fn emit_error(out: &mut BasicCollector<'_>, reason: String, input: &Tuple) {
    let mut vals = Values::new();
    vals.push(Value::from(reason));
    vals.push(input.to_record());
    out.emit_to(ERROR_STREAM, vals);
}

fn check_field(option: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("option `{option}` must not be empty"));
    }
    Ok(())
}

impl RollingCount {
    /// A rolling counter with these options, or why they are invalid: an empty `field`, a zero
    /// `emit_every`, or a `window` that is not a non-zero multiple of `emit_every`.
    pub fn new(opts: RollingCountOptions) -> Result<RollingCount, String> {
        check_field("field", &opts.field)?;
        let every = opts.emit_every.as_nanos();
        let window = opts.window.as_nanos();
        if every == 0 {
            return Err("option `emit_every` must be greater than zero".into());
        }
        if window == 0 || !window.is_multiple_of(every) {
            return Err(format!(
                "option `window` = {} must be a non-zero multiple of `emit_every` = {} (e.g. window = \"5m\", emit_every = \"1m\")",
                humantime::format_duration(opts.window),
                humantime::format_duration(opts.emit_every)
            ));
        }
        let slots = usize::try_from(window / every)
            .map_err(|_| "option `window` / `emit_every` gives too many slots".to_string())?;
        if slots > 100_000 {
            return Err(format!(
                "option `window` / `emit_every` = {slots} slots; at most 100000 (raise `emit_every`)"
            ));
        }
        Ok(RollingCount {
            field: opts.field.into(),
            emit_every: opts.emit_every,
            slots,
            counts: KeyedState::new(),
        })
    }

    /// Emits the window's count of every object; with `advance`, forgets objects whose count is
    /// zero (emitting 0 for them once) and moves the window one slot.
    fn emit_counts(&mut self, out: &mut BasicCollector<'_>, advance: bool) {
        let now = clock::now_millis();
        let mut keys = Vec::with_capacity(if advance { self.counts.len() } else { 0 });
        for (obj, slots) in self.counts.iter() {
            let total: u64 = slots.iter().sum();
            if total > 0 || advance {
                let mut v = Values::new();
                v.push(Value::Str(obj.clone()));
                v.push(Value::from(total));
                v.push(Value::Int(now));
                out.emit(v);
            }
            if advance {
                keys.push((obj.clone(), total));
            }
        }
        // Advance: an object at zero is forgotten; the others move one slot (the oldest slot
        // becomes the new current one, cleared).
        for (obj, total) in keys {
            if total == 0 {
                self.counts.remove(&obj);
            } else if let Some(slots) = self.counts.get_mut(&obj) {
                slots.rotate_right(1);
                slots[0] = 0;
            }
        }
    }
}

impl BasicBolt for RollingCount {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare([self.field.as_str(), "count", "window_end"]);
        out.declare_stream(ERROR_STREAM, ["reason", "record"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let value = match input.field(&self.field) {
            Ok(Value::Null) => {
                let reason = format!("field `{}` is null", self.field);
                emit_error(out, reason, input);
                return Ok(());
            }
            Ok(v) => v,
            Err(e) => {
                emit_error(out, e.to_string(), input);
                return Ok(());
            }
        };
        if let Some(slots) = value.as_str().and_then(|s| self.counts.get_mut(s)) {
            // A known object: no key to build.
            slots[0] += 1;
            return Ok(());
        }
        let key = object_key(value);
        match self.counts.get_mut(&key) {
            Some(slots) => slots[0] += 1,
            None => {
                let mut slots = vec![0; self.slots].into_boxed_slice();
                slots[0] = 1;
                self.counts.insert(key, slots);
            }
        }
        Ok(())
    }

    fn tick(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.emit_counts(out, true);
        Ok(())
    }

    fn has_state(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        snap.put_keyed("counts", &mut self.counts);
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        // An object counted by two old tasks (an input not grouped by the field) adds up, slot
        // by slot.
        from.keyed_merge("counts", &mut self.counts, |a, b| {
            let mut out = a.into_vec();
            out.resize(out.len().max(b.len()), 0);
            for (x, y) in out.iter_mut().zip(b.iter()) {
                *x += y;
            }
            out.into_boxed_slice()
        })?;
        // Counts of another `window` / `emit_every`: the newest slots kept, zeros added.
        let n = self.slots;
        let keys: Vec<SmolStr> = self
            .counts
            .iter()
            .filter(|(_, s)| s.len() != n)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(s) = self.counts.get_mut(&k) {
                let mut v = s.to_vec();
                v.resize(n, 0);
                *s = v.into_boxed_slice();
            }
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.emit_every)
    }

    fn finish(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.emit_counts(out, false);
        Ok(())
    }
}

/// What a `rankings` bolt ranks: count updates, or the rankings of intermediate tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RankMode {
    /// Input `(object, count)` updates; output this task's top N.
    Intermediate,
    /// Input `rankings` tuples of intermediate tasks; output the top N of their union.
    Total,
}

/// `mode` has a serde default (so a missing one is reported by [`Rankings::new`]), but is
/// required.
fn rankings_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["mode"]);
}

/// Options of the `rankings` bolt; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = rankings_required)]
pub struct RankingsOptions {
    /// `intermediate`: from (object, count) updates, this task's top N; `total`: the top N of
    /// the intermediate rankings.
    pub mode: Option<RankMode>,
    /// How many objects a ranking holds.
    pub top: usize,
    /// How often the ranking is emitted.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub emit_every: Duration,
    /// The object field (of the input in intermediate mode, and of each ranking entry).
    pub field: String,
    /// The count field of the input (intermediate mode).
    pub count_field: String,
}

impl Default for RankingsOptions {
    fn default() -> Self {
        RankingsOptions {
            mode: None,
            top: 10,
            emit_every: Duration::from_secs(2),
            field: "word".into(),
            count_field: "count".into(),
        }
    }
}

/// The `rankings` bolt: see the [module docs](self).
#[derive(Debug)]
pub struct Rankings {
    mode: RankMode,
    top: usize,
    emit_every: Duration,
    field: SmolStr,
    count_field: SmolStr,
    /// Intermediate: the latest count per object (keyed state by object).
    counts: KeyedState<SmolStr, u64>,
    /// Total: the latest ranking per intermediate task (and the task's component).
    per_task: FastMap<TaskId, (SmolStr, Vec<(SmolStr, u64)>)>,
    /// This task's context (from `prepare`): names intermediate tasks in the checkpoint.
    ctx: Option<TaskContext>,
}

impl Clone for Rankings {
    /// A new instance with the same options and no state (the factory of the bolt's tasks).
    fn clone(&self) -> Self {
        Rankings {
            mode: self.mode,
            top: self.top,
            emit_every: self.emit_every,
            field: self.field.clone(),
            count_field: self.count_field.clone(),
            counts: KeyedState::new(),
            per_task: FastMap::default(),
            ctx: None,
        }
    }
}

/// A total ranking's checkpointed input: (component, task index, the component's parallelism,
/// that task's latest ranking).
type StoredRanking = (SmolStr, u32, u32, Vec<(SmolStr, u64)>);

/// Orders ranking entries: highest count first, then by object.
fn rank_order(a: &(&SmolStr, u64), b: &(&SmolStr, u64)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0))
}

/// Sorts `entries` by [`rank_order`] and keeps the first `top`.
fn top_n(entries: &mut Vec<(&SmolStr, u64)>, top: usize) {
    if entries.len() > top {
        entries.select_nth_unstable_by(top - 1, rank_order);
        entries.truncate(top);
    }
    entries.sort_unstable_by(rank_order);
}

impl Rankings {
    /// A rankings bolt with these options, or why they are invalid: no `mode`, `top` of 0,
    /// a zero `emit_every`, or an empty `field`/`count_field`.
    pub fn new(opts: RankingsOptions) -> Result<Rankings, String> {
        let Some(mode) = opts.mode else {
            return Err(
                "option `mode` is required: \"intermediate\" (input: object and count) or \"total\" (input: rankings of intermediate tasks)"
                    .into(),
            );
        };
        if opts.top == 0 {
            return Err("option `top` must be at least 1, got 0".into());
        }
        if opts.emit_every.is_zero() {
            return Err("option `emit_every` must be greater than zero".into());
        }
        check_field("field", &opts.field)?;
        check_field("count_field", &opts.count_field)?;
        Ok(Rankings {
            mode,
            top: opts.top,
            emit_every: opts.emit_every,
            field: opts.field.into(),
            count_field: opts.count_field.into(),
            counts: KeyedState::new(),
            per_task: FastMap::default(),
            ctx: None,
        })
    }

    fn update(&mut self, input: &Tuple) -> Result<(), String> {
        match self.mode {
            RankMode::Intermediate => {
                let obj = input.field(&self.field).map_err(|e| e.to_string())?;
                if obj.is_null() {
                    return Err(format!("field `{}` is null", self.field));
                }
                let count = input.field(&self.count_field).map_err(|e| e.to_string())?;
                let n = count
                    .as_i64()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(
                            "field `{}` must be a non-negative integer, got {count} ({})",
                            self.count_field,
                            count.type_name()
                        )
                    })?;
                let key = object_key(obj);
                if n == 0 {
                    self.counts.remove(&key);
                } else {
                    self.counts.insert(key, n);
                }
            }
            RankMode::Total => {
                let list = input.field("rankings").map_err(|e| e.to_string())?;
                let items = list.as_list().ok_or_else(|| {
                    format!("field `rankings` must be a list, got {}", list.type_name())
                })?;
                let mut ranking = Vec::with_capacity(items.len());
                for item in items {
                    let entry = item.as_map().and_then(|m| {
                        let obj = m.get(self.field.as_str())?;
                        let n = m
                            .get("count")?
                            .as_i64()
                            .and_then(|n| u64::try_from(n).ok())?;
                        Some((object_key(obj), n))
                    });
                    match entry {
                        Some(e) => ranking.push(e),
                        None => {
                            return Err(format!(
                                "each entry of `rankings` must be a map with `{}` and a non-negative integer `count`, got {item}",
                                self.field
                            ));
                        }
                    }
                }
                self.per_task.insert(
                    input.source_task(),
                    (input.source_component().into(), ranking),
                );
            }
        }
        Ok(())
    }

    /// Emits the current top N.
    fn emit_ranking(&self, out: &mut BasicCollector<'_>) {
        let mut entries: Vec<(&SmolStr, u64)> = match self.mode {
            RankMode::Intermediate => self.counts.iter().map(|(k, &n)| (k, n)).collect(),
            RankMode::Total => {
                let mut union: FastMap<&SmolStr, u64> = FastMap::default();
                for (_, ranking) in self.per_task.values() {
                    for (k, n) in ranking {
                        let e = union.entry(k).or_insert(0);
                        *e = (*e).max(*n);
                    }
                }
                union.into_iter().collect()
            }
        };
        top_n(&mut entries, self.top);
        let list: Vec<Value> = entries
            .into_iter()
            .map(|(k, n)| {
                let mut m = BTreeMap::new();
                m.insert(self.field.clone(), Value::Str(k.clone()));
                m.insert(SmolStr::new_static("count"), Value::from(n));
                Value::Map(Arc::new(m))
            })
            .collect();
        let mut v = Values::new();
        v.push(Value::List(Arc::new(list)));
        v.push(Value::Int(clock::now_millis()));
        out.emit(v);
    }
}

impl BasicBolt for Rankings {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["rankings", "at"]);
        out.declare_stream(ERROR_STREAM, ["reason", "record"]);
    }

    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.ctx = Some(ctx.clone());
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        if let Err(reason) = self.update(input) {
            emit_error(out, reason, input);
        }
        Ok(())
    }

    fn has_state(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        match self.mode {
            RankMode::Intermediate => snap.put_keyed("counts", &mut self.counts),
            RankMode::Total => {
                let mut stored: Vec<StoredRanking> = Vec::with_capacity(self.per_task.len());
                for (task, (component, ranking)) in &self.per_task {
                    let tasks = self.ctx.as_ref().and_then(|c| c.component_tasks(component));
                    if let Some(tasks) = tasks
                        && let Some(i) = tasks.iter().position(|t| t == task)
                    {
                        stored.push((
                            component.clone(),
                            i as u32,
                            tasks.len() as u32,
                            ranking.clone(),
                        ));
                    }
                }
                snap.put("rankings", &stored);
            }
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        match self.mode {
            // An object in two old tasks (an input not grouped by the object) keeps its
            // highest count, as the total ranking does.
            RankMode::Intermediate => from.keyed_merge("counts", &mut self.counts, u64::max),
            RankMode::Total => {
                self.per_task.clear();
                for stored in from.get_all::<Vec<StoredRanking>>("rankings")? {
                    for (component, i, n, ranking) in stored {
                        // An intermediate component whose parallelism changed: its tasks are
                        // new, their rankings come with their next emits.
                        let tasks = self
                            .ctx
                            .as_ref()
                            .and_then(|c| c.component_tasks(&component));
                        if let Some(tasks) = tasks
                            && tasks.len() == n as usize
                            && let Some(task) = tasks.get(i as usize)
                        {
                            self.per_task.insert(*task, (component, ranking));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn tick(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.emit_ranking(out);
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.emit_every)
    }

    fn finish(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.emit_ranking(out);
        Ok(())
    }
}

/// The `rolling_count` and `rankings` kinds, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::basic_bolt(
            "rolling_count",
            "counts per object over a sliding window of slots; every `emit_every` emits (object, count, window_end)",
            RollingCount::clone,
        )
        .with_example(ROLLING_COUNT_EXAMPLE),
        Kind::basic_bolt(
            "rankings",
            "top-N rankings: intermediate (from counts, fields-grouped) or total (merges intermediate rankings, global); emits (rankings, at)",
            Rankings::clone,
        )
        .with_example(RANKINGS_EXAMPLE),
    ]
}

/// Printed by `topo components rolling_count`; built by the test of every kind's example.
const ROLLING_COUNT_EXAMPLE: &str = r#"
[bolts.counts]
kind = "rolling_count"
field = "word"
window = "5m"             # counts over the last 5 minutes ...
emit_every = "1m"         # ... emitted every minute
parallelism = 2
inputs = [{ from = "words", grouping = { fields = ["word"] } }]
"#;

/// Printed by `topo components rankings`; built by the test of every kind's example.
const RANKINGS_EXAMPLE: &str = r#"
[bolts.intermediate]
kind = "rankings"
mode = "intermediate"     # then a `mode = "total"` rankings bolt with the global grouping
top = 10
emit_every = "2s"
parallelism = 2
inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
"#;

impl FromOptions for RollingCount {
    type Options = RollingCountOptions;
    fn from_options(options: RollingCountOptions) -> Result<Self, String> {
        RollingCount::new(options)
    }
}

impl FromOptions for Rankings {
    type Options = RankingsOptions;
    fn from_options(options: RankingsOptions) -> Result<Self, String> {
        Rankings::new(options)
    }
}
