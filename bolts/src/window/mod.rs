//! `window`: aggregates over tumbling and sliding windows, by duration or by count of tuples, in
//! processing time or event time, per group.
//!
//! ```text
//!             ┌─────────────────────── window ───────────────────────┐
//! (fields) ──►│ time: the clock, or the `timestamp` field            │──► default: window_start,
//!             │  └─► each window containing it ─► its group          │     window_end, group_by..,
//!             │       └─► accumulators (count, sum, min, max, avg,   │     aggregates..
//!             │           count_distinct, approx_.., top_k)          │──► late:  (timestamp, record)
//!             │ window end passed (clock / watermark / end of input) │──► error: (reason, record)
//!             │  └─► one result per group, state dropped, acks       │
//!             └──────────────────────────────────────────────────────┘
//! ```
//!
//! # Options
//! ```toml
//! [bolts.per_path]
//! kind = "window"
//! length = "1m"            # a duration ("10s") = duration window; an integer = count window
//! slide = "10s"            # optional, same kind as length, <= length; unset = tumbling
//! time = "event"           # "processing" (default) or "event" (duration windows only)
//! timestamp = "ts"         # event time: epoch milliseconds (int) or RFC 3339 text; required
//! lag = "5s"               # event time: allowed out-of-orderness; default "0s"
//! idle_timeout = "1m"      # event time: an upstream task silent this long stops holding the
//!                          # watermark back (until it sends and catches up); default "30s", "off": never
//! group_by = ["path"]      # optional: one result per distinct combination of these fields
//! aggregates = [           # at least one; `as` names the output field
//!   { fn = "count", as = "hits" },
//!   { fn = "sum", field = "bytes", as = "bytes" },
//!   { fn = "min", field = "ms", as = "fastest" }, { fn = "max", field = "ms", as = "slowest" },
//!   { fn = "avg", field = "ms", as = "mean_ms" },
//!   { fn = "count_distinct", field = "user", as = "users" },
//!   { fn = "approx_count_distinct", field = "user", as = "users_est" },
//!   { fn = "top_k", field = "path", k = 3, as = "top_paths" },
//! ]
//! anchoring = "auto"       # "auto" | "hold" | "receipt" (see below)
//! inputs = [{ from = "parse" }]
//! ```
//!
//! # Output
//! - `default`: `window_start`, `window_end` (epoch milliseconds, ints; the end is exclusive),
//!   then the `group_by` fields, then each aggregate's `as`. One tuple per window and group that
//!   received at least one tuple; empty windows emit nothing. Count windows: `window_start` and
//!   `window_end` are the processing times (ms) of the first and the last tuple of the window.
//! - `late` (event time only): `(timestamp, record)` for a tuple all of whose windows had already
//!   fired: its timestamp in epoch ms and the input as a [`Value::Map`] of field to value.
//! - `error`: `(reason, record)` for a tuple whose timestamp, `group_by` field or aggregated field
//!   is missing or of the wrong type. Such a tuple counts in no window, and is acked (a replay
//!   would not fix it); it is never dropped silently.
//!
//! # Aggregates
//! | fn                      | result                                                           |
//! |-------------------------|------------------------------------------------------------------|
//! | `count`                 | tuples in the window (nulls too); takes no `field`               |
//! | `sum`                   | int while every value is an int (a float on overflow), else float |
//! | `min`, `max`            | int when every value is an int, else float                       |
//! | `avg`                   | float                                                            |
//! | `count_distinct`        | exact number of distinct values (int)                            |
//! | `approx_count_distinct` | HyperLogLog++ estimate (int): exact to 128 values, then ≈0.8% error |
//! | `top_k`                 | `k` maps `{value, count}`, most frequent first, ties by value |
//!
//! `sum`, `min`, `max` and `avg` take ints and floats; any other type is an error (the tuple goes
//! to `error`). Nulls are skipped by every aggregate but `count` (as in SQL); an aggregate that saw
//! no value gives null (`count_distinct` and `approx_count_distinct` give 0, `top_k` an empty
//! list). NaN is skipped by `min` and `max`. Distinct values compare by [`Value`] equality (an int
//! and a float of the same number are distinct).
//!
//! `approx_count_distinct` is HyperLogLog++ (Heule, Nunkesser, Hall, *HyperLogLog in Practice*,
//! 2013) as implemented by Cloudflare's `cardinality-estimator` crate, over the 64-bit
//! [`Value::stable_hash`] of each value, with 2¹⁴ registers: exact up to 128 distinct values
//! (kept as a list of hashes), about 0.8% standard error beyond, and at most ~12 KiB per window
//! and group.
//!
//! # Windows
//! - **Duration windows** are aligned to the epoch (a `1m` window starts at a whole minute):
//!   `[start, start + length)`, one starting every `slide`. A tuple belongs to every window
//!   containing its time (about `length / slide` of them). The bolt keeps one set of accumulators
//!   per window and group, never the tuples (unless `hold` keeps them for acking), so a tuple costs
//!   O(length / slide).
//! - **Processing time** is [`clock::now_millis`] at arrival. A window fires once the clock has
//!   passed its end, checked on each arriving tuple and on ticks (the bolt asks for a tick every
//!   `min(slide, 1s)`).
//! - **Event time**: the watermark is the minimum, over every upstream task (all tasks of the
//!   components in `inputs`, whatever the grouping), of (largest timestamp from that task −
//!   `lag`); it never goes back. An upstream task that has sent nothing yet holds it at "no
//!   watermark": nothing fires before every upstream task has sent (Flink's rule: the minimum
//!   over all input channels). Every window whose end is at or before the watermark fires, in
//!   order of end. A tuple is added to each of its windows that has not fired; a tuple all of
//!   whose windows have fired is *late* and goes to `late`. So (while no task is idle) a tuple
//!   is late only if it is more than `lag` behind the largest timestamp its own upstream task
//!   sent before it: results do not depend on how the upstream tasks' tuples interleave. The
//!   watermark moves only with arriving tuples: a quiet upstream task holds windows open until
//!   it sends or the input ends.
//! - **Idle upstream tasks** (`idle_timeout`, Flink's `withIdleness`; default 30 s, `"off"` for
//!   none): an upstream task that has sent nothing for `idle_timeout` (processing time, since its
//!   last tuple or the task's start) is left out of the minimum, and the windows the other tasks' timestamps passed
//!   fire. When it sends again it counts again once its largest timestamp − `lag` has reached
//!   the watermark (Flink's rule); until then it does not hold the watermark, and its tuples
//!   behind it are late. The bolt checks on ticks every `min(idle_timeout, 1s)`, so a task is
//!   found idle between `idle_timeout` and `idle_timeout` + that interval after it fell silent.
//!   If every upstream task is idle the watermark stays. Once a task has been found idle, which
//!   tuples are late depends on timing. The default (30 s) keeps a task that never sends to
//!   this one (no key of its routed here, a spout task without partitions) from holding windows
//!   back forever, since no watermark messages flow; `"off"` waits for every task, as Flink
//!   does without `withIdleness`.
//! - **Count windows** count per group: tumbling, every `length` tuples of a group; sliding, every
//!   `slide` tuples of a group, over the group's last `length` tuples (the first results, before
//!   `length` tuples arrived, cover fewer). The values needed are kept (`length` per group) and
//!   aggregated per result: O(length / slide) per tuple.
//! - **End of input** ([`Bolt::finish`]: the sources are exhausted, or the topology stops without
//!   a completed savepoint) fires
//!   every open window, as Flink does: duration windows before their end (with their nominal
//!   `window_end`), event-time windows before the watermark passed them, partial count windows
//!   (a tumbling group's last tuples; a sliding group's last `length` tuples, if tuples came
//!   since its last result).
//!
//! # Anchoring and the message timeout
//! A tuple held by a window completes its spout tree only when acked, and a tree not complete
//! within `config.message_timeout` is failed and replayed — so a bolt that holds tuples for longer
//! than the timeout replays its whole input, forever (Storm users know this as "window length +
//! slide must stay below the timeout"). The modes:
//!
//! | `anchoring` | inputs acked                        | results                     | on a crash |
//! |-------------|-------------------------------------|-----------------------------|------------|
//! | `hold`      | when the last window holding them fires | anchored to the inputs of the window and group | replayed (at-least-once) |
//! | `receipt`   | at once, once added to their windows | unanchored                 | state lost |
//! | `auto`      | `hold` or `receipt`, see below      |                             |            |
//!
//! `auto` (the default) takes `hold` for processing-time duration windows whose `length + slide`
//! is at most half of `config.message_timeout` (with acking on), and `receipt` otherwise.
//! `hold` is refused when a task starts (`prepare` fails, naming both values and the fix) for
//! processing-time duration windows whose `length` + tick interval exceed half the message
//! timeout. With event time or count windows the hold time depends on the data (a quiet group or
//! a stalled watermark holds tuples without bound), so `auto` takes `receipt` for them, and an
//! explicit `hold` is the user's call (the log line says what it risks). With acking off there
//! is nothing to hold: `receipt` is used. The choice is logged once per task at `info` level.
//!
//! With `hold`, each spout tree stays open until its last window fires, so a spout task (which
//! keeps at most `config.max_spout_pending` trees open) emits at most `max_spout_pending /
//! (length + tick interval)` tuples per second: raise `max_spout_pending` accordingly, or use
//! `receipt`. A `hold` result is anchored to every input of its window and group, so it carries
//! one anchor per spout tree among them (at most `max_spout_pending` per spout task); the cost of
//! anchoring and acking it grows with that number.
//!
//! # Checkpoints
//! The bolt is stateful (`has_state`): a topology with it takes checkpoints, and a run resumed
//! from one continues every open window where it was. Checkpointed:
//! - duration windows: per group (keyed state by the `group_by` values), each open window's
//!   start and accumulators (a `count_distinct` set, `top_k` counts, the HyperLogLog registers
//!   as they are); per task, how far windows have fired and, in event time, the watermark and
//!   the largest timestamp from each upstream task that has sent (named by component and task
//!   index; which tasks are idle is processing time, not checkpointed: after a restore each
//!   upstream task has the whole `idle_timeout` again);
//! - count windows: per group, the partial window (accumulators, first and last arrival) or the
//!   last `length` values of a sliding window.
//!
//! The keyed parts are split by key group with [`key_hash_of`](topo_runtime::grouping::key_hash_of)
//! of the `group_by` values, so a restore with another parallelism hands each group to the task
//! a fields grouping on the `group_by` fields (same fields, same order) sends it to. The clock
//! then is the most advanced of the old tasks' (largest fired-until, watermark and per-upstream
//! timestamps). An upstream component whose parallelism changed has new tasks, whose timestamps
//! are unknown: the watermark stays where it was restored (it never goes back) until each of
//! them has sent (or is idle), as at a start; an upstream component no longer among the inputs
//! no longer counts. A group found in two old tasks (an input not grouped by `group_by`) has
//! its duration windows' accumulators combined; of a count window, one old task's partial
//! window is kept.
//!
//! What is exact:
//! - `guarantee = "exactly_once"`: every input counts once in the windows' state; with event
//!   time, a resumed run gives exactly the results an uninterrupted run gives, as long as the
//!   watermark's progress does not depend on timing: no `idle_timeout`, and each upstream
//!   task's tuples out of order by at most `lag` (then nothing is late, whatever the
//!   interleaving; after a restore with another upstream parallelism, as long as no new
//!   upstream task sends a tuple more than `lag` behind the restored watermark). A result
//!   emitted after the last completed checkpoint, before a crash, is emitted again (the same
//!   value) after the restore: a sink that is not transactional may show it twice.
//!   Processing-time windows keep their state and fire by the clock after the restore, so a
//!   window open across a crash fires late, and a replayed input lands in the window of its new
//!   arrival time (on a clock behind the checkpoint's, as on another host, in the first window
//!   that has not fired).
//! - `guarantee = "at_least_once"` (acking on): inputs acked on receipt (`receipt`) and in
//!   windows at the checkpoint are in the restored state; inputs after it are replayed by their
//!   spout, if it rewinds. Held inputs (`hold`) are not written (a tuple cannot be), but their
//!   values are in the checkpointed accumulators; after a crash their trees fail and their
//!   spout replays them, so they count twice: at-least-once, duplicates in the windows open at
//!   the checkpoint. Results restored windows emit are anchored only to the inputs that arrived
//!   since the restore.
//! - A run stopped before its input ends (Ctrl-C, `topo run --for`) takes a savepoint and, once
//!   it completes, does not call [`Bolt::finish`]: the open windows are in the savepoint, and the
//!   run resumed from it fires each once, whole (Flink's stop with a savepoint; under
//!   exactly-once ticks stop too, so no processing-time window fires after the savepoint). A
//!   drained stop (`topo run --drain`) or a savepoint that failed fires every open window at the
//!   stop, as end of input.
//!
//! # Known limits
//! - Each task windows what it receives: to aggregate a group in one place, subscribe with a
//!   fields grouping on the `group_by` fields (or run one task).
//! - Event time needs tuples from every upstream task to move the watermark, and a task hears
//!   only from upstream tasks that send it tuples (there are no watermark messages): with a
//!   fields grouping, an upstream task none of whose keys go to this task holds its windows
//!   until it has been silent for `idle_timeout` (30 s by default; with `"off"`, until the end of
//!   input). Those windows then fire by the other tasks' timestamps, which depends on timing.
//! - Count windows keep a little state for every group ever seen (its partial window, and for
//!   sliding windows its last `length` values) until the end of input.
//! - Results within one window are emitted in no particular order of groups.

