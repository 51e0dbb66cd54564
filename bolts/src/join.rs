//! `join`: a windowed stream-stream join on key fields, inner and left, choosing the output fields
//! (as Storm's `JoinBolt`).
//!
//! ```text
//!  orders ──► ┌──────────────────── join ─────────────────────┐
//!             │ side = source component (and stream)          │
//!  users  ──► │ pane of the arrival time ◄── tuple            │──► default: the `select` fields,
//!             │ tick: window [end - window, end) ended?       │     one tuple per match
//!  other  ──► │   index joined sides by key (hash maps)       │──► error:   (reason, record)
//!             │   per `from` tuple: matches of every side,    │
//!             │   cross product, select fields                │
//!             │ hold: emit anchored, ack the window's inputs  │
//!             └───────────────────────────────────────────────┘
//! ```
//!
//! # Options
//! ```toml
//! [bolts.enriched]
//! kind = "join"
//! inputs = [{ from = "orders" }, { from = "users" }]
//! window = "10s"       # tumbling processing-time window
//! # slide = "5s"       # sliding: a window of `window` ends every `slide`
//! from = { source = "orders", key = ["user_id"] }   # component id, or "component:stream"
//! join = [ { source = "users", key = ["id"], type = "left" } ]   # type = "inner" (default) | "left"
//! select = ["orders.order_id", "orders.amount", "users.name as customer"]
//! anchoring = "auto"   # "hold" | "receipt" | "auto"
//! ```
//!
//! # Semantics
//! - The bolt tells its inputs apart by the emitting component (`input.source_component()`),
//!   and by stream when a source is written `component:stream`. A tuple from any other source
//!   goes to the `error` stream as `(reason, record)` and is acked.
//! - Windows are processing time ([`clock::now_millis`], which follows a paused test clock),
//!   aligned to the epoch: a tuple belongs to the pane `floor(arrival / slide)`, and the window
//!   ending at `end` (a multiple of `slide`) holds the panes in `[end - window, end)`. Without
//!   `slide` the windows tumble (`slide = window`); `window` must be a multiple of `slide`. A
//!   window is joined at the first tick at or after its end (the bolt asks for a tick every
//!   `slide`), and at [`finish`](Bolt::finish) (end of input) every window still open is joined.
//! - Each `join` side joins to `from` on equality of its `key` fields with `from`'s (equal
//!   lengths, compared in order; values of different types are never equal: not an int and a
//!   float, nor a number and its text — `parse` a key to one type on both sides). For each
//!   `from` tuple of the window: an `inner` side must have a match, else the tuple gives no
//!   output; a `left` side without a match gives nulls for its selected fields. One output per
//!   combination of matches (the cross product per key, as SQL). A key with a null in any field
//!   matches nothing, as in SQL (a `from` tuple with a null key still gives its left-join row).
//! - `select` items are `source.field` or `source.field as name`; the output field is `name`, or
//!   the field's name. A tuple that lacks one of its side's key or selected fields goes to the
//!   `error` stream when it arrives, and is acked.
//! - Anchoring: `"hold"` keeps each input un-acked until the last window holding it has been
//!   joined, emits each output anchored to every input it was built from, then acks them — a
//!   failed output replays its inputs; this needs `window + slide` well under the topology's
//!   `message_timeout` (at most half: checked in `prepare`). `"receipt"` acks each input on
//!   arrival and emits unanchored: it never causes replays, but the window's state is lost if
//!   the process dies. `"auto"` holds when `window + slide` is at most half the message timeout,
//!   else acks on receipt (the choice is logged once per component).
//!
//! # Checkpoints
//! The bolt is stateful (`has_state`): a topology with it takes checkpoints. Checkpointed: the
//! end of the last window joined, and every held input's pane, side, key values and selected
//! values (what a join needs of it, not the whole tuple), in arrival order. A restore with
//! another parallelism gives each task the inputs whose key values a fields grouping on the key
//! fields sends to it (group each side by its key fields, in order); the windows then continue
//! from the latest end joined by any old task.
//! - `exactly_once`: every input is in the restored panes exactly once; windows are processing
//!   time, so panes restored are joined at the first tick after the restore once their window
//!   has ended, and inputs replayed after the checkpoint land in the panes of their new
//!   arrival (on a clock behind the checkpoint's, as on another host, in the pane of the end of
//!   the last window joined, so the next window joins them). Outputs emitted after the last checkpoint before a crash are emitted again.
//! - `at_least_once` with `hold`: held inputs are in the state, and their trees fail with the
//!   crash and are replayed by their spouts: they join twice (duplicates). Outputs of restored
//!   inputs are anchored only to the inputs that arrived since the restore.
//!
//! # Known limits
//! - The window's tuples are held in memory until its last window is joined.
//! - With `hold`, every held input is a pending tree of its spout, so the spouts'
//!   `max_spout_pending` (1000 per spout task by default) caps how many inputs a window can
//!   hold: a spout at its cap waits until the window is joined. Raise `max_spout_pending` for
//!   busy streams, or use `receipt`.
//! - With a sliding window a `from` tuple is joined once per window holding it, so an output
//!   may repeat in consecutive windows (as Storm's sliding `JoinBolt`).
//! - Every side joins to `from` (a star); a side cannot join to another joined side.
//! - Per window the work is linear in its tuples plus the outputs; the outputs of a many-to-many
//!   key are their cross product, as in SQL.

