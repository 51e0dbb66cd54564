//! Exact per-task counters and latency histograms, readable as a snapshot while the topology runs.
//!
//! Every task owns one [`TaskMetrics`]. Only that task writes its counters, and it adds what it
//! counted once per batch, so counting costs next to nothing per tuple and no count is sampled. Readers ([`MetricsSnapshot`]) load the atomics and copy
//! the histograms.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use smol_str::SmolStr;

use crate::role::Role;
use crate::tuple::TaskId;

/// Latencies are recorded in microseconds, from 1 µs to one hour, with 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The number of tuples waiting in a task's receive queue; written by senders and the receiver.
#[derive(Debug, Default)]
pub(crate) struct QueueGauge {
    len: AtomicUsize,
}

impl QueueGauge {
    pub(crate) fn add(&self, n: usize) {
        self.len.fetch_add(n, Relaxed);
    }
    pub(crate) fn sub(&self, n: usize) {
        self.len.fetch_sub(n, Relaxed);
    }
    pub(crate) fn get(&self) -> usize {
        self.len.load(Relaxed)
    }
}

/// The live figures of one task.
#[derive(Debug)]
pub struct TaskMetrics {
    pub(crate) emitted: AtomicU64,
    pub(crate) transferred: AtomicU64,
    pub(crate) executed: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) backpressure_ns: AtomicU64,
    /// Spout tasks: the spout is exhausted and has no pending tree.
    pub(crate) idle: AtomicBool,
    /// Spout tasks: messages still pending when a stop's deadline passed (failed then).
    pub(crate) abandoned_at_stop: AtomicU64,
    pub(crate) queue: Arc<QueueGauge>,
    pub(crate) queue_capacity: usize,
    pub(crate) execute_latency: Mutex<Histogram<u64>>,
    pub(crate) complete_latency: Mutex<Histogram<u64>>,
}

impl TaskMetrics {
    pub(crate) fn new(queue_capacity: usize) -> TaskMetrics {
        TaskMetrics {
            emitted: AtomicU64::new(0),
            transferred: AtomicU64::new(0),
            executed: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            backpressure_ns: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            abandoned_at_stop: AtomicU64::new(0),
            queue: Arc::new(QueueGauge::default()),
            queue_capacity,
            execute_latency: Mutex::new(new_histogram()),
            complete_latency: Mutex::new(new_histogram()),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    /// Records `count` executions that took `total` together (their mean, `count` times).
    pub(crate) fn record_execute(&self, total: Duration, count: u64) {
        if count == 0 {
            return;
        }
        let mean_us = (total.as_micros() as u64 / count).max(1);
        if let Ok(mut h) = self.execute_latency.lock() {
            h.saturating_record_n(mean_us, count);
        }
    }

    /// Records complete latencies of spout messages: each tree's latency, once for each of its
    /// messages.
    pub(crate) fn record_complete(&self, latencies: impl Iterator<Item = (Duration, u64)>) {
        if let Ok(mut h) = self.complete_latency.lock() {
            for (l, messages) in latencies {
                h.saturating_record_n((l.as_micros() as u64).max(1), messages);
            }
        }
    }

    fn snapshot(&self, task: TaskId, uptime: Duration) -> TaskSnapshot {
        let lat = |h: &Mutex<Histogram<u64>>| {
            h.lock().map(|h| LatencySummary::of(&h)).unwrap_or_default()
        };
        TaskSnapshot {
            task,
            emitted: self.emitted.load(Relaxed),
            transferred: self.transferred.load(Relaxed),
            executed: self.executed.load(Relaxed),
            acked: self.acked.load(Relaxed),
            failed: self.failed.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            errors: self.errors.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            pending: self.pending.load(Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Relaxed)),
            busy_fraction: if uptime.is_zero() {
                0.0
            } else {
                (self.busy_ns.load(Relaxed) as f64 / uptime.as_nanos() as f64).min(1.0)
            },
            backpressure: Duration::from_nanos(self.backpressure_ns.load(Relaxed)),
            queue_len: self.queue.get(),
            queue_capacity: self.queue_capacity,
            execute_latency: lat(&self.execute_latency),
            complete_latency: lat(&self.complete_latency),
        }
    }
}

/// The upper bounds, in microseconds, of the latency buckets every [`LatencySummary`] counts
/// into (1-2-5 steps from 10 µs to one minute): the `le` bounds of the Prometheus histograms, and
/// what lets a reader compute the quantiles of any interval from two snapshots.
pub const LATENCY_BOUNDS_US: [u64; 22] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 30_000_000, 60_000_000,
];

