//! Taps: sampled copies of the tuples leaving or entering a component, for a person watching a
//! running topology (`topo tap`, `GET /api/tap`).
//!
//! ```text
//!  task ─emit─► Emitter::emit_with ──(a tap on? one relaxed load)──► TapPoint(component, out) ─┐
//!  queue ─batch─► run_bolt ─────────(a tap on? one relaxed load)──► TapPoint(component, in) ──┤
//!                                                                                              ▼
//!   for each subscriber: rate limit (token bucket) ─► format the values ─► bounded channel ─► TapReceiver
//!                        └─ refused by the limit, or the channel is full: counted as skipped
//! ```
//!
//! Every component has one out point (what its tasks emit, with stream and task) and every bolt
//! an in point (what its tasks are about to execute, with the source component, stream and task),
//! shared by the component's tasks. A point is off until someone taps it: the hot path then costs
//! one relaxed atomic load per emit (out) or per input batch (in), and allocates nothing.
//!
//! A tapped point stays cheap for the tuples it skips, which are nearly all of them: when every
//! tap's bucket is empty, the point keeps a *gate*, the earliest time any of them takes a tuple
//! again. Until then a task skips with a clock read, a relaxed load of the gate and a count in a
//! counter only it writes; no lock, no shared write. The taps' buckets are only consulted once the
//! gate opens.
//!
//! A tap ([`TopologyHandle::tap`](crate::TopologyHandle::tap),
//! [`MetricsReader::tap`](crate::MetricsReader::tap)) never slows the topology down: a tuple over
//! the tap's rate, or one that finds the tap's channel full, is counted
//! ([`TapReceiver::skipped`]) and left out; a task never waits for a reader. Several taps may be
//! on at once, on one component or on different ones. A tap ends when its [`TapReceiver`] is
//! dropped (the point turns off again when its last tap ends), or when every task of the
//! component has ended (then [`TapReceiver::recv`] returns `None` once the events already sent are
//! read).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use smol_str::SmolStr;

use crate::suggest::{did_you_mean, suggest};
use crate::tuple::{StreamSchema, TaskId, Tuple};
use crate::value::Value;

/// Which side of a component a tap watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The tuples the component's tasks execute (bolts only), with where each came from.
    In,
    /// The tuples the component's tasks emit, with the stream each went on.
    Out,
}

impl Direction {
    /// `"in"` or `"out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;

    /// `in` or `out` (any case).
    fn from_str(s: &str) -> Result<Direction, String> {
        match s.to_ascii_lowercase().as_str() {
            "in" => Ok(Direction::In),
            "out" => Ok(Direction::Out),
            _ => Err(format!("direction must be `in` or `out`, got {s:?}")),
        }
    }
}

/// How a tap writes each value of a tuple.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TapFormat {
    /// The value's `Display` text (strings unquoted: `cow`, `3`, `[1, 2]`).
    #[default]
    Display,
    /// The value as JSON text (`"cow"`, `3`, `[1,2]`), as serde serializes a [`Value`].
    Json,
}

/// The highest rate a tap accepts, in tuples per second.
pub const MAX_RATE: f64 = 1_000_000.0;

/// The default bound of a tap's channel, in tuples.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What to tap and how: see [`TopologyHandle::tap_with`](crate::TopologyHandle::tap_with).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TapOptions {
    /// Tuples leaving ([`Direction::Out`]) or entering ([`Direction::In`]) the component.
    pub direction: Direction,
    /// At most this many tuples per second (a token bucket holding one second's worth, at least
    /// one); the rest are skipped. Above 0 and at most [`MAX_RATE`].
    pub rate: f64,
    /// How the values are written.
    pub format: TapFormat,
    /// The bound of the channel to the receiver; a tuple finding it full is skipped.
    pub capacity: usize,
}