pub use crate::window::Anchoring;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::grouping::{key_group, key_hash_of, task_of_key_group};
use topo_runtime::{
    Bolt, BoxError, OutputCollector, OutputDeclarer, Restore, Snapshot, StreamSchema, TaskContext,
    Tuple, Value, Values, clock,
};

use crate::expr::ERROR_STREAM;

/// How a joined side matches: `inner` (a `from` tuple needs a match) or `left` (nulls when none).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JoinType {
    /// A `from` tuple without a match on this side gives no output.
    #[default]
    Inner,
    /// A `from` tuple without a match on this side gives nulls for the side's fields.
    Left,
}

/// The `from` side of a join: a source and its key fields.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FromSide {
    /// The source: a component id, or `component:stream`.
    pub source: String,
    /// The key fields.
    pub key: Vec<String>,
}

/// One joined side: a source, its key fields (matched in order to `from`'s) and the join type.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinSide {
    /// The source: a component id, or `component:stream`.
    pub source: String,
    /// The key fields, as many as `from`'s.
    pub key: Vec<String>,
    /// `inner` (default) or `left`.
    #[serde(rename = "type", default)]
    pub kind: JoinType,
}

/// Options of the `join` bolt; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = join_required)]
pub struct JoinOptions {
    /// The window length (humantime: `"10s"`).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub window: Duration,
    /// The slide of a sliding window; unset = tumbling.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub slide: Option<Duration>,
    /// The side every other side joins to: `{ source, key }`.
    pub from: FromSide,
    /// The joined sides, at least one: `{ source, key, type }` (`type` = `inner` or `left`).
    pub join: Vec<JoinSide>,
    /// The output fields: `source.field` or `source.field as name`.
    pub select: Vec<String>,
    /// `hold` inputs until their window closes (results anchored), or ack on `receipt`; `auto`
    /// holds when `window + slide` is at most half the message timeout, else acks on receipt.
    pub anchoring: Anchoring,
}

/// `from` and `join` have serde defaults (so a missing one is reported by [`Join::new`]), but
/// are required.
fn join_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["from", "join"]);
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            window: Duration::from_secs(10),
            slide: None,
            from: FromSide::default(),
            join: Vec::new(),
            select: Vec::new(),
            anchoring: Anchoring::Auto,
        }
    }
}

/// One side as compiled: where its tuples come from and how to read them.
#[derive(Clone, Debug)]
struct Side {
    /// The source as written in the options (what `select` refers to).
    name: SmolStr,
    component: SmolStr,
    stream: Option<SmolStr>,
    key: Vec<SmolStr>,
    /// Left join (nulls when no match); always false for `from`.
    left: bool,
    /// The fields `select` takes from this side, in `select` order.
    selected: Vec<SmolStr>,
    /// Field positions per input schema seen so far (usually one).
    resolved: Vec<Resolved>,
}