/// Percentiles of a latency histogram, in microseconds, and its counts per bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many latencies were recorded.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Sum of every latency recorded, µs (from the histogram, to its 3 significant digits).
    pub sum_us: u64,
    /// Cumulative counts: `buckets[i]` latencies were at most [`LATENCY_BOUNDS_US`]`[i]`
    /// (those over the last bound are `count - buckets[21]`).
    pub buckets: [u64; LATENCY_BOUNDS_US.len()],
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let mut buckets = [0u64; LATENCY_BOUNDS_US.len()];
        let mut sum_us = 0u64;
        for v in h.iter_recorded() {
            let value = h.highest_equivalent(v.value_iterated_to());
            let n = v.count_at_value();
            sum_us = sum_us.saturating_add(h.median_equivalent(value).saturating_mul(n));
            let first = LATENCY_BOUNDS_US.partition_point(|&b| b < value);
            if let Some(b) = buckets.get_mut(first) {
                *b += n;
            }
        }
        // Per-bucket counts to cumulative ones.
        for i in 1..buckets.len() {
            buckets[i] += buckets[i - 1];
        }
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean(),
            sum_us,
            buckets,
        }
    }
}

/// The figures of one task at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskSnapshot {
    /// The task.
    pub task: TaskId,
    /// Tuples emitted (each `emit` counts once, however many tasks receive it).
    pub emitted: u64,
    /// Tuples sent to other tasks (an `emit` reaching three tasks counts three).
    pub transferred: u64,
    /// Input tuples executed (bolts).
    pub executed: u64,
    /// Bolts: inputs acked. Spouts: messages whose tree completed (`Spout::ack` called).
    pub acked: u64,
    /// Bolts: inputs failed. Spouts: messages whose tree failed explicitly or by a task failure.
    pub failed: u64,
    /// Spouts: messages failed because their tree did not complete within the message timeout.
    pub timed_out: u64,
    /// Errors returned or panics raised by the component.
    pub errors: u64,
    /// Times the component was re-created after a panic or failed start.
    pub restarts: u64,
    /// Spouts: messages emitted with an id and not yet acked or failed.
    pub pending: u64,
    /// Time spent in the component's own code (execute, next_tuple, ...).
    pub busy: Duration,
    /// `busy` as a share of the uptime (Storm's "capacity"): near 1.0, the task is the bottleneck.
    pub busy_fraction: f64,
    /// Time spent waiting for a full downstream queue.
    pub backpressure: Duration,
    /// Tuples waiting in this task's receive queue.
    pub queue_len: usize,
    /// Capacity of that queue, in tuples.
    pub queue_capacity: usize,
    /// Bolts: time per executed tuple (each batch's mean, recorded for each of its tuples).
    pub execute_latency: LatencySummary,
    /// Spouts: time from emit to tree completion.
    pub complete_latency: LatencySummary,
}

/// The JSON `kind` of a component of a running topology, for its `Option<Role>`: `spout` or
/// `bolt`, and `acker` for `None`, the runtime's acker (`__acker`), which is neither.
///
/// Use it as `#[serde(rename = "kind", with = "component_kind")]` on an `Option<Role>` field.
pub mod component_kind {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::role::Role;

    /// The kind of the runtime's acker.
    pub const ACKER: &str = "acker";

    /// `spout`, `bolt`, or `acker` for `None`.
    pub fn name(role: Option<Role>) -> &'static str {
        role.map_or(ACKER, Role::as_str)
    }

    /// Writes [`name`].
    pub fn serialize<S: Serializer>(role: &Option<Role>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*role))
    }

    /// Reads `spout`, `bolt` or `acker`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Role>, D::Error> {
        let kind = String::deserialize(d)?;
        match kind.as_str() {
            "spout" => Ok(Some(Role::Spout)),
            "bolt" => Ok(Some(Role::Bolt)),
            ACKER => Ok(None),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["spout", "bolt", ACKER],
            )),
        }
    }
}

/// The figures of one component: each task, and the sums.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentSnapshot {
    /// The component id.
    pub id: SmolStr,
    /// Spout or bolt; `None` for the runtime's acker (`kind` `acker` in JSON).
    #[serde(rename = "kind", with = "component_kind")]
    pub role: Option<Role>,
    /// One entry per task.
    pub tasks: Vec<TaskSnapshot>,
}