impl TapOptions {
    /// `rate` tuples per second in `direction`, values as `Display` text, a channel of
    /// [`DEFAULT_CAPACITY`].
    pub fn new(direction: Direction, rate: f64) -> TapOptions {
        TapOptions {
            direction,
            rate,
            format: TapFormat::Display,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The same, with values written as `format`.
    pub fn format(self, format: TapFormat) -> TapOptions {
        TapOptions { format, ..self }
    }

    /// The same, with a channel bounded at `capacity` tuples.
    pub fn capacity(self, capacity: usize) -> TapOptions {
        TapOptions { capacity, ..self }
    }
}

/// Why a tap could not be started.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TapError {
    /// No spout or bolt has that id.
    #[error("no component `{component}` in this topology{} (its components: {})", did_you_mean(suggestion), known.join(", "))]
    UnknownComponent {
        /// The id asked for.
        component: SmolStr,
        /// The nearest id, if one is near enough to be a likely typo.
        suggestion: Option<SmolStr>,
        /// Every spout and bolt id, in declaration order.
        known: Vec<SmolStr>,
    },
    /// [`Direction::In`] on a spout, which executes no input.
    #[error("`{component}` is a spout: it executes no input; tap what it emits (direction out)")]
    NoInput {
        /// The spout.
        component: SmolStr,
    },
    /// The rate is not a number of tuples per second in (0, [`MAX_RATE`]].
    #[error(
        "tap rate must be a number of tuples per second above 0 and at most {MAX_RATE}, got {rate}"
    )]
    BadRate {
        /// The rate asked for.
        rate: f64,
    },
    /// A channel bound of 0.
    #[error("tap capacity must be at least 1 tuple")]
    BadCapacity,
    /// Every task of the component has ended: the topology stopped.
    #[error(
        "the tasks of `{component}` have ended (the topology stopped); there is nothing left to tap"
    )]
    Ended {
        /// The component.
        component: SmolStr,
    },
}

/// One field of a tapped tuple: its declared name and its value, formatted as the tap asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapField {
    /// The field's declared name.
    pub name: SmolStr,
    /// The value as text ([`TapFormat`]).
    pub value: String,
}

/// Where an executed tuple came from ([`Direction::In`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapSource {
    /// The component that emitted it.
    pub component: SmolStr,
    /// Its task id.
    pub task: TaskId,
    /// Its task's position among that component's tasks (0-based).
    pub task_index: usize,
}

/// One tapped tuple.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapEvent {
    /// When it was tapped: milliseconds since the Unix epoch ([`crate::clock::now_millis`]).
    pub time_ms: i64,
    /// The tapped component.
    pub component: SmolStr,
    /// The task of that component that emitted (out) or is executing (in) the tuple.
    pub task: TaskId,
    /// That task's position among the component's tasks (0-based).
    pub task_index: usize,
    /// Out: emitted by the component. In: about to be executed by it.
    pub direction: Direction,
    /// The stream the tuple travels on.
    pub stream: SmolStr,
    /// In: the component and task that emitted it. Out: `None`.
    pub source: Option<TapSource>,
    /// The values with their field names, in declared order.
    pub fields: Vec<TapField>,
}

/// The receiving end of a tap. Dropping it ends the tap.
pub struct TapReceiver {
    rx: flume::Receiver<TapEvent>,
    /// The subscriber's count of tuples its bucket refused or its channel had no room for (the
    /// subscriber itself, which holds the sender, lives in the point, so that ending the
    /// component's tasks closes the channel).
    skipped: Arc<AtomicU64>,
    /// The point's count of tuples skipped at the gate when this tap began.
    gated_base: u64,
    /// To unsubscribe on drop.
    point: Arc<TapPoint>,
    id: u64,
}

impl TapReceiver {
    /// The next tapped tuple; `None` once every task of the component has ended and every
    /// event sent before has been read.
    pub async fn recv(&self) -> Option<TapEvent> {
        self.rx.recv_async().await.ok()
    }

    /// The next tapped tuple if one is waiting.
    pub fn try_recv(&self) -> Option<TapEvent> {
        self.rx.try_recv().ok()
    }

    /// The next tapped tuple, waiting at most `timeout` (from synchronous code); `None` if none
    /// came in time or the tap has ended.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<TapEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Tuples left out so far: over the rate, or finding the channel full.
    pub fn skipped(&self) -> u64 {
        let gated = self.point.gated().saturating_sub(self.gated_base);
        self.skipped.load(Ordering::Relaxed) + gated
    }

    /// The tapped component.
    pub fn component(&self) -> &str {
        &self.point.component
    }

    /// The tapped side.
    pub fn direction(&self) -> Direction {
        self.point.direction
    }
}

impl fmt::Debug for TapReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapReceiver")
            .field("component", &self.point.component)
            .field("direction", &self.point.direction)
            .field("skipped", &self.skipped())
            .finish_non_exhaustive()
    }
}

impl Drop for TapReceiver {
    fn drop(&mut self) {
        self.point.unsubscribe(self.id);
    }
}