/// A side's key and selected field positions in one input schema.
#[derive(Clone, Debug)]
struct Resolved {
    schema: &'static StreamSchema,
    key: SmallVec<[usize; 2]>,
    selected: SmallVec<[usize; 4]>,
}

/// One output field: the side and the position among that side's selected fields.
#[derive(Clone, Debug)]
struct SelectItem {
    side: usize,
    nth: usize,
}

/// One held input.
#[derive(Clone, Debug)]
struct Entry {
    data: Data,
    side: u32,
    /// Index into the side's `resolved` (live entries).
    res: u32,
    /// Hash of the key values; `None` when a key field is null (matches nothing).
    hash: Option<u64>,
}

/// What an entry keeps of its input: the tuple itself, or (restored from a checkpoint) the
/// side's key values followed by its selected values.
#[derive(Clone, Debug)]
enum Data {
    Live(Tuple),
    Stored(Box<[Value]>),
}

impl Entry {
    /// The entry's `k`th key value.
    #[inline]
    fn key<'a>(&'a self, sides: &'a [Side], k: usize) -> &'a Value {
        match &self.data {
            Data::Live(t) => {
                &t.values()[sides[self.side as usize].resolved[self.res as usize].key[k]]
            }
            Data::Stored(v) => &v[k],
        }
    }

    /// The entry's `nth` selected value.
    #[inline]
    fn selected<'a>(&'a self, sides: &'a [Side], nth: usize) -> &'a Value {
        match &self.data {
            Data::Live(t) => {
                &t.values()[sides[self.side as usize].resolved[self.res as usize].selected[nth]]
            }
            Data::Stored(v) => &v[sides[self.side as usize].key.len() + nth],
        }
    }

    /// The input, to anchor to and ack (restored entries have none).
    fn tuple(&self) -> Option<&Tuple> {
        match &self.data {
            Data::Live(t) => Some(t),
            Data::Stored(_) => None,
        }
    }
}

/// A checkpointed entry: its pane, side, key hash, and key values then selected values.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    pane: i64,
    side: u32,
    hash: Option<u64>,
    #[serde(with = "topo_runtime::value::stored::vec")]
    values: Vec<Value>,
}

/// A checkpointed join: the end of the last window joined, and every held entry.
#[derive(Serialize, Deserialize)]
struct StoredJoin {
    fired_through: Option<i64>,
    entries: Vec<StoredEntry>,
}

/// The inputs that arrived during one slide.
#[derive(Clone, Debug)]
struct Pane {
    index: i64,
    entries: Vec<Entry>,
}

/// A reference to an entry: (pane position in the deque, entry position in the pane).
type EntryRef = (u32, u32);

const NONE: u32 = u32::MAX;

/// Per-window scratch space, kept between windows so joining allocates only when it grows.
#[derive(Clone, Debug, Default)]
struct Scratch {
    /// Per joined side: key hash → first entry (index into `refs`) with that hash.
    heads: Vec<HashMap<u64, u32, foldhash::fast::RandomState>>,
    /// Per joined side: the indexed entries, and the next entry with the same hash.
    refs: Vec<Vec<(EntryRef, u32)>>,
    /// Per joined side: the matches of the current `from` tuple (`NONE` = a left join's nulls).
    matches: Vec<Vec<u32>>,
}

/// The `join` bolt: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Join {
    sides: Vec<Side>,
    select: Vec<SelectItem>,
    output: Vec<SmolStr>,
    window_ms: i64,
    slide_ms: i64,
    anchoring: Anchoring,
    /// Resolved in `prepare`: hold inputs until their windows are joined.
    hold: bool,
    panes: VecDeque<Pane>,
    /// The end of the last window joined, in ms.
    fired_through: Option<i64>,
    scratch: Scratch,
    /// This task's index, the parallelism and the key groups (from `prepare`): which restored
    /// entries a task keeps when the parallelism changed.
    task: (usize, usize, u32),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn parse_source(s: &str) -> (SmolStr, Option<SmolStr>) {
    match s.split_once(':') {
        Some((c, st)) => (c.into(), Some(st.into())),
        None => (s.into(), None),
    }
}