impl ComponentSnapshot {
    /// `spout`, `bolt` or `acker`.
    pub fn kind(&self) -> &'static str {
        component_kind::name(self.role)
    }
    fn sum(&self, f: impl Fn(&TaskSnapshot) -> u64) -> u64 {
        self.tasks.iter().map(f).sum()
    }
    /// Emitted, over all tasks.
    pub fn emitted(&self) -> u64 {
        self.sum(|t| t.emitted)
    }
    /// Transferred, over all tasks.
    pub fn transferred(&self) -> u64 {
        self.sum(|t| t.transferred)
    }
    /// Executed, over all tasks.
    pub fn executed(&self) -> u64 {
        self.sum(|t| t.executed)
    }
    /// Acked, over all tasks.
    pub fn acked(&self) -> u64 {
        self.sum(|t| t.acked)
    }
    /// Failed, over all tasks.
    pub fn failed(&self) -> u64 {
        self.sum(|t| t.failed)
    }
    /// Timed out, over all tasks.
    pub fn timed_out(&self) -> u64 {
        self.sum(|t| t.timed_out)
    }
    /// Errors, over all tasks.
    pub fn errors(&self) -> u64 {
        self.sum(|t| t.errors)
    }
    /// Restarts, over all tasks.
    pub fn restarts(&self) -> u64 {
        self.sum(|t| t.restarts)
    }
    /// Pending spout messages, over all tasks.
    pub fn pending(&self) -> u64 {
        self.sum(|t| t.pending)
    }
    /// Queued tuples, over all tasks.
    pub fn queue_len(&self) -> usize {
        self.tasks.iter().map(|t| t.queue_len).sum()
    }
}

/// The tuples sent along one subscription: `from`'s stream `stream` to the bolt `to`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeSnapshot {
    /// The emitting component.
    pub from: SmolStr,
    /// Its stream.
    pub stream: SmolStr,
    /// The subscribing bolt.
    pub to: SmolStr,
    /// Tuples sent along this subscription so far (a copy to each receiving task counts once).
    pub transferred: u64,
}

/// The figures of every component of a running topology at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Time since the topology started.
    pub uptime: Duration,
    /// One entry per component, spouts and bolts in declaration order, then the ackers.
    pub components: Vec<ComponentSnapshot>,
    /// One entry per subscription, in the order of the subscribing bolts and their inputs.
    pub edges: Vec<EdgeSnapshot>,
    /// The bounds of the latency buckets ([`LATENCY_BOUNDS_US`]).
    pub latency_bounds_us: &'static [u64],
    /// Checkpoint figures, when the topology takes checkpoints.
    pub checkpoints: Option<CheckpointSnapshot>,
}

/// Checkpoint figures of a run, updated by the checkpoint coordinator.
#[derive(Debug, Default)]
pub struct CheckpointMetrics {
    /// Checkpoints completed in this run.
    pub completed: AtomicU64,
    /// Checkpoints that failed in this run (a task declined, a write failed, a timeout).
    pub failed: AtomicU64,
    /// The id of the newest completed checkpoint (0: none).
    pub last_id: AtomicU64,
    /// Its duration from trigger to manifest, milliseconds.
    pub last_duration_ms: AtomicU64,
    /// Bytes written for it.
    pub last_bytes: AtomicU64,
    /// Its longest alignment over the tasks, microseconds.
    pub last_alignment_us: AtomicU64,
    /// Its longest processing pause over the tasks, microseconds.
    pub last_pause_us: AtomicU64,
    /// When it completed, milliseconds since the Unix epoch (0: none).
    pub last_completed_at_ms: AtomicU64,
    /// The checkpoint this run resumed from (0: it started empty).
    pub restored_id: AtomicU64,
    /// The longest processing pause of any task at any checkpoint of this run, microseconds.
    pub max_pause_us: AtomicU64,
    /// The longest duration of any completed checkpoint of this run, milliseconds.
    pub max_duration_ms: AtomicU64,
}

/// Checkpoint figures at one moment ([`MetricsSnapshot::checkpoints`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointSnapshot {
    /// Checkpoints completed in this run.
    pub completed: u64,
    /// Checkpoints that failed in this run.
    pub failed: u64,
    /// The newest completed checkpoint's id, if any.
    pub last_id: Option<u64>,
    /// Its duration, from trigger to manifest.
    pub last_duration: Duration,
    /// Bytes written for it.
    pub last_bytes: u64,
    /// Its longest barrier alignment over the tasks.
    pub last_alignment: Duration,
    /// Its longest processing pause over the tasks: the snapshot itself (and a sink's write of
    /// its batch), not the wait to put the barrier into a full queue (backpressure).
    pub last_pause: Duration,
    /// Time since it completed.
    pub since_last: Option<Duration>,
    /// The checkpoint this run resumed from, if any.
    pub restored_id: Option<u64>,
    /// The longest processing pause of any task at any checkpoint of this run.
    pub max_pause: Duration,
    /// The longest duration of any completed checkpoint of this run.
    pub max_duration: Duration,
}