use std::collections::HashMap;
use std::future::Future;

/// Event time: how long an upstream task may send nothing before it stops holding the
/// watermark back, when `idle_timeout` is not given (30 s).
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 30_000;
use std::sync::Arc;
use std::time::Duration;

use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    Bolt, BoxError, Config, KeyedState, OutputCollector, OutputDeclarer, Restore, Snapshot,
    StreamSchema, TaskContext, Tuple, Value, Values, clock,
};

use crate::expr::{ERROR_FIELDS, ERROR_STREAM};

mod aggregate;
mod options;
mod state;

use self::aggregate::{AggKind, FUNCTIONS};
pub use self::aggregate::{Hll, value_order};
pub use self::options::{AggregateOptions, Anchoring, Extent, TimeMode, WindowOptions};
use self::state::{CountGroup, DurationState, GroupKey, State};

/// The name of the stream late tuples go to (event time), with fields [`LATE_FIELDS`].
pub const LATE_STREAM: &str = "late";

/// The fields of the [`LATE_STREAM`]: the tuple's timestamp (epoch ms) and the input record (a
/// [`Value::Map`] of field name to value).
pub const LATE_FIELDS: [&str; 2] = ["timestamp", "record"];

/// The first two fields of every result: window start and end, epoch ms (end exclusive).
pub const WINDOW_FIELDS: [&str; 2] = ["window_start", "window_end"];

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Clone, Debug)]
struct Agg {
    kind: AggKind,
    field: Option<SmolStr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Duration windows, in ms.
    Duration { length: i64, slide: i64 },
    /// Count windows, in tuples.
    Count { length: usize, slide: usize },
}