impl Join {
    /// A join with these options, or what is wrong with them: a zero `window`, a `slide` that is
    /// zero, longer than the window or does not divide it, no `from` source or key, no `join`
    /// side, a key list whose length differs from `from`'s, a source given twice, an empty
    /// `select`, a `select` item that names no source of the join or has a bad `as`, or two
    /// output fields with one name.
    pub fn new(opts: JoinOptions) -> Result<Join, String> {
        let window_ms = millis(opts.window);
        if window_ms <= 0 {
            return Err(format!(
                "option `window` must be at least 1ms, got {:?}",
                opts.window
            ));
        }
        let slide_ms = match opts.slide {
            None => window_ms,
            Some(s) => {
                let ms = millis(s);
                if ms <= 0 || ms > window_ms || window_ms % ms != 0 {
                    return Err(format!(
                        "option `slide` = {} must be at least 1ms and divide `window` = {} (e.g. window = \"10s\", slide = \"5s\")",
                        humantime::format_duration(s),
                        humantime::format_duration(opts.window)
                    ));
                }
                ms
            }
        };
        if opts.from.source.is_empty() {
            return Err(
                "option `from` needs a `source` (a component id, or \"component:stream\")".into(),
            );
        }
        if opts.from.key.is_empty() {
            return Err(format!(
                "option `from` (source `{}`) needs at least one `key` field",
                opts.from.source
            ));
        }
        if opts.join.is_empty() {
            return Err("option `join` needs at least one side, e.g. join = [{ source = \"users\", key = [\"id\"] }]".into());
        }
        let mut sides = Vec::with_capacity(1 + opts.join.len());
        let from_side = |name: &str, key: &[String], left: bool| {
            let (component, stream) = parse_source(name);
            Side {
                name: name.into(),
                component,
                stream,
                key: key.iter().map(|k| SmolStr::from(k.as_str())).collect(),
                left,
                selected: Vec::new(),
                resolved: Vec::new(),
            }
        };
        sides.push(from_side(&opts.from.source, &opts.from.key, false));
        for (i, j) in opts.join.iter().enumerate() {
            if j.source.is_empty() {
                return Err(format!("option `join[{i}]` needs a `source`"));
            }
            if j.key.len() != opts.from.key.len() {
                return Err(format!(
                    "option `join[{i}]` (source `{}`): key {:?} has {} field(s) but `from` key {:?} has {}; they are matched in order and must have equal lengths",
                    j.source,
                    j.key,
                    j.key.len(),
                    opts.from.key,
                    opts.from.key.len()
                ));
            }
            if sides.iter().any(|s: &Side| s.name == j.source.as_str()) {
                return Err(format!(
                    "option `join[{i}]`: source `{}` is already a side of this join; each source can be one side only",
                    j.source
                ));
            }
            sides.push(from_side(&j.source, &j.key, j.kind == JoinType::Left));
        }
        if opts.select.is_empty() {
            return Err("option `select` needs at least one field, e.g. select = [\"orders.id\", \"users.name as customer\"]".into());
        }
        let mut select = Vec::with_capacity(opts.select.len());
        let mut output: Vec<SmolStr> = Vec::with_capacity(opts.select.len());
        for item in &opts.select {
            let (side, field, name) = parse_select(item, &sides)?;
            if output.contains(&name) {
                return Err(format!(
                    "option `select`: output field `{name}` is given twice (in {item:?}); rename one with `as`"
                ));
            }
            let nth = sides[side].selected.len();
            sides[side].selected.push(field);
            select.push(SelectItem { side, nth });
            output.push(name);
        }
        let n = sides.len() - 1;
        Ok(Join {
            sides,
            select,
            output,
            window_ms,
            slide_ms,
            anchoring: opts.anchoring,
            hold: opts.anchoring == Anchoring::Hold,
            panes: VecDeque::new(),
            fired_through: None,
            task: (0, 1, 1),
            scratch: Scratch {
                heads: vec![HashMap::default(); n],
                refs: vec![Vec::new(); n],
                matches: vec![Vec::new(); n],
            },
        })
    }