/// One tap on a point.
struct Subscriber {
    id: u64,
    tx: flume::Sender<TapEvent>,
    /// Lock-free (one compare-and-swap per offered tuple): the tasks of a component share it.
    limiter: DefaultDirectRateLimiter,
    format: TapFormat,
    skipped: Arc<AtomicU64>,
}

/// The subscribers of a point, and whether its tasks have all ended.
#[derive(Default)]
struct Subscribers {
    list: Vec<Subscriber>,
    ended: bool,
    next_id: u64,
}

/// One side of one component, shared by its tasks.
pub(crate) struct TapPoint {
    component: SmolStr,
    direction: Direction,
    /// The component's first task id (its tasks' ids are consecutive).
    first_task: TaskId,
    /// Every component's first task id, to give a source task its index.
    first_tasks: Arc<[(SmolStr, TaskId)]>,
    /// True while the point has at least one subscriber: the only thing the hot path reads.
    on: AtomicBool,
    /// Tasks holding a link to this point; the last one to end ends the point.
    live: AtomicUsize,
    subs: RwLock<Subscribers>,
    /// Where `gate_ns` counts from.
    epoch: Instant,
    /// Nanoseconds after `epoch` before which no subscriber takes a tuple (0: open).
    gate_ns: AtomicU64,
    /// Each link's count of tuples skipped at the gate (written by its task only).
    gated: Mutex<Vec<Arc<GateCount>>>,
}

/// A count written by one task, alone on its cache line so that tasks counting side by side do
/// not slow each other down.
#[derive(Default)]
#[repr(align(128))]
struct GateCount(AtomicU64);

impl TapPoint {
    fn new(
        component: SmolStr,
        direction: Direction,
        first_task: TaskId,
        first_tasks: Arc<[(SmolStr, TaskId)]>,
    ) -> TapPoint {
        TapPoint {
            component,
            direction,
            first_task,
            first_tasks,
            on: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            subs: RwLock::new(Subscribers::default()),
            epoch: Instant::now(),
            gate_ns: AtomicU64::new(0),
            gated: Mutex::new(Vec::new()),
        }
    }