/// The validated options, shared by every task.
#[derive(Debug)]
struct Plan {
    shape: Shape,
    /// Event time: the timestamp field and the lag in ms.
    event: Option<(SmolStr, i64)>,
    /// Event time: how long (ms) an upstream task may stay silent before the watermark no
    /// longer waits for it.
    idle: Option<i64>,
    group_by: Vec<SmolStr>,
    aggs: Vec<Agg>,
    outputs: Vec<SmolStr>,
    anchoring: Anchoring,
}

/// The `window` bolt: see the [module docs](self).
pub struct Window {
    plan: Arc<Plan>,
    /// Decided in `prepare`: hold inputs until their last window fires.
    hold: bool,
    fields: FieldCache,
    state: State,
    /// This task's context (from `prepare`): names upstream tasks in the checkpointed clock.
    ctx: Option<TaskContext>,
}

impl Clone for Window {
    /// A new instance with the same options and no state (the factory of the bolt's tasks).
    fn clone(&self) -> Self {
        Window {
            plan: self.plan.clone(),
            hold: self.hold,
            fields: FieldCache::default(),
            state: State::new(&self.plan),
            ctx: None,
        }
    }
}

/// The longest duration an option may give: 100 years, in ms (so window arithmetic on
/// timestamps within [`MAX_TIMESTAMP_MS`] never overflows).
const MAX_DURATION_MS: i64 = 100 * 366 * 86_400_000;