    /// The longest an input is held before its last window is joined: `window + slide`.
    fn held_for(&self) -> Duration {
        Duration::from_millis((self.window_ms + self.slide_ms) as u64)
    }

    /// Whether this join holds its inputs under a topology whose `message_timeout` is this:
    /// `hold` and `auto` hold when `window + slide` is at most half the timeout; beyond that
    /// `auto` acks on receipt, and `hold` is an error naming both values and the fixes.
    pub fn holds_inputs(&self, message_timeout: Duration) -> Result<bool, String> {
        let held = self.held_for();
        let fits = held <= message_timeout / 2;
        match self.anchoring {
            Anchoring::Hold if !fits => Err(format!(
                "anchoring = \"hold\" keeps inputs un-acked for up to window + slide = {}, which is not well under message_timeout = {} (at most half); raise `message_timeout` to at least {}, shorten `window`/`slide`, or use anchoring = \"receipt\"",
                humantime::format_duration(held),
                humantime::format_duration(message_timeout),
                humantime::format_duration(held * 2),
            )),
            Anchoring::Hold => Ok(true),
            Anchoring::Receipt => Ok(false),
            Anchoring::Auto => Ok(fits),
        }
    }

    /// The output fields, in order.
    pub fn output_fields(&self) -> &[SmolStr] {
        &self.output
    }

    /// The side a tuple belongs to: a side naming its stream first, then one naming only its
    /// component.
    fn side_of(&self, input: &Tuple) -> Option<usize> {
        let component = input.source_component();
        let stream = input.stream();
        self.sides
            .iter()
            .position(|s| s.component == component && s.stream.as_deref() == Some(stream))
            .or_else(|| {
                self.sides
                    .iter()
                    .position(|s| s.component == component && s.stream.is_none())
            })
    }

    /// The field positions of `side` in the input's schema (cached per schema), or why the
    /// input lacks a needed field.
    fn resolve(&mut self, side: usize, input: &Tuple) -> Result<usize, String> {
        let schema = input.schema();
        let s = &mut self.sides[side];
        if let Some(i) = s
            .resolved
            .iter()
            .position(|r| std::ptr::eq(r.schema, schema))
        {
            return Ok(i);
        }
        let find = |f: &SmolStr, what: &str| {
            schema.index_of(f).ok_or_else(|| {
                format!(
                    "tuple from `{}` (stream `{}`) has no {what} field `{f}` of join side `{}` (its fields: {})",
                    input.source_component(),
                    input.stream(),
                    s.name,
                    schema.fields().join(", ")
                )
            })
        };
        let key = s
            .key
            .iter()
            .map(|f| find(f, "key"))
            .collect::<Result<_, _>>()?;
        let selected = s
            .selected
            .iter()
            .map(|f| find(f, "selected"))
            .collect::<Result<_, _>>()?;
        s.resolved.push(Resolved {
            schema,
            key,
            selected,
        });
        Ok(s.resolved.len() - 1)
    }

    /// Keeps an input in the pane of `now`.
    fn store(&mut self, tuple: Tuple, side: usize, res: usize, now: i64) {
        let r = &self.sides[side].resolved[res];
        let mut hash = Some(0u64);
        for &k in &r.key {
            let v = &tuple.values()[k];
            hash = match (hash, v) {
                (_, Value::Null) | (None, _) => None,
                (Some(h), v) => Some(v.stable_hash(h)),
            };
        }
        let entry = Entry {
            data: Data::Live(tuple),
            side: side as u32,
            res: res as u32,
            hash,
        };
        let index = now.div_euclid(self.slide_ms);
        match self.panes.back_mut() {
            Some(p) if p.index >= index => p.entries.push(entry),
            _ => self.panes.push_back(Pane {
                index,
                entries: vec![entry],
            }),
        }
    }