impl CheckpointMetrics {
    /// The figures now.
    pub fn snapshot(&self) -> CheckpointSnapshot {
        let last_id = self.last_id.load(Relaxed);
        let at = self.last_completed_at_ms.load(Relaxed);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let restored = self.restored_id.load(Relaxed);
        CheckpointSnapshot {
            completed: self.completed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            last_id: (last_id > 0).then_some(last_id),
            last_duration: Duration::from_millis(self.last_duration_ms.load(Relaxed)),
            last_bytes: self.last_bytes.load(Relaxed),
            last_alignment: Duration::from_micros(self.last_alignment_us.load(Relaxed)),
            last_pause: Duration::from_micros(self.last_pause_us.load(Relaxed)),
            since_last: (at > 0).then(|| Duration::from_millis(now_ms.saturating_sub(at))),
            restored_id: (restored > 0).then_some(restored),
            max_pause: Duration::from_micros(self.max_pause_us.load(Relaxed)),
            max_duration: Duration::from_millis(self.max_duration_ms.load(Relaxed)),
        }
    }
}

impl MetricsSnapshot {
    /// The figures of one component.
    pub fn component(&self, id: &str) -> Option<&ComponentSnapshot> {
        self.components.iter().find(|c| c.id == id)
    }
}

/// A component's tasks with their metrics.
pub(crate) type TaskList = Vec<(TaskId, Arc<TaskMetrics>)>;

/// The counter of one subscription, shared by the emitting tasks: from, stream, to, count.
pub(crate) type EdgeCounter = (SmolStr, SmolStr, SmolStr, Arc<AtomicU64>);

/// Where the runtime keeps every task's metrics.
#[derive(Debug, Default)]
pub(crate) struct MetricsRegistry {
    pub(crate) components: Vec<(SmolStr, Option<Role>, TaskList)>,
    pub(crate) edges: Vec<EdgeCounter>,
    pub(crate) checkpoints: Option<Arc<CheckpointMetrics>>,
}

impl MetricsRegistry {
    pub(crate) fn snapshot(&self, uptime: Duration) -> MetricsSnapshot {
        MetricsSnapshot {
            uptime,
            components: self
                .components
                .iter()
                .map(|(id, role, tasks)| ComponentSnapshot {
                    id: id.clone(),
                    role: *role,
                    tasks: tasks.iter().map(|(t, m)| m.snapshot(*t, uptime)).collect(),
                })
                .collect(),
            edges: self
                .edges
                .iter()
                .map(|(from, stream, to, n)| EdgeSnapshot {
                    from: from.clone(),
                    stream: stream.clone(),
                    to: to.clone(),
                    transferred: n.load(Relaxed),
                })
                .collect(),
            latency_bounds_us: &LATENCY_BOUNDS_US,
            checkpoints: self.checkpoints.as_ref().map(|c| c.snapshot()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_and_hold_every_value() {
        let mut h = new_histogram();
        // 10 µs exactly is in the first bucket (le 10), 11 µs in the second.
        for (v, n) in [(10, 3), (11, 2), (150, 4), (1_500_000, 1), (90_000_000, 2)] {
            h.record_n(v, n).expect("in range");
        }
        let l = LatencySummary::of(&h);
        assert_eq!(l.count, 12);
        let at = |bound: u64| {
            let i = LATENCY_BOUNDS_US
                .iter()
                .position(|&b| b == bound)
                .expect("a bound");
            l.buckets[i]
        };
        assert_eq!(at(10), 3);
        assert_eq!(at(20), 5);
        assert_eq!(at(100), 5);
        assert_eq!(at(200), 9);
        assert_eq!(at(1_000_000), 9);
        assert_eq!(at(2_000_000), 10);
        // 90 s is over the last bound: only the count holds it.
        assert_eq!(at(60_000_000), 10);
        assert!(l.buckets.windows(2).all(|w| w[0] <= w[1]));
        // The sum, to the histogram's 3 significant digits.
        let exact = 3 * 10 + 2 * 11 + 4 * 150 + 1_500_000 + 2 * 90_000_000u64;
        assert!(
            l.sum_us.abs_diff(exact) * 1000 <= exact,
            "{} vs {exact}",
            l.sum_us
        );
    }

    #[test]
    fn a_component_s_kind_is_its_role_or_acker() {
        for (role, kind) in [
            (Some(Role::Spout), "spout"),
            (Some(Role::Bolt), "bolt"),
            (None, "acker"),
        ] {
            let c = ComponentSnapshot {
                id: "c".into(),
                role,
                tasks: Vec::new(),
            };
            assert_eq!(c.kind(), kind);
            let json = serde_json::to_value(&c).expect("serializable");
            assert_eq!(json["kind"], kind);
            let back = component_kind::deserialize(json["kind"].clone()).expect("readable");
            assert_eq!(back, role);
        }
        assert!(component_kind::deserialize(serde_json::json!("sink")).is_err());
    }

    #[test]
    fn an_empty_histogram_has_empty_buckets() {
        let l = LatencySummary::of(&new_histogram());
        assert_eq!(l, LatencySummary::default());
    }
}