/// Event timestamps are accepted within ± this many ms of the epoch (2^53 ms, about 285,000
/// years); others go to the `error` stream.
pub const MAX_TIMESTAMP_MS: i64 = 1 << 53;

fn parse_duration_ms(option: &str, text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("option `{option}` = {text:?} is not a duration such as \"10s\" or \"1m\": {e}")
    })?;
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms <= MAX_DURATION_MS => Ok(ms),
        _ => Err(format!(
            "option `{option}` = {text:?} is too long: expected at most 100 years"
        )),
    }
}

impl Window {
    /// A window bolt with these options, or an error naming the option, the value and what was
    /// expected.
    pub fn new(opts: WindowOptions) -> Result<Window, String> {
        let length = opts.length.as_ref().ok_or(
            "option `length` is required: a duration such as \"1m\" or a count of tuples such as 100",
        )?;
        let shape = match (length, &opts.slide) {
            (Extent::Count(n), slide) => {
                if *n < 1 {
                    return Err(format!(
                        "option `length` = {n}: a count window needs at least 1 tuple"
                    ));
                }
                let s = match slide {
                    None => *n,
                    Some(Extent::Count(s)) => *s,
                    Some(Extent::Duration(s)) => {
                        return Err(format!(
                            "option `slide` = {s:?} is a duration but `length` = {n} is a count: \
                             give both as counts or both as durations"
                        ));
                    }
                };
                if s < 1 || s > *n {
                    return Err(format!(
                        "option `slide` = {s}: expected a count from 1 to `length` ({n})"
                    ));
                }
                Shape::Count {
                    length: *n as usize,
                    slide: s as usize,
                }
            }
            (Extent::Duration(text), slide) => {
                let l = parse_duration_ms("length", text)?;
                if l < 1 {
                    return Err(format!(
                        "option `length` = {text:?}: expected at least one millisecond"
                    ));
                }
                let s = match slide {
                    None => l,
                    Some(Extent::Duration(st)) => {
                        let s = parse_duration_ms("slide", st)?;
                        if s < 1 || s > l {
                            return Err(format!(
                                "option `slide` = {st:?}: expected from 1ms to `length` ({text})"
                            ));
                        }
                        s
                    }
                    Some(Extent::Count(n)) => {
                        return Err(format!(
                            "option `slide` = {n} is a count but `length` = {text:?} is a \
                             duration: give both as counts or both as durations"
                        ));
                    }
                };
                Shape::Duration {
                    length: l,
                    slide: s,
                }
            }
        };
        let event = match opts.time {
            TimeMode::Processing => {
                if let Some(ts) = &opts.timestamp {
                    return Err(format!(
                        "option `timestamp` = {ts:?} is only used with time = \"event\""
                    ));
                }
                if let Some(lag) = &opts.lag {
                    return Err(format!(
                        "option `lag` = {lag:?} is only used with time = \"event\""
                    ));
                }
                if let Some(idle) = &opts.idle_timeout {
                    return Err(format!(
                        "option `idle_timeout` = {idle:?} is only used with time = \"event\""
                    ));
                }
                None
            }
            TimeMode::Event => {
                if let Shape::Count { length, .. } = shape {
                    return Err(format!(
                        "option `time` = \"event\" needs duration windows, but `length` = \
                         {length} is a count of tuples"
                    ));
                }
                let ts = opts.timestamp.as_deref().ok_or(
                    "option `timestamp` is required with time = \"event\": the field holding \
                     each tuple's time (epoch ms or RFC 3339 text)",
                )?;
                if ts.is_empty() {
                    return Err("option `timestamp` must not be empty".into());
                }
                let lag = match &opts.lag {
                    Some(l) => parse_duration_ms("lag", l)?,
                    None => 0,
                };
                Some((SmolStr::from(ts), lag))
            }
        };
        let idle = match (&event, opts.idle_timeout.as_deref()) {
            (Some(_), Some("off")) => None,
            (Some(_), None) => Some(DEFAULT_IDLE_TIMEOUT_MS),
            (Some(_), Some(text)) => {
                let ms = parse_duration_ms("idle_timeout", text)?;
                if ms < 1 {
                    return Err(format!(
                        "option `idle_timeout` = {text:?}: expected at least one millisecond \
                         (or \"off\": the watermark waits for every upstream task)"
                    ));
                }
                Some(ms)
            }
            _ => None,
        };
        if opts.aggregates.is_empty() {
            return Err(
                "option `aggregates` needs at least one aggregate, e.g. [{ fn = \"count\", as = \"n\" }]"
                    .into(),
            );
        }
        let mut outputs: Vec<SmolStr> = WINDOW_FIELDS.iter().map(|f| SmolStr::from(*f)).collect();
        let mut add_output = |name: &str, what: &str| -> Result<(), String> {
            if name.is_empty() {
                return Err(format!("{what}: an output field name must not be empty"));
            }
            if outputs.iter().any(|o| o == name) {
                return Err(format!(
                    "{what}: output field `{name}` appears twice in the output (window_start, \
                     window_end, the group_by fields and every aggregate's `as` must differ)"
                ));
            }
            outputs.push(name.into());
            Ok(())
        };
        for g in &opts.group_by {
            add_output(g, "option `group_by`")?;
        }
        let mut aggs = Vec::with_capacity(opts.aggregates.len());
        for (i, a) in opts.aggregates.iter().enumerate() {
            let what = format!("option `aggregates`[{i}] (fn = {:?})", a.function);
            let kind = match a.function.as_str() {
                "count" => AggKind::Count,
                "sum" => AggKind::Sum,
                "min" => AggKind::Min,
                "max" => AggKind::Max,
                "avg" => AggKind::Avg,
                "count_distinct" => AggKind::CountDistinct,
                "approx_count_distinct" => AggKind::ApproxCountDistinct,
                "top_k" => {
                    let k = a.k.ok_or(format!("{what}: top_k needs `k`, at least 1"))?;
                    if k < 1 {
                        return Err(format!("{what}: `k` = {k}, expected at least 1"));
                    }
                    AggKind::TopK(k as usize)
                }
                other => {
                    let hint = topo_runtime::suggest::suggest(other, FUNCTIONS)
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "option `aggregates`[{i}]: unknown fn {other:?}{hint}; expected one of {}",
                        FUNCTIONS.join(", ")
                    ));
                }
            };
            if a.k.is_some() && !matches!(kind, AggKind::TopK(_)) {
                return Err(format!("{what}: `k` is only used by top_k"));
            }
            let field = match (kind, &a.field) {
                (AggKind::Count, Some(f)) => {
                    return Err(format!(
                        "{what}: count takes no `field` (it counts tuples, nulls too); got {f:?}"
                    ));
                }
                (AggKind::Count, None) => None,
                (_, None) => return Err(format!("{what}: `field` is required")),
                (_, Some(f)) if f.is_empty() => {
                    return Err(format!("{what}: `field` must not be empty"));
                }
                (_, Some(f)) => Some(SmolStr::from(f.as_str())),
            };
            add_output(&a.name, &format!("{what}, `as`"))?;
            aggs.push(Agg { kind, field });
        }
        let plan = Plan {
            shape,
            event,
            idle,
            group_by: opts.group_by.iter().map(|g| g.as_str().into()).collect(),
            aggs,
            outputs,
            anchoring: opts.anchoring,
        };
        let state = match shape {
            Shape::Duration { .. } => State::Duration(DurationState::default()),
            Shape::Count { .. } => State::Count(KeyedState::new()),
        };
        Ok(Window {
            plan: Arc::new(plan),
            hold: false,
            fields: FieldCache::default(),
            state,
            ctx: None,
        })
    }

    /// Whether this task holds inputs until their windows fire (decided in `prepare`).
    pub fn holds_inputs(&self) -> bool {
        self.hold
    }

    /// The tick interval of processing-time duration windows (`min(slide, 1s)`), and of event
    /// time with an idle timeout (`min(idle_timeout, 1s)`: the idleness check).
    fn tick_every(&self) -> Option<Duration> {
        match (self.plan.shape, &self.plan.event, self.plan.idle) {
            (Shape::Duration { slide, .. }, None, _) => {
                Some(Duration::from_millis(slide.min(1000) as u64))
            }
            (Shape::Duration { .. }, Some(_), Some(idle)) => {
                Some(Duration::from_millis(idle.min(1000) as u64))
            }
            _ => None,
        }
    }

    /// Whether this bolt holds its inputs (`true`, the `hold` mode) or acks them on receipt
    /// (`false`) under these topology settings, with the reason; an error when `hold` was asked
    /// for processing-time windows that would outlive half of `config.message_timeout` (the
    /// message names both values and the fix). `prepare` calls this and logs the choice.
    pub fn anchoring_for(
        &self,
        config: &Config,
        component: &str,
    ) -> Result<(bool, String), String> {
        let timeout = config.message_timeout;
        let half = timeout / 2;
        let ms = |m: i64| Duration::from_millis(m.max(0) as u64);
        let bounded = match (self.plan.shape, &self.plan.event) {
            (Shape::Duration { length, slide }, None) => Some((ms(length), ms(slide))),
            _ => None,
        };
        let fmt = humantime::format_duration;
        Ok(match self.plan.anchoring {
            Anchoring::Receipt => (false, "anchoring = \"receipt\"".to_string()),
            _ if !config.acking() => (false, "acking is off".to_string()),
            Anchoring::Hold => match bounded {
                Some((length, _)) => {
                    let held = length + self.tick_every().unwrap_or_default();
                    if held > half {
                        return Err(format!(
                            "window `{component}`: anchoring = \"hold\" keeps each input up to \
                             length + tick interval = {} but config.message_timeout is {}: \
                             inputs would time out and replay. Raise message_timeout to at least \
                             {}, or set anchoring = \"receipt\"",
                            fmt(held),
                            fmt(timeout),
                            fmt(held * 2),
                        ));
                    }
                    (true, "anchoring = \"hold\"".to_string())
                }
                None => (
                    true,
                    "anchoring = \"hold\" with event time or count windows: inputs are held as \
                     long as the data keeps their windows open, and replayed if that exceeds \
                     config.message_timeout"
                        .to_string(),
                ),
            },
            Anchoring::Auto => match bounded {
                Some((length, slide)) if length + slide <= half => (
                    true,
                    format!(
                        "length + slide = {} is within half the message timeout ({})",
                        fmt(length + slide),
                        fmt(timeout)
                    ),
                ),
                Some((length, slide)) => (
                    false,
                    format!(
                        "length + slide = {} exceeds half the message timeout ({})",
                        fmt(length + slide),
                        fmt(timeout)
                    ),
                ),
                None => (
                    false,
                    "event time or count windows hold inputs for a time the data decides"
                        .to_string(),
                ),
            },
        })
    }

    fn execute_now(&mut self, input: Tuple, out: &mut OutputCollector<'_>) {
        let plan = &*self.plan;
        let idx = self.fields.resolve(plan, input.schema());
        // Time of the tuple.
        let time = match &plan.event {
            None => clock::now_millis(),
            Some((name, _)) => match idx.ts.and_then(|i| input.get(i)) {
                None => {
                    let reason = format!("no timestamp field `{name}`");
                    return reject(out, ERROR_STREAM, Value::from(reason), input);
                }
                Some(v) => match timestamp_ms(v) {
                    Ok(t) if t.unsigned_abs() <= MAX_TIMESTAMP_MS as u64 => t,
                    Ok(t) => {
                        let reason = format!(
                            "timestamp field `{name}`: {t} is out of range (at most 2^53 ms from \
                             the epoch)"
                        );
                        return reject(out, ERROR_STREAM, Value::from(reason), input);
                    }
                    Err(e) => {
                        let reason = format!("timestamp field `{name}`: {e}");
                        return reject(out, ERROR_STREAM, Value::from(reason), input);
                    }
                },
            },
        };
        // Check every field before touching any window.
        for (g, i) in plan.group_by.iter().zip(&idx.group) {
            if i.is_none() {
                let reason = format!("no group_by field `{g}`");
                return reject(out, ERROR_STREAM, Value::from(reason), input);
            }
        }
        for (a, i) in plan.aggs.iter().zip(&idx.aggs) {
            if let Some(field) = &a.field {
                let Some(v) = i.and_then(|i| input.get(i)) else {
                    let reason = format!("no field `{field}` to aggregate");
                    return reject(out, ERROR_STREAM, Value::from(reason), input);
                };
                if a.kind.numeric() && !matches!(v, Value::Int(_) | Value::Float(_) | Value::Null) {
                    let reason = format!(
                        "field `{field}` is {}, expected a number (int or float) or null",
                        v.type_name()
                    );
                    return reject(out, ERROR_STREAM, Value::from(reason), input);
                }
            }
        }
        let mut key = Values::new();
        key.extend(
            idx.group
                .iter()
                .map(|i| i.and_then(|i| input.get(i)).cloned().unwrap_or_default()),
        );
        let key = GroupKey(key);
        let hold = self.hold;
        match &mut self.state {
            State::Duration(d) => {
                let Shape::Duration { length, slide } = plan.shape else {
                    return;
                };
                if let Some((_, lag)) = &plan.event {
                    // A late tuple too shows its upstream task is not idle.
                    let wm = d.watermarks.observe(
                        input.source_task(),
                        input.source_component(),
                        time,
                        *lag,
                    );
                    // Late: its last window (the latest start) has fired already.
                    let last_start = time.div_euclid(slide) * slide;
                    if last_start.saturating_add(length) <= d.fired_until {
                        reject(out, LATE_STREAM, Value::Int(time), input);
                    } else {
                        // A held input is kept (cloned) in its last window by `add`.
                        d.add(plan, time, key, &input, &idx.aggs, hold);
                        if !hold {
                            out.ack(&input);
                        }
                    }
                    if let Some(wm) = wm {
                        d.fire_until(plan, wm, hold, out);
                    }
                } else {
                    // Restored on a clock behind the checkpoint's (another host): an input
                    // goes to the first window not fired yet, rather than to none.
                    let time = time.max(d.fired_until);
                    d.fire_until(plan, time, hold, out);
                    d.add(plan, time, key, &input, &idx.aggs, hold);
                    if !hold {
                        out.ack(&input);
                    }
                }
            }
            State::Count(groups) => {
                let Shape::Count { length, slide } = plan.shape else {
                    return;
                };
                if groups.get(&key).is_none() {
                    groups.insert(key.clone(), CountGroup::new(plan, length));
                }
                let Some(group) = groups.get_mut(&key) else {
                    return;
                };
                group.add(
                    plan, length, slide, time, &key, &input, &idx.aggs, hold, out,
                );
                if !hold {
                    out.ack(&input);
                }
            }
        }
    }

    fn fire_all(&mut self, out: &mut OutputCollector<'_>) {
        let plan = &*self.plan;
        let hold = self.hold;
        match &mut self.state {
            State::Duration(d) => d.fire_until(plan, i64::MAX, hold, out),
            State::Count(groups) => {
                let Shape::Count { length, slide } = plan.shape else {
                    return;
                };
                let keys: Vec<GroupKey> = groups.iter().map(|(k, _)| k.clone()).collect();
                for key in keys {
                    if let Some(g) = groups.get_mut(&key) {
                        g.flush(plan, length, slide, &key, hold, out);
                        for e in &mut g.buf {
                            if let Some(t) = e.input.take() {
                                out.ack(&t);
                            }
                        }
                    }
                }
                groups.clear();
            }
        }
    }
}