    /// Joins every window that ended at or before `now`, drops panes no later window holds
    /// (acking their inputs when holding them).
    fn fire_until(&mut self, now: i64, out: &mut OutputCollector<'_>) {
        let s = self.slide_ms;
        let panes_per_window = self.window_ms / s;
        while let Some(first) = self.panes.front().map(|p| p.index) {
            let earliest = first.saturating_add(1).saturating_mul(s);
            let end = match self.fired_through {
                Some(f) => earliest.max(f.saturating_add(s)),
                None => earliest,
            };
            if end > now {
                break;
            }
            let last_pane = end / s; // exclusive
            let first_pane = last_pane - panes_per_window;
            self.join_window(first_pane, last_pane, out);
            self.fired_through = Some(end);
            // The next window starts one slide later: drop panes before it.
            while self.panes.front().is_some_and(|p| p.index < first_pane + 1) {
                if let Some(p) = self.panes.pop_front()
                    && self.hold
                {
                    for t in p.entries.iter().filter_map(Entry::tuple) {
                        out.ack(t);
                    }
                }
            }
        }
    }

    /// Joins the panes with index in `[first, last)` and emits the outputs.
    fn join_window(&mut self, first: i64, last: i64, out: &mut OutputCollector<'_>) {
        let Join {
            sides,
            select,
            panes,
            scratch,
            hold,
            ..
        } = self;
        let n = sides.len() - 1;
        for j in 0..n {
            scratch.heads[j].clear();
            scratch.refs[j].clear();
        }
        let in_window = |p: &Pane| p.index >= first && p.index < last;
        // Index the joined sides by key hash; walk backwards so each chain is in arrival order.
        for (pi, pane) in panes.iter().enumerate().rev() {
            if !in_window(pane) {
                continue;
            }
            for (ei, e) in pane.entries.iter().enumerate().rev() {
                let (side, Some(h)) = (e.side as usize, e.hash) else {
                    continue;
                };
                if side == 0 {
                    continue;
                }
                let j = side - 1;
                let idx = scratch.refs[j].len() as u32;
                let next = scratch.heads[j].insert(h, idx).unwrap_or(NONE);
                scratch.refs[j].push(((pi as u32, ei as u32), next));
            }
        }
        let mut anchors: SmallVec<[&Tuple; 4]> = SmallVec::new();
        let mut combo: SmallVec<[u32; 4]> = SmallVec::from_elem(0, n);
        for pane in panes.iter().filter(|p| in_window(p)) {
            'from: for e in pane.entries.iter().filter(|e| e.side == 0) {
                // Matches per joined side.
                for j in 0..n {
                    let m = &mut scratch.matches[j];
                    m.clear();
                    if let Some(h) = e.hash {
                        let mut at = scratch.heads[j].get(&h).copied().unwrap_or(NONE);
                        while at != NONE {
                            let ((pi, ei), next) = scratch.refs[j][at as usize];
                            let other = &panes[pi as usize].entries[ei as usize];
                            let equal = (0..sides[0].key.len())
                                .all(|k| e.key(sides, k) == other.key(sides, k));
                            if equal {
                                m.push(at);
                            }
                            at = next;
                        }
                    }
                    if m.is_empty() {
                        if sides[j + 1].left {
                            m.push(NONE);
                        } else {
                            continue 'from;
                        }
                    }
                }
                // The cross product of the matches, odometer order (last side fastest).
                combo.iter_mut().for_each(|c| *c = 0);
                loop {
                    let mut values = Values::new();
                    anchors.clear();
                    anchors.extend(e.tuple());
                    for item in select.iter() {
                        let v = if item.side == 0 {
                            e.selected(sides, item.nth).clone()
                        } else {
                            let j = item.side - 1;
                            let at = scratch.matches[j][combo[j] as usize];
                            if at == NONE {
                                Value::Null
                            } else {
                                let ((pi, ei), _) = scratch.refs[j][at as usize];
                                let other = &panes[pi as usize].entries[ei as usize];
                                other.selected(sides, item.nth).clone()
                            }
                        };
                        values.push(v);
                    }
                    if *hold {
                        for j in 0..n {
                            let at = scratch.matches[j][combo[j] as usize];
                            if at != NONE {
                                let ((pi, ei), _) = scratch.refs[j][at as usize];
                                anchors.extend(panes[pi as usize].entries[ei as usize].tuple());
                            }
                        }
                        out.emit_anchored(&anchors, values);
                    } else {
                        out.emit(values);
                    }
                    // Advance the odometer.
                    let mut j = n;
                    loop {
                        if j == 0 {
                            continue 'from;
                        }
                        j -= 1;
                        combo[j] += 1;
                        if (combo[j] as usize) < scratch.matches[j].len() {
                            break;
                        }
                        combo[j] = 0;
                    }
                }
            }
        }
    }
}