    /// Tuples skipped at the gate so far, over every task.
    fn gated(&self) -> u64 {
        let links = self.gated.lock().unwrap_or_else(|e| e.into_inner());
        links.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// Nanoseconds since `epoch`.
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A poisoned lock only means a thread panicked while holding it; the list is intact.
    fn write(&self) -> RwLockWriteGuard<'_, Subscribers> {
        self.subs.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The link of one task to this point.
    fn link(self: &Arc<Self>, task: TaskId) -> TapLink {
        self.live.fetch_add(1, Ordering::AcqRel);
        let gated = Arc::new(GateCount::default());
        self.gated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(gated.clone());
        TapLink {
            point: self.clone(),
            task,
            gated,
        }
    }

    fn subscribe(self: &Arc<Self>, o: &TapOptions) -> Result<TapReceiver, TapError> {
        let period = Duration::from_secs_f64(1.0 / o.rate);
        let burst = NonZeroU32::new(o.rate.ceil() as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .ok_or(TapError::BadRate { rate: o.rate })?
            .allow_burst(burst);
        let (tx, rx) = flume::bounded(o.capacity);
        let skipped = Arc::new(AtomicU64::new(0));
        let mut subs = self.write();
        if subs.ended {
            return Err(TapError::Ended {
                component: self.component.clone(),
            });
        }
        subs.next_id += 1;
        let id = subs.next_id;
        subs.list.push(Subscriber {
            id,
            tx,
            limiter: RateLimiter::direct(quota),
            format: o.format,
            skipped: skipped.clone(),
        });
        // The new tap's bucket is full: open the gate.
        self.gate_ns.store(0, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
        Ok(TapReceiver {
            rx,
            skipped,
            gated_base: self.gated(),
            point: self.clone(),
            id,
        })
    }

    fn unsubscribe(&self, id: u64) {
        let mut subs = self.write();
        subs.list.retain(|s| s.id != id);
        // The gate may have been the one that tap's bucket set.
        self.gate_ns.store(0, Ordering::Relaxed);
        if subs.list.is_empty() {
            self.on.store(false, Ordering::Relaxed);
        }
    }

    /// A task ended; the last one closes every tap of the point.
    fn release(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut subs = self.write();
            subs.ended = true;
            self.on.store(false, Ordering::Relaxed);
            // Dropping the senders lets each receiver read what was sent, then see the end.
            subs.list.clear();
        }
    }

    /// Hands a copy of one tuple to every subscriber whose rate allows it. Never waits. When
    /// every bucket refuses, closes the gate until the first of them has a token again.
    fn offer(&self, task: TaskId, schema: &StreamSchema, source: Option<TaskId>, values: &[Value]) {
        let subs = self.subs.read().unwrap_or_else(|e| e.into_inner());
        let mut reopens: Option<Instant> = None;
        let mut taken = false;
        for sub in &subs.list {
            if let Err(later) = sub.limiter.check() {
                sub.skipped.fetch_add(1, Ordering::Relaxed);
                let at = later.earliest_possible();
                reopens = Some(reopens.map_or(at, |r| r.min(at)));
                continue;
            }
            taken = true;
            let event = TapEvent {
                time_ms: crate::clock::now_millis(),
                component: self.component.clone(),
                task,
                task_index: task.0.saturating_sub(self.first_task.0) as usize,
                direction: self.direction,
                stream: schema.stream().into(),
                source: source.map(|t| self.source(schema.component(), t)),
                fields: schema
                    .fields()
                    .iter()
                    .zip(values)
                    .map(|(name, v)| TapField {
                        name: name.clone(),
                        value: format_value(v, sub.format),
                    })
                    .collect(),
            };
            // A receiver being dropped unsubscribes itself; until then its sends just fail.
            if let Err(flume::TrySendError::Full(_)) = sub.tx.try_send(event) {
                sub.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let (false, Some(at)) = (taken, reopens) {
            let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
            self.gate_ns.store(ns.max(1), Ordering::Relaxed);
        }
    }

    fn source(&self, component: &str, task: TaskId) -> TapSource {
        let first = self
            .first_tasks
            .iter()
            .find(|(c, _)| c == component)
            .map_or(task, |(_, t)| *t);
        TapSource {
            component: component.into(),
            task,
            task_index: task.0.saturating_sub(first.0) as usize,
        }
    }
}

fn format_value(v: &Value, format: TapFormat) -> String {
    match format {
        TapFormat::Display => v.to_string(),
        // A `Value` always serializes (maps have text keys); the fallback is for completeness.
        TapFormat::Json => serde_json::to_string(v).unwrap_or_else(|_| "null".to_string()),
    }
}

/// One task's link to one point; dropping it (the task ended) may end the point.
pub(crate) struct TapLink {
    point: Arc<TapPoint>,
    task: TaskId,
    /// Tuples this task skipped at the point's gate; only this task writes it.
    gated: Arc<GateCount>,
}

impl TapLink {
    /// Whether the gate is closed now; if so, counts `n` tuples as skipped there.
    fn gate_skips(&self, n: usize) -> bool {
        let gate = self.point.gate_ns.load(Ordering::Relaxed);
        if gate == 0 || self.point.now_ns() >= gate {
            return false;
        }
        // One writer: a load and a store, no read-modify-write on a shared line.
        let before = self.gated.0.load(Ordering::Relaxed);
        self.gated.0.store(before + n as u64, Ordering::Relaxed);
        true
    }

    #[cold]
    fn emitted(&self, schema: &StreamSchema, values: &[Value]) {
        if !self.gate_skips(1) {
            self.point.offer(self.task, schema, None, values);
        }
    }

    #[cold]
    fn executing(&self, batch: &[Tuple]) {
        for (i, t) in batch.iter().enumerate() {
            if self.gate_skips(batch.len() - i) {
                return;
            }
            self.point
                .offer(self.task, t.schema(), Some(t.source_task()), t.values());
        }
    }
}

impl Drop for TapLink {
    fn drop(&mut self) {
        self.point.release();
    }
}

/// A task's links to its component's points. Lives in the task's [`Emitter`](crate::collector)
/// (so as long as the task), empty in harnesses that run a component without a topology.
#[derive(Default)]
pub(crate) struct TaskTaps {
    pub(crate) out: Option<TapLink>,
    pub(crate) input: Option<TapLink>,
}

impl TaskTaps {
    /// An emit of `values` on `schema`: one relaxed load unless the out point is tapped.
    #[inline]
    pub(crate) fn emitted(&self, schema: &StreamSchema, values: &[Value]) {
        if let Some(l) = &self.out
            && l.point.on.load(Ordering::Relaxed)
        {
            l.emitted(schema, values);
        }
    }

    /// A batch about to be executed: one relaxed load unless the in point is tapped.
    #[inline]
    pub(crate) fn executing(&self, batch: &[Tuple]) {
        if let Some(l) = &self.input
            && l.point.on.load(Ordering::Relaxed)
        {
            l.executing(batch);
        }
    }
}

/// One component's points.
struct ComponentTaps {
    id: SmolStr,
    out: Arc<TapPoint>,
    /// Bolts only.
    input: Option<Arc<TapPoint>>,
}

/// Every tap point of a running topology.
pub(crate) struct TapHub {
    components: Vec<ComponentTaps>,
}

impl TapHub {
    /// Points for `components`: (id, whether it is a bolt, its first task id), in declaration order.
    pub(crate) fn new(components: &[(SmolStr, bool, TaskId)]) -> TapHub {
        let first_tasks: Arc<[(SmolStr, TaskId)]> = components
            .iter()
            .map(|(id, _, first)| (id.clone(), *first))
            .collect();
        let point = |id: &SmolStr, d, first| {
            Arc::new(TapPoint::new(id.clone(), d, first, first_tasks.clone()))
        };
        TapHub {
            components: components
                .iter()
                .map(|(id, bolt, first)| ComponentTaps {
                    id: id.clone(),
                    out: point(id, Direction::Out, *first),
                    input: bolt.then(|| point(id, Direction::In, *first)),
                })
                .collect(),
        }
    }

    /// The links of one task of `component`.
    pub(crate) fn links(&self, component: &str, task: TaskId) -> TaskTaps {
        match self.components.iter().find(|c| c.id == component) {
            Some(c) => TaskTaps {
                out: Some(c.out.link(task)),
                input: c.input.as_ref().map(|p| p.link(task)),
            },
            None => TaskTaps::default(),
        }
    }

    /// Starts a tap.
    pub(crate) fn tap(&self, component: &str, o: &TapOptions) -> Result<TapReceiver, TapError> {
        if !(o.rate.is_finite() && o.rate > 0.0 && o.rate <= MAX_RATE) {
            return Err(TapError::BadRate { rate: o.rate });
        }
        if o.capacity == 0 {
            return Err(TapError::BadCapacity);
        }
        let Some(c) = self.components.iter().find(|c| c.id == component) else {
            return Err(TapError::UnknownComponent {
                component: component.into(),
                suggestion: suggest(component, self.components.iter().map(|c| c.id.as_str())),
                known: self.components.iter().map(|c| c.id.clone()).collect(),
            });
        };
        let point = match o.direction {
            Direction::Out => &c.out,
            Direction::In => c.input.as_ref().ok_or_else(|| TapError::NoInput {
                component: c.id.clone(),
            })?,
        };
        point.subscribe(o)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::values;

    /// A spout `gen` (2 tasks, ids 0-1) and a bolt `split` (3 tasks, ids 2-4).
    fn hub() -> TapHub {
        TapHub::new(&[
            ("gen".into(), false, TaskId(0)),
            ("split".into(), true, TaskId(2)),
        ])
    }

    fn schema() -> &'static StreamSchema {
        StreamSchema::intern("gen", "lines", &["line".into(), "n".into()], false)
    }

    #[test]
    fn an_untapped_point_is_off_and_a_tapped_one_on_until_its_last_receiver_goes() {
        let hub = hub();
        let links = hub.links("gen", TaskId(1));
        let out = links.out.as_ref().expect("an out link");
        assert!(links.input.is_none(), "a spout has no in point");
        assert!(!out.point.on.load(Ordering::Relaxed));
        let a = hub
            .tap("gen", &TapOptions::new(Direction::Out, 100.0))
            .expect("tap");
        let b = hub
            .tap("gen", &TapOptions::new(Direction::Out, 100.0))
            .expect("tap");
        assert!(out.point.on.load(Ordering::Relaxed));
        drop(a);
        assert!(out.point.on.load(Ordering::Relaxed), "b still taps");
        links.emitted(schema(), &values!["x", 1]);
        assert_eq!(b.try_recv().map(|e| e.task_index), Some(1));
        drop(b);
        assert!(!out.point.on.load(Ordering::Relaxed));
        assert!(out.point.write().list.is_empty());
    }

    #[test]
    fn out_events_carry_task_stream_and_named_fields_in_either_format() {
        let hub = hub();
        let links = hub.links("gen", TaskId(1));
        let text = hub
            .tap("gen", &TapOptions::new(Direction::Out, 100.0))
            .expect("tap");
        let json = hub
            .tap(
                "gen",
                &TapOptions::new(Direction::Out, 100.0).format(TapFormat::Json),
            )
            .expect("tap");
        links.emitted(schema(), &values!["the cow", 7]);
        let e = text.try_recv().expect("an event");
        assert_eq!(e.component, "gen");
        assert_eq!((e.task, e.task_index), (TaskId(1), 1));
        assert_eq!((e.direction, e.stream.as_str()), (Direction::Out, "lines"));
        assert_eq!(e.source, None);
        let pairs = |e: &TapEvent| -> Vec<(String, String)> {
            e.fields
                .iter()
                .map(|f| (f.name.to_string(), f.value.clone()))
                .collect()
        };
        assert_eq!(
            pairs(&e),
            [("line".into(), "the cow".into()), ("n".into(), "7".into())]
        );
        let e = json.try_recv().expect("an event");
        assert_eq!(
            pairs(&e),
            [
                ("line".into(), "\"the cow\"".into()),
                ("n".into(), "7".into())
            ]
        );
        assert!((e.time_ms - crate::clock::now_millis()).abs() < 60_000);
    }

    #[test]
    fn in_events_name_the_source_component_stream_and_task() {
        let hub = hub();
        let links = hub.links("split", TaskId(4));
        let rx = hub
            .tap("split", &TapOptions::new(Direction::In, 100.0))
            .expect("tap");
        let batch = [
            Tuple::new(schema(), TaskId(1), values!["a", 1]),
            Tuple::new(schema(), TaskId(0), values!["b", 2]),
        ];
        links.emitted(schema(), &values!["not tapped", 0]);
        links.executing(&batch);
        let e = rx.try_recv().expect("an event");
        assert_eq!((e.component.as_str(), e.task_index), ("split", 2));
        assert_eq!((e.direction, e.stream.as_str()), (Direction::In, "lines"));
        assert_eq!(
            e.source,
            Some(TapSource {
                component: "gen".into(),
                task: TaskId(1),
                task_index: 1
            })
        );
        assert_eq!(e.fields[0].value, "a");
        let e = rx.try_recv().expect("a second event");
        assert_eq!(e.source.map(|s| s.task_index), Some(0));
        assert!(rx.try_recv().is_none(), "the out side was not tapped");
    }

    #[test]
    fn the_rate_bounds_what_is_handed_over_and_the_rest_is_counted_as_skipped() {
        let hub = hub();
        let links = hub.links("gen", TaskId(0));
        let rx = hub
            .tap("gen", &TapOptions::new(Direction::Out, 10.0))
            .expect("tap");
        let start = Instant::now();
        for n in 0..1000 {
            links.emitted(schema(), &values!["x", n]);
        }
        let elapsed = start.elapsed().as_secs_f64();
        let got = rx.rx.len() as u64;
        // A bucket of one second's worth (10), refilled at 10/s while the loop ran.
        assert!(got >= 10, "the first second's worth passes: {got}");
        assert!(
            got <= 10 + (elapsed * 10.0).ceil() as u64,
            "{got} in {elapsed}s"
        );
        assert_eq!(rx.skipped(), 1000 - got);
    }

    #[test]
    fn once_every_bucket_is_empty_the_gate_skips_without_asking_them() {
        let hub = hub();
        let a = hub.links("gen", TaskId(0));
        let b = hub.links("gen", TaskId(1));
        let first = hub
            .tap("gen", &TapOptions::new(Direction::Out, 1.0))
            .expect("tap");
        let point = a.out.as_ref().expect("a link").point.clone();
        a.emitted(schema(), &values!["x", 1]);
        assert_eq!(
            point.gate_ns.load(Ordering::Relaxed),
            0,
            "a token was taken"
        );
        a.emitted(schema(), &values!["x", 2]);
        let gate = point.gate_ns.load(Ordering::Relaxed);
        assert!(gate > point.now_ns(), "closed for about a second: {gate}");
        for n in 0..100 {
            b.emitted(schema(), &values!["y", n]);
        }
        assert_eq!(point.gated(), 100, "counted by the task that skipped them");
        assert_eq!(
            first.skipped(),
            101,
            "1 refused by the bucket, 100 at the gate"
        );
        // A new tap has a full bucket: it opens the gate, and counts from its own start.
        let second = hub
            .tap("gen", &TapOptions::new(Direction::Out, 1.0))
            .expect("tap");
        assert_eq!(point.gate_ns.load(Ordering::Relaxed), 0);
        b.emitted(schema(), &values!["z", 1]);
        assert_eq!(
            second.try_recv().map(|e| e.fields[0].value.clone()),
            Some("z".into())
        );
        assert_eq!(second.skipped(), 0);
        assert_eq!(first.skipped(), 102);
        assert_eq!(
            first.try_recv().map(|e| e.fields[1].value.clone()),
            Some("1".into())
        );
        assert!(first.try_recv().is_none());
    }

    #[test]
    fn a_full_channel_skips_instead_of_waiting() {
        let hub = hub();
        let links = hub.links("gen", TaskId(0));
        let rx = hub
            .tap(
                "gen",
                &TapOptions::new(Direction::Out, MAX_RATE).capacity(2),
            )
            .expect("tap");
        for n in 0..10 {
            links.emitted(schema(), &values!["x", n]);
        }
        assert_eq!(rx.rx.len(), 2);
        assert_eq!(rx.skipped(), 8);
        let first = rx.try_recv().expect("an event");
        assert_eq!(first.fields[1].value, "0", "the oldest are kept");
    }

    #[test]
    fn the_last_task_ending_ends_the_tap_after_what_was_sent() {
        let hub = hub();
        let a = hub.links("gen", TaskId(0));
        let b = hub.links("gen", TaskId(1));
        let rx = hub
            .tap("gen", &TapOptions::new(Direction::Out, 100.0))
            .expect("tap");
        a.emitted(schema(), &values!["x", 1]);
        drop(a);
        assert!(rx.try_recv().is_some());
        b.emitted(schema(), &values!["y", 2]);
        drop(b);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(
            rt.block_on(rx.recv()).map(|e| e.fields[0].value.clone()),
            Some("y".to_string())
        );
        assert_eq!(rt.block_on(rx.recv()), None);
        assert_eq!(
            hub.tap("gen", &TapOptions::new(Direction::Out, 1.0))
                .unwrap_err()
                .to_string(),
            "the tasks of `gen` have ended (the topology stopped); there is nothing left to tap"
        );
    }

    #[test]
    fn bad_requests_are_refused_with_what_was_expected() {
        let hub = hub();
        let err = |c: &str, o: TapOptions| hub.tap(c, &o).unwrap_err().to_string();
        assert_eq!(
            err("splt", TapOptions::new(Direction::Out, 1.0)),
            "no component `splt` in this topology; did you mean `split`? (its components: gen, split)"
        );
        assert_eq!(
            err("count", TapOptions::new(Direction::Out, 1.0)),
            "no component `count` in this topology (its components: gen, split)"
        );
        assert_eq!(
            err("gen", TapOptions::new(Direction::In, 1.0)),
            "`gen` is a spout: it executes no input; tap what it emits (direction out)"
        );
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e6] {
            assert!(
                err("gen", TapOptions::new(Direction::Out, rate))
                    .starts_with("tap rate must be a number of tuples per second above 0"),
                "{rate}"
            );
        }
        assert_eq!(
            err("gen", TapOptions::new(Direction::Out, 1.0).capacity(0)),
            "tap capacity must be at least 1 tuple"
        );
        assert_eq!("IN".parse::<Direction>(), Ok(Direction::In));
        assert_eq!(
            "up".parse::<Direction>().unwrap_err(),
            "direction must be `in` or `out`, got \"up\""
        );
    }

    /// An endless spout of ("w<n>", n).
    struct Counting(i64);

    impl crate::Spout for Counting {
        type MessageId = i64;
        fn declare_outputs(&self, out: &mut crate::OutputDeclarer) {
            out.declare(["word", "n"]);
        }
        async fn next_tuple(
            &mut self,
            out: &mut crate::SpoutCollector<'_, i64>,
        ) -> Result<(), crate::BoxError> {
            self.0 += 1;
            out.emit(values![format!("w{}", self.0), self.0], self.0);
            Ok(())
        }
    }

    /// Emits each input's word upper-cased on stream `loud`.
    struct Loud;

    impl crate::BasicBolt for Loud {
        fn declare_outputs(&self, out: &mut crate::OutputDeclarer) {
            out.declare_stream("loud", ["shout"]);
        }
        fn execute(
            &mut self,
            input: &Tuple,
            out: &mut crate::BasicCollector<'_>,
        ) -> Result<(), crate::BoxError> {
            let w = input.str_field("word")?.to_uppercase();
            out.emit_to("loud", values![w]);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn taps_on_a_running_topology_see_both_sides_and_end_with_it() {
        use crate::topology::{
            BoltFactory, ComponentFactory, ComponentSpec, InputSpec, SpoutFactory, TopologySpec,
        };
        let spec = TopologySpec {
            name: "taps".into(),
            config: crate::Config {
                worker_threads: 2,
                ..crate::Config::default()
            },
            components: vec![
                ComponentSpec {
                    id: "gen".into(),
                    parallelism: 2,
                    factory: ComponentFactory::Spout(SpoutFactory::new(|| Counting(0))),
                    inputs: vec![],
                    tick_interval: None,
                },
                ComponentSpec {
                    id: "loud".into(),
                    parallelism: 2,
                    factory: ComponentFactory::Bolt(BoltFactory::basic(|| Loud)),
                    inputs: vec![InputSpec {
                        component: "gen".into(),
                        stream: crate::DEFAULT_STREAM.into(),
                        grouping: crate::Grouping::Shuffle,
                    }],
                    tick_interval: None,
                },
            ],
        };
        let handle = crate::submit(spec.validate().expect("a valid topology"));
        let rate = 50.0;
        let subscribed = Instant::now();
        let out = handle.tap("gen", Direction::Out, rate).expect("tap gen");
        let input = handle
            .tap("loud", Direction::In, rate)
            .expect("tap loud in");
        let reader = handle.metrics_reader();
        let shouts = reader
            .tap_with(
                "loud",
                TapOptions::new(Direction::Out, rate).format(TapFormat::Json),
            )
            .expect("tap loud out");
        let wait = Duration::from_secs(20);
        let next = |rx: &TapReceiver| {
            let rx = rx.rx.clone();
            async move {
                tokio::time::timeout(wait, rx.recv_async())
                    .await
                    .expect("a tuple within the wait")
                    .expect("the tap is open")
            }
        };
        let e = next(&out).await;
        assert_eq!(
            (e.component.as_str(), e.stream.as_str()),
            ("gen", "default")
        );
        assert!(e.task_index < 2 && e.task.0 < 2, "{e:?}");
        assert_eq!(e.fields[0].name, "word");
        assert_eq!(e.fields[0].value, format!("w{}", e.fields[1].value));
        let e = next(&input).await;
        assert_eq!((e.component.as_str(), e.direction), ("loud", Direction::In));
        assert_eq!(e.stream, "default");
        let source = e.source.expect("a source");
        assert_eq!(source.component, "gen");
        assert!(
            source.task_index < 2 && (2..4).contains(&e.task.0),
            "{source:?}"
        );
        let e = next(&shouts).await;
        assert_eq!(
            (e.stream.as_str(), e.fields[0].name.as_str()),
            ("loud", "shout")
        );
        assert!(e.fields[0].value.starts_with("\"W"), "JSON text: {e:?}");
        // The rate holds: after the first second's worth, at most `rate` a second more.
        let start = Instant::now();
        let mut got = 1;
        while start.elapsed() < Duration::from_millis(500) {
            if out.recv_timeout(Duration::from_millis(10)).is_some() {
                got += 1;
            }
        }
        let bound = rate + (subscribed.elapsed().as_secs_f64() * rate).ceil();
        assert!((got as f64) <= bound + 1.0, "{got} > {bound}");
        assert!(out.skipped() > 0, "a spout this fast outruns 50/s");
        // The end of the topology ends every tap, after what was sent.
        handle.stop(Duration::from_secs(5)).await;
        for rx in [&out, &input, &shouts] {
            let mut left = 0;
            while tokio::time::timeout(wait, rx.recv())
                .await
                .expect("the tap ends")
                .is_some()
            {
                left += 1;
                assert!(left <= DEFAULT_CAPACITY);
            }
        }
        assert!(matches!(
            reader.tap("gen", Direction::Out, 1.0),
            Err(TapError::Ended { .. })
        ));
    }

    #[test]
    fn a_slow_rate_still_lets_one_tuple_through() {
        let hub = hub();
        let links = hub.links("gen", TaskId(0));
        let rx = hub
            .tap("gen", &TapOptions::new(Direction::Out, 0.01))
            .expect("tap");
        links.emitted(schema(), &values!["x", 1]);
        links.emitted(schema(), &values!["x", 2]);
        assert_eq!(rx.rx.len(), 1);
        assert_eq!(rx.skipped(), 1);
    }
}