/// Emits `input` on `stream` as `(first, record)`, anchored to it, and acks it.
fn reject(out: &mut OutputCollector<'_>, stream: &str, first: Value, input: Tuple) {
    let mut vals = Values::new();
    vals.push(first);
    vals.push(input.to_record());
    out.emit_to(stream, &[&input], vals);
    out.ack(&input);
}

/// A timestamp value in epoch milliseconds: an int, or RFC 3339 text.
pub fn timestamp_ms(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(ms) => Ok(*ms),
        Value::Str(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("{s:?} is not RFC 3339 text ({e})")),
        other => Err(format!(
            "is {}, expected epoch milliseconds (int) or RFC 3339 text",
            other.type_name()
        )),
    }
}

impl Bolt for Window {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.plan.outputs.iter().cloned());
        if self.plan.event.is_some() {
            out.declare_stream(LATE_STREAM, LATE_FIELDS);
        }
        out.declare_stream(ERROR_STREAM, ERROR_FIELDS);
    }

    fn prepare(&mut self, ctx: &TaskContext) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.ctx = Some(ctx.clone());
        if self.plan.event.is_some()
            && let State::Duration(d) = &mut self.state
        {
            // The watermark waits for every upstream task; the idle timeout counts from now.
            d.watermarks.declare(ctx.input_tasks(), clock::now_millis());
        }
        let r = match self.anchoring_for(ctx.config(), ctx.component_id()) {
            Ok((hold, reason)) => {
                self.hold = hold;
                tracing::info!(
                    component = ctx.component_id(),
                    task = ctx.task_id().0,
                    mode = if hold { "hold" } else { "receipt" },
                    reason = %reason,
                    "window anchoring"
                );
                Ok(())
            }
            Err(e) => Err(BoxError::from(e)),
        };
        std::future::ready(r)
    }

    fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.execute_now(input, out);
        std::future::ready(Ok(()))
    }

    fn tick(
        &mut self,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        if let State::Duration(d) = &mut self.state {
            match (&self.plan.event, self.plan.idle) {
                (None, _) => d.fire_until(&self.plan, clock::now_millis(), self.hold, out),
                (Some((_, lag)), Some(idle)) => {
                    if let Some(wm) = d.watermarks.check_idle(clock::now_millis(), idle, *lag) {
                        d.fire_until(&self.plan, wm, self.hold, out);
                    }
                }
                (Some(_), None) => {}
            }
        }
        std::future::ready(Ok(()))
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.tick_every()
    }

    fn has_state(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        match &mut self.state {
            State::Duration(d) => d.snapshot(snap, self.ctx.as_ref()),
            State::Count(groups) => {
                snap.put_keyed("count_groups", groups);
                Ok(())
            }
        }
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        match &mut self.state {
            State::Duration(d) => {
                let lag = self.plan.event.as_ref().map_or(0, |(_, lag)| *lag);
                d.restore(from, self.ctx.as_ref(), lag)
            }
            // A group found in two old tasks (an input not grouped by `group_by`) keeps one
            // task's partial window.
            State::Count(groups) => from.keyed("count_groups", groups),
        }
    }

    fn finish(
        &mut self,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.fire_all(out);
        std::future::ready(Ok(()))
    }
}