/// Parses one `select` item: `source.field` or `source.field as name`, where `source` is one of
/// the join's sources (the longest that fits, so a source may contain dots).
fn parse_select(item: &str, sides: &[Side]) -> Result<(usize, SmolStr, SmolStr), String> {
    let words: Vec<&str> = item.split_whitespace().collect();
    let (path, alias) = match words.as_slice() {
        [path] => (*path, None),
        [path, kw, alias] if kw.eq_ignore_ascii_case("as") => (*path, Some(*alias)),
        _ => {
            return Err(format!(
                "option `select`: {item:?} is not `source.field` or `source.field as name`"
            ));
        }
    };
    let side = sides
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            path.len() > s.name.len() + 1
                && path.starts_with(s.name.as_str())
                && path.as_bytes()[s.name.len()] == b'.'
        })
        .max_by_key(|(_, s)| s.name.len())
        .map(|(i, _)| i);
    let Some(side) = side else {
        let names: Vec<&str> = sides.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "option `select`: {item:?} does not start with a source of this join and a field (sources: {}; write e.g. \"{}.field\")",
            names.join(", "),
            names[0]
        ));
    };
    let field = &path[sides[side].name.len() + 1..];
    let name = alias.unwrap_or(field);
    if name.is_empty() || name.contains('.') {
        return Err(format!(
            "option `select`: {item:?} gives the output field name {name:?}; a name must be non-empty and without dots (use `as`)"
        ));
    }
    Ok((side, field.into(), name.into()))
}