/// Field positions for the last input schema seen (inputs of one stream share a schema, so this
/// is looked up once per stream, not per tuple).
#[derive(Clone, Default)]
struct FieldCache {
    schema: Option<&'static StreamSchema>,
    idx: Indexes,
}

#[derive(Clone, Default)]
struct Indexes {
    ts: Option<usize>,
    group: Vec<Option<usize>>,
    aggs: Vec<Option<usize>>,
}

impl FieldCache {
    fn resolve(&mut self, plan: &Plan, schema: &'static StreamSchema) -> &Indexes {
        if !self.schema.is_some_and(|s| std::ptr::eq(s, schema)) {
            self.idx = Indexes {
                ts: plan.event.as_ref().and_then(|(f, _)| schema.index_of(f)),
                group: plan.group_by.iter().map(|g| schema.index_of(g)).collect(),
                aggs: plan
                    .aggs
                    .iter()
                    .map(|a| a.field.as_ref().and_then(|f| schema.index_of(f)))
                    .collect(),
            };
            self.schema = Some(schema);
        }
        &self.idx
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("plan", &self.plan)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

/// The `window` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "window",
            "aggregates over tumbling or sliding windows, by duration or count, in processing or event time, per group; emits (window_start, window_end, group_by.., aggregates..); late tuples to `late`, bad ones to `error`",
            Window::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components window`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.per_path]
kind = "window"
length = "1m"             # a duration, or a number of tuples (count windows)
slide = "10s"             # unset = tumbling
time = "event"            # or "processing" (the default)
timestamp = "ts"          # epoch milliseconds or RFC 3339 text
lag = "5s"                # allowed out-of-orderness; later tuples go to the `late` stream
idle_timeout = "1m"       # an upstream task silent this long stops holding windows back
group_by = ["path"]
aggregates = [
  { fn = "count", as = "hits" },
  { fn = "sum", field = "bytes", as = "bytes" },
  { fn = "avg", field = "ms", as = "mean_ms" },
  { fn = "approx_count_distinct", field = "user", as = "users" },
  { fn = "top_k", field = "status", k = 3, as = "top_statuses" },
]
inputs = [{ from = "parsed", grouping = { fields = ["path"] } }]
"#;

impl FromOptions for Window {
    type Options = WindowOptions;
    fn from_options(options: WindowOptions) -> Result<Self, String> {
        Window::new(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_ms_or_rfc3339() {
        assert_eq!(timestamp_ms(&Value::Int(5)), Ok(5));
        assert_eq!(
            timestamp_ms(&Value::from("1970-01-01T00:00:01.5Z")),
            Ok(1500)
        );
        assert!(timestamp_ms(&Value::Float(1.0)).is_err());
        assert!(timestamp_ms(&Value::from("yesterday")).is_err());
    }
}