impl Bolt for Join {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.output.iter().cloned());
        out.declare_stream(ERROR_STREAM, ["reason", "record"]);
    }

    async fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.task = (
            ctx.task_index(),
            ctx.parallelism(),
            u32::try_from(ctx.config().max_parallelism).unwrap_or(u32::MAX),
        );
        let timeout = ctx.config().message_timeout;
        self.hold = self
            .holds_inputs(timeout)
            .map_err(|e| format!("join `{}`: {e}", ctx.component_id()))?;
        if ctx.task_index() == 0 {
            for side in &self.sides {
                if ctx.component_tasks(&side.component).is_none() {
                    tracing::warn!(
                        component = ctx.component_id(),
                        "join source `{}` names no component of this topology: that side will stay empty",
                        side.name
                    );
                }
            }
        }
        if self.anchoring == Anchoring::Auto && ctx.task_index() == 0 {
            tracing::info!(
                component = ctx.component_id(),
                window_plus_slide = %humantime::format_duration(self.held_for()),
                message_timeout = %humantime::format_duration(timeout),
                "join anchoring: {}",
                if self.hold {
                    "hold (inputs acked when their window is joined; outputs anchored)"
                } else {
                    "receipt (inputs acked on arrival; window + slide is over half the message timeout)"
                }
            );
        }
        Ok(())
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let Some(side) = self.side_of(&input) else {
            let names: Vec<&str> = self.sides.iter().map(|s| s.name.as_str()).collect();
            let reason = format!(
                "tuple from `{}` (stream `{}`), which is not a source of this join (sources: {})",
                input.source_component(),
                input.stream(),
                names.join(", ")
            );
            emit_error(out, reason, &input);
            return Ok(());
        };
        let res = match self.resolve(side, &input) {
            Ok(r) => r,
            Err(reason) => {
                emit_error(out, reason, &input);
                return Ok(());
            }
        };
        if !self.hold {
            out.ack(&input);
        }
        // Restored on a clock behind the checkpoint's (another host): an input goes to the
        // pane of the last window joined, so the next window joins it, rather than to a pane
        // no window will join.
        let now = clock::now_millis();
        let now = self.fired_through.map_or(now, |f| now.max(f));
        self.store(input, side, res, now);
        Ok(())
    }

    async fn tick(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        self.fire_until(clock::now_millis(), out);
        Ok(())
    }

    fn has_state(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let n: usize = self.panes.iter().map(|p| p.entries.len()).sum();
        let mut entries = Vec::with_capacity(n);
        for p in &self.panes {
            for e in &p.entries {
                let side = &self.sides[e.side as usize];
                let mut values = Vec::with_capacity(side.key.len() + side.selected.len());
                values.extend((0..side.key.len()).map(|k| e.key(&self.sides, k).clone()));
                values.extend((0..side.selected.len()).map(|i| e.selected(&self.sides, i).clone()));
                entries.push(StoredEntry {
                    pane: p.index,
                    side: e.side,
                    hash: e.hash,
                    values,
                });
            }
        }
        snap.put(
            "panes",
            &StoredJoin {
                fired_through: self.fired_through,
                entries,
            },
        );
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let (index, parallelism, groups) = self.task;
        let olds: Vec<StoredJoin> = if from.same_parallelism() {
            from.get("panes")?.into_iter().collect()
        } else {
            from.get_all("panes")?
        };
        let rescaled = !from.same_parallelism();
        let mut all: Vec<StoredEntry> = Vec::new();
        self.fired_through = None;
        for old in olds {
            self.fired_through = self.fired_through.max(old.fired_through);
            all.extend(old.entries.into_iter().filter(|e| {
                // With another parallelism, a task keeps the entries whose key a fields
                // grouping on the key fields sends to it.
                !rescaled || {
                    let n = self.sides.get(e.side as usize).map_or(0, |s| s.key.len());
                    let h = key_hash_of(&e.values[..n.min(e.values.len())]);
                    task_of_key_group(key_group(h, groups), groups, parallelism) == index
                }
            }));
        }
        // Panes in order (old tasks' panes interleave); arrival order within a pane kept.
        all.sort_by_key(|e| e.pane);
        self.panes.clear();
        for e in all {
            let side = e.side as usize;
            let want = self.sides.get(side).map(|s| s.key.len() + s.selected.len());
            if want != Some(e.values.len()) {
                return Err(format!(
                    "join: a checkpointed entry of side {side} has {} values, which does not \
                     fit this join's options (were `from`, `join` or `select` changed?)",
                    e.values.len()
                )
                .into());
            }
            let entry = Entry {
                data: Data::Stored(e.values.into_boxed_slice()),
                side: e.side,
                res: NONE,
                hash: e.hash,
            };
            match self.panes.back_mut() {
                Some(p) if p.index == e.pane => p.entries.push(entry),
                _ => self.panes.push_back(Pane {
                    index: e.pane,
                    entries: vec![entry],
                }),
            }
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.slide_ms as u64))
    }

    async fn finish(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        self.fire_until(i64::MAX, out);
        Ok(())
    }
}

/// Sends a bad input to the `error` stream (anchored to it) and acks it.
fn emit_error(out: &mut OutputCollector<'_>, reason: String, input: &Tuple) {
    let mut vals = Values::new();
    vals.push(Value::from(reason));
    vals.push(input.to_record());
    out.emit_to(ERROR_STREAM, &[input], vals);
    out.ack(input);
}

/// The `join` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "join",
            "windowed stream-stream join on key fields (inner, left), choosing the output fields; bad or unknown-source tuples to the `error` stream",
            Join::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components join`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.enriched]
kind = "join"
window = "10s"            # tumbling; add slide = "5s" for sliding windows
from = { source = "orders", key = ["user_id"] }
join = [{ source = "users", key = ["id"], type = "left" }]
select = ["orders.order_id", "orders.amount", "users.name as customer"]
inputs = [{ from = "orders" }, { from = "users" }]
"#;

impl FromOptions for Join {
    type Options = JoinOptions;
    fn from_options(options: JoinOptions) -> Result<Self, String> {
        Join::new(options)
    }
}
