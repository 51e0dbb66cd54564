//! What the dashboard and `topo top` show of a running topology, computed once, here: each
//! component's rates, capacity, backpressure, queue fill and latency quantiles over a window, the
//! rate of each edge, and **the bottleneck**. The endpoint serves them as the `figures` field of
//! `/api/metrics`; the dashboard and `topo top` only display them, so they cannot disagree.
//!
//! ```text
//!  GET /api/metrics?window=5s ──► snapshot now ──────────────┐
//!      snapshots of earlier requests (kept 60 s) ─► the one ─┴─► Figures::between(before, now)
//!      nearest 5 s ago (none: since the start)                   │ per component: deltas of the
//!                                                                │ exact counters / seconds,
//!                                                                │ quantiles from bucket deltas
//!                                                                ▼
//!                                             bottleneck(): the one rule ──► JSON `figures`
//!                                                                  ▲ dashboard.js, `topo top`
//! ```
//!
//! **Capacity** is the largest share of the window one of a component's tasks spent in the
//! component's own code; **queue fill** the fullest of its tasks' receive queues. The
//! **bottleneck** is the bolt (or acker) with the highest capacity when that is at least
//! [`BUSY`]; capacities within [`SAME_CAPACITY`] of the highest count as equal (a saturated stage
//! and the stage feeding it can both read 1.00), and then the one that waits least for full
//! downstream queues wins, as the others are held up by it; on a full tie, the first in
//! declaration order. Without a busy one, it is the component with the fullest queue when that is
//! over [`FULL`], the first on a tie; else there is none. Spouts are never named by capacity: a
//! spout's busy time includes what `next_tuple` awaits (a paced generator sleeping, a consumer
//! waiting for its broker), so a high figure there says little about the topology's flow.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use topo_runtime::metrics::component_kind;
use topo_runtime::{ComponentSnapshot, LatencySummary, MetricsSnapshot, Role, TaskSnapshot};

/// The capacity from which the busiest bolt is the bottleneck.
pub const BUSY: f64 = 0.7;
/// The queue fill over which the fullest queue's component is the bottleneck.
pub const FULL: f64 = 0.5;
/// Capacities closer than this count as equal when naming the bottleneck.
pub const SAME_CAPACITY: f64 = 0.01;
/// The window `/api/metrics` takes its figures over when the request names none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);
/// How long the endpoint keeps the snapshots of earlier requests: the longest window it serves.
pub const KEPT: Duration = Duration::from_secs(60);

/// Everything the dashboard and `topo top` show, over one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The seconds the figures cover: between the two snapshots, or the whole uptime.
    pub window_s: f64,
    /// The figures cover the whole uptime (there was no earlier snapshot to start from).
    pub since_start: bool,
    /// One entry per component, in the snapshot's order (spouts and bolts, then the acker).
    pub components: Vec<ComponentFigures>,
    /// Tuples per second along each subscription.
    pub edges: Vec<EdgeFigures>,
    /// The component holding the topology back, if any (see the module doc for the rule).
    pub bottleneck: Option<Bottleneck>,
    /// The 99th percentile of every spout's complete latency (emit to tree completion) in the
    /// window, µs; none when no tree completed.
    pub complete_p99_us: Option<u64>,
}

/// The figures of one component over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentFigures {
    /// The component id.
    pub id: String,
    /// Spout or bolt; `None` for the runtime's acker (`kind` `acker` in JSON).
    #[serde(rename = "kind", with = "component_kind")]
    pub role: Option<Role>,
    /// Its tasks.
    pub tasks: usize,
    /// Tuples per second: emitted (spouts), executed (bolts and the acker).
    pub rate: f64,
    /// Tuples sent to tasks per second (an emit to three tasks counts three).
    pub transferred_rate: f64,
    /// Acked since the start (spouts: trees completed).
    pub acked: u64,
    /// Acked per second.
    pub acked_rate: f64,
    /// Failed since the start.
    pub failed: u64,
    /// Failed per second.
    pub failed_rate: f64,
    /// Spouts: trees timed out since the start.
    pub timed_out: u64,
    /// Timed out per second.
    pub timed_out_rate: f64,
    /// Errors and panics of the component since the start.
    pub errors: u64,
    /// Errors per second.
    pub errors_rate: f64,
    /// Spouts: trees pending now.
    pub pending: u64,
    /// The largest share of the window one task spent in the component's code, 0 to 1.
    pub capacity: f64,
    /// The largest share of the window one task waited for a full downstream queue, 0 to 1.
    pub backpressure: f64,
    /// The fullest receive queue of its tasks now, 0 to 1; none for spouts (no input queue).
    pub queue_fill: Option<f64>,
    /// Latencies recorded in the window: complete (spouts), execute (the others).
    pub latency_count: u64,
    /// Their median, µs, from the latency buckets; none without latencies.
    pub p50_us: Option<u64>,
    /// Their 99th percentile, µs, from the latency buckets; none without latencies.
    pub p99_us: Option<u64>,
    /// Their mean, µs; none without latencies.
    pub mean_us: Option<f64>,
}

/// The rate of one subscription: `from`'s stream `stream` to the bolt `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeFigures {
    /// The emitting component.
    pub from: String,
    /// Its stream.
    pub stream: String,
    /// The subscribing bolt.
    pub to: String,
    /// Tuples per second along it (a copy to each receiving task counts once).
    pub rate: f64,
}

/// Why a component is the bottleneck.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// Its capacity is at least [`BUSY`].
    Capacity,
    /// Its fullest receive queue is over [`FULL`].
    Queue,
}

/// The component holding the topology back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bottleneck {
    /// The component id.
    pub id: String,
    /// Which rule named it.
    pub cause: Cause,
    /// The reason, for a person: `capacity 0.93: busy 93% of the last 5 s`.
    pub why: String,
}

/// `the last 5 s`, `the last 1.5 s`, `the 3 s since the start`.
fn span(window_s: f64, since_start: bool) -> String {
    let s = if (window_s - window_s.round()).abs() < 0.05 {
        format!("{:.0}", window_s)
    } else {
        format!("{window_s:.1}")
    };
    if since_start {
        format!("the {s} s since the start")
    } else {
        format!("the last {s} s")
    }
}

/// The bottleneck among `components` (figures over `window_s` seconds), by the rule of the module
/// doc; `None` when nothing is busy or full enough.
pub fn bottleneck(
    components: &[ComponentFigures],
    window_s: f64,
    since_start: bool,
) -> Option<Bottleneck> {
    let bolts = || components.iter().filter(|c| c.role != Some(Role::Spout));
    let highest = bolts()
        .map(|c| c.capacity)
        .fold(f64::NEG_INFINITY, f64::max);
    if highest >= BUSY {
        // `min_by` keeps the first of equal elements: declaration order breaks a full tie.
        let busiest = bolts()
            .filter(|c| c.capacity >= BUSY && c.capacity > highest - SAME_CAPACITY)
            .min_by(|a, b| a.backpressure.total_cmp(&b.backpressure))?;
        return Some(Bottleneck {
            id: busiest.id.clone(),
            cause: Cause::Capacity,
            why: format!(
                "capacity {:.2}: busy {:.0}% of {}",
                busiest.capacity,
                busiest.capacity * 100.0,
                span(window_s, since_start)
            ),
        });
    }
    let mut fullest: Option<(&ComponentFigures, f64)> = None;
    for c in components {
        if let Some(fill) = c.queue_fill
            && fullest.is_none_or(|(_, f)| fill > f)
        {
            fullest = Some((c, fill));
        }
    }
    let (c, fill) = fullest.filter(|(_, fill)| *fill > FULL)?;
    Some(Bottleneck {
        id: c.id.clone(),
        cause: Cause::Queue,
        why: format!("receive queue {:.0}% full", fill * 100.0),
    })
}

/// The `q` quantile of `count` latencies whose cumulative counts at `bounds` are `cumulative`
/// (those over the last bound are only in `count`): found in its bucket and interpolated
/// linearly inside it, as Prometheus' `histogram_quantile` does. Past the last bound, that bound.
/// `None` when there are no latencies.
pub fn quantile(bounds: &[u64], cumulative: &[u64], count: u64, q: f64) -> Option<u64> {
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    for (i, (&bound, &at_most)) in bounds.iter().zip(cumulative).enumerate() {
        if at_most as f64 >= rank {
            let (lower, below) = match i {
                0 => (0, 0),
                _ => (bounds[i - 1], cumulative[i - 1]),
            };
            let inside = at_most.saturating_sub(below).max(1) as f64;
            let share = ((rank - below as f64) / inside).clamp(0.0, 1.0);
            return Some(lower + ((bound - lower) as f64 * share).round() as u64);
        }
    }
    bounds.last().copied()
}

/// Latencies of a window: count, sum and cumulative bucket counts, summed over tasks.
#[derive(Default)]
struct Window {
    count: u64,
    sum_us: u64,
    buckets: Vec<u64>,
}

impl Window {
    /// Adds what `now` recorded since `before` (since the start without one).
    fn add(&mut self, now: &LatencySummary, before: Option<&LatencySummary>) {
        let zero = LatencySummary::default();
        let before = before.unwrap_or(&zero);
        self.count += now.count.saturating_sub(before.count);
        self.sum_us += now.sum_us.saturating_sub(before.sum_us);
        self.buckets.resize(now.buckets.len(), 0);
        for (b, (n, p)) in self
            .buckets
            .iter_mut()
            .zip(now.buckets.iter().zip(&before.buckets))
        {
            *b += n.saturating_sub(*p);
        }
    }

    fn quantile(&self, bounds: &[u64], q: f64) -> Option<u64> {
        quantile(bounds, &self.buckets, self.count, q)
    }
}

/// The latency a component is judged by: complete for spouts, execute for the others.
fn latency_of(c: &ComponentSnapshot, t: &TaskSnapshot) -> LatencySummary {
    if c.role == Some(Role::Spout) {
        t.complete_latency
    } else {
        t.execute_latency
    }
}

impl Figures {
    /// The figures between `before` and `now`; since the start without `before`, or with one
    /// from another run of the topology (a later uptime).
    pub fn between(before: Option<&MetricsSnapshot>, now: &MetricsSnapshot) -> Figures {
        let before = before.filter(|b| b.uptime <= now.uptime);
        let dt = now
            .uptime
            .saturating_sub(before.map_or(Duration::ZERO, |b| b.uptime))
            .as_secs_f64();
        let per_second = |n: u64| if dt > 0.0 { n as f64 / dt } else { 0.0 };
        let share = |d: Duration| {
            if dt > 0.0 {
                (d.as_secs_f64() / dt).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let bounds = now.latency_bounds_us;
        let mut spouts_latency = Window::default();
        let components = now
            .components
            .iter()
            .map(|c| {
                let prev = before.and_then(|b| b.component(&c.id));
                let prev_task =
                    |t: &TaskSnapshot| prev.and_then(|p| p.tasks.iter().find(|x| x.task == t.task));
                let delta = |f: fn(&TaskSnapshot) -> u64| -> u64 {
                    c.tasks
                        .iter()
                        .map(|t| f(t).saturating_sub(prev_task(t).map_or(0, f)))
                        .sum()
                };
                let most = |f: fn(&TaskSnapshot) -> Duration| -> f64 {
                    c.tasks
                        .iter()
                        .map(|t| share(f(t).saturating_sub(prev_task(t).map_or(Duration::ZERO, f))))
                        .fold(0.0, f64::max)
                };
                let spout = c.role == Some(Role::Spout);
                let mut latency = Window::default();
                for t in &c.tasks {
                    let earlier = prev_task(t).map(|p| latency_of(c, p));
                    latency.add(&latency_of(c, t), earlier.as_ref());
                    if spout {
                        spouts_latency.add(&latency_of(c, t), earlier.as_ref());
                    }
                }
                let queue_fill = (!spout)
                    .then(|| {
                        c.tasks
                            .iter()
                            .filter(|t| t.queue_capacity > 0)
                            .map(|t| t.queue_len as f64 / t.queue_capacity as f64)
                            .reduce(f64::max)
                    })
                    .flatten();
                ComponentFigures {
                    id: c.id.to_string(),
                    role: c.role,
                    tasks: c.tasks.len(),
                    rate: per_second(if spout {
                        delta(|t| t.emitted)
                    } else {
                        delta(|t| t.executed)
                    }),
                    transferred_rate: per_second(delta(|t| t.transferred)),
                    acked: c.acked(),
                    acked_rate: per_second(delta(|t| t.acked)),
                    failed: c.failed(),
                    failed_rate: per_second(delta(|t| t.failed)),
                    timed_out: c.timed_out(),
                    timed_out_rate: per_second(delta(|t| t.timed_out)),
                    errors: c.errors(),
                    errors_rate: per_second(delta(|t| t.errors)),
                    pending: c.pending(),
                    capacity: most(|t| t.busy),
                    backpressure: most(|t| t.backpressure),
                    queue_fill,
                    latency_count: latency.count,
                    p50_us: latency.quantile(bounds, 0.5),
                    p99_us: latency.quantile(bounds, 0.99),
                    mean_us: (latency.count > 0)
                        .then(|| latency.sum_us as f64 / latency.count as f64),
                }
            })
            .collect::<Vec<_>>();
        let earlier_edges: HashMap<(&str, &str, &str), u64> = before
            .map(|b| {
                b.edges
                    .iter()
                    .map(|e| {
                        (
                            (e.from.as_str(), e.stream.as_str(), e.to.as_str()),
                            e.transferred,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let edges = now
            .edges
            .iter()
            .map(|e| {
                let key = (e.from.as_str(), e.stream.as_str(), e.to.as_str());
                let earlier = earlier_edges.get(&key).copied().unwrap_or(0);
                EdgeFigures {
                    from: e.from.to_string(),
                    stream: e.stream.to_string(),
                    to: e.to.to_string(),
                    rate: per_second(e.transferred.saturating_sub(earlier)),
                }
            })
            .collect();
        let since_start = before.is_none();
        Figures {
            window_s: dt,
            since_start,
            bottleneck: bottleneck(&components, dt, since_start),
            components,
            edges,
            complete_p99_us: spouts_latency.quantile(bounds, 0.99),
        }
    }
}

/// The snapshots of earlier requests, newest last: where the endpoint's windows start.
#[derive(Debug, Default)]
pub struct History {
    kept: VecDeque<MetricsSnapshot>,
}

impl History {
    /// The figures from the kept snapshot nearest `window` before `now` (among those at least a
    /// tenth of a window old, so a burst of requests does not shrink the window to nothing; since
    /// the start when there is none), then keeps `now` for later requests. Snapshots older than
    /// [`KEPT`] are dropped, but the newest is always kept.
    pub fn figures(&mut self, now: &MetricsSnapshot, window: Duration) -> Figures {
        let age = |s: &MetricsSnapshot| now.uptime.saturating_sub(s.uptime);
        let base = self
            .kept
            .iter()
            .filter(|s| s.uptime <= now.uptime && age(s) >= window / 10)
            .min_by_key(|s| age(s).abs_diff(window));
        let figures = Figures::between(base, now);
        // A restarted topology (an earlier uptime) starts over.
        if self.kept.back().is_some_and(|s| s.uptime > now.uptime) {
            self.kept.clear();
        }
        if self.kept.back().is_none_or(|s| s.uptime < now.uptime) {
            self.kept.push_back(now.clone());
        }
        while self.kept.len() > 1 && self.kept.front().is_some_and(|s| age(s) > KEPT) {
            self.kept.pop_front();
        }
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo_runtime::{EdgeSnapshot, LATENCY_BOUNDS_US, TaskId};

    fn d(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// A task with `executed` tuples (emitted, acked and, twice over, transferred alike), busy
    /// `busy` s, waiting `busy / 2` s for full queues, `queue` of 100 queued, one failure.
    fn task(task: u32, executed: u64, busy: f64, queue: usize) -> TaskSnapshot {
        TaskSnapshot {
            task: TaskId(task),
            emitted: executed,
            transferred: 2 * executed,
            executed,
            acked: executed,
            failed: 1,
            timed_out: 0,
            errors: 0,
            restarts: 0,
            pending: 0,
            busy: d(busy),
            busy_fraction: 0.0,
            backpressure: d(busy / 2.0),
            queue_len: queue,
            queue_capacity: 100,
            execute_latency: LatencySummary::default(),
            complete_latency: LatencySummary::default(),
        }
    }

    /// Latencies: `count` of them summing to `sum_us`, with cumulative counts `buckets` at the
    /// snapshot's first bounds (and the last of them at every later bound).
    fn latencies(count: u64, sum_us: u64, buckets: &[u64]) -> LatencySummary {
        let mut l = LatencySummary {
            count,
            sum_us,
            ..LatencySummary::default()
        };
        let last = buckets.last().copied().unwrap_or(0);
        for (i, b) in l.buckets.iter_mut().enumerate() {
            *b = buckets.get(i).copied().unwrap_or(last);
        }
        l
    }

    fn component(id: &str, role: Option<Role>, tasks: Vec<TaskSnapshot>) -> ComponentSnapshot {
        ComponentSnapshot {
            id: id.into(),
            role,
            tasks,
        }
    }

    fn snapshot(secs: f64, components: Vec<ComponentSnapshot>) -> MetricsSnapshot {
        MetricsSnapshot {
            uptime: d(secs),
            components,
            edges: Vec::new(),
            latency_bounds_us: &LATENCY_BOUNDS_US,
            checkpoints: None,
        }
    }

    /// A generator `gen` and a bolt `split` of two tasks: (executed, busy s, queued) each.
    fn word_split(secs: u64, split: [(u64, u64, usize); 2]) -> MetricsSnapshot {
        snapshot(
            secs as f64,
            vec![
                component(
                    "gen",
                    Some(Role::Spout),
                    vec![TaskSnapshot {
                        queue_capacity: 0,
                        ..task(0, secs * 100, secs as f64 / 10.0, 0)
                    }],
                ),
                component(
                    "split",
                    Some(Role::Bolt),
                    split
                        .iter()
                        .enumerate()
                        .map(|(i, &(n, busy_ms, q))| task(1 + i as u32, n, busy_ms as f64 / 1e3, q))
                        .collect(),
                ),
            ],
        )
    }

    #[test]
    fn rates_and_capacity_come_from_the_deltas_of_the_counters() {
        let before = word_split(10, [(1000, 1000, 0), (1000, 2000, 0)]);
        let now = word_split(12, [(1500, 2800, 10), (1300, 2200, 70)]);
        let f = Figures::between(Some(&before), &now);
        assert_eq!((f.window_s, f.since_start), (2.0, false));
        assert_eq!(f.components.len(), 2);
        let spout = &f.components[0];
        assert_eq!((spout.role, spout.tasks), (Some(Role::Spout), 1));
        assert_eq!(spout.rate, 100.0, "200 emitted over 2 s");
        assert_eq!(spout.queue_fill, None, "a spout has no input queue");
        assert_eq!(spout.p99_us, None, "no tree completed");
        let split = &f.components[1];
        assert_eq!(split.rate, 400.0, "(500 + 300) executed over 2 s");
        assert_eq!(split.transferred_rate, 800.0);
        assert_eq!(split.acked_rate, 400.0);
        assert_eq!(split.failed, 2);
        assert_eq!(split.capacity, 0.9, "task 1 was busy 1.8 s of 2 s");
        assert_eq!(split.backpressure, 0.45, "and waited half of that");
        assert_eq!(
            split.queue_fill,
            Some(0.7),
            "the fullest task's queue: 70 of 100"
        );
        assert_eq!(f.bottleneck.as_ref().map(|b| b.id.as_str()), Some("split"));
        assert_eq!(
            f.bottleneck.map(|b| b.why),
            Some("capacity 0.90: busy 90% of the last 2 s".to_string())
        );
        // Without an earlier snapshot (or with one of another run), the figures are since start.
        let since_start = Figures::between(None, &now);
        assert!(since_start.since_start);
        assert_eq!(since_start.components[1].rate, 2800.0 / 12.0);
        assert_eq!(
            Figures::between(Some(&word_split(99, [(0, 0, 0); 2])), &now),
            since_start
        );
    }

    /// A snapshot of one bolt `x` whose latency buckets end at 100, 1000 and 10000 µs.
    fn bolt_x(secs: f64, tasks: Vec<TaskSnapshot>) -> MetricsSnapshot {
        MetricsSnapshot {
            latency_bounds_us: &[100, 1000, 10_000],
            ..snapshot(secs, vec![component("x", Some(Role::Bolt), tasks)])
        }
    }

    fn with_latency(mut t: TaskSnapshot, count: u64, sum_us: u64, buckets: &[u64]) -> TaskSnapshot {
        t.execute_latency = latencies(count, sum_us, buckets);
        t
    }

    #[test]
    fn windowed_figures_of_a_bolt_with_two_tasks() {
        let before = bolt_x(
            10.0,
            vec![
                with_latency(task(1, 100, 1.0, 0), 10, 10 * 100, &[5, 10, 10]),
                with_latency(task(2, 100, 1.0, 0), 0, 0, &[0, 0, 0]),
            ],
        );
        let now = bolt_x(
            12.0,
            vec![
                with_latency(task(1, 300, 2.5, 30), 60, 60 * 280, &[10, 50, 60]),
                with_latency(task(2, 200, 1.2, 80), 40, 40 * 500, &[0, 20, 40]),
            ],
        );
        let x = &Figures::between(Some(&before), &now).components[0];
        // Executed (300 + 200) - (100 + 100) in 2 s; the busiest task was busy 1.5 of the 2 s
        // and waited 0.75; the fullest queue holds 80 of 100.
        assert_eq!(x.rate, 150.0);
        assert_eq!(x.capacity, 0.75);
        assert_eq!(x.backpressure, 0.375);
        assert_eq!(x.queue_fill, Some(0.8));
        // Bucket deltas [5, 40, 50] + [0, 20, 40] = [5, 60, 90] of 90 latencies, interpolated
        // inside the bucket: the median (rank 45) is 40/55 of the way from 100 to 1000 µs,
        // 754.5 -> 755; the 99th percentile (rank 89.1) 29.1/30 of the way from 1000 to
        // 10000 µs, 9730.
        assert_eq!(x.latency_count, 90);
        assert_eq!(x.p50_us, Some(755));
        assert_eq!(x.p99_us, Some(9730));
        // The mean of the window: (60 * 280 - 10 * 100 + 40 * 500) / 90 µs.
        assert_eq!(x.mean_us, Some(35800.0 / 90.0));
    }

    #[test]
    fn p99_comes_from_the_buckets_of_the_interval() {
        // Bounds 10, 100, 1000 µs. Before: everything at most 10 µs. In the interval: task 1
        // adds 400 at most 10 µs and 100 in (100, 1000]; task 2 adds 300 in (10, 100].
        let before = MetricsSnapshot {
            latency_bounds_us: &[10, 100, 1000],
            ..word_split(10, [(1000, 1000, 0), (1000, 2000, 0)])
        };
        let mut before = before;
        let mut now = MetricsSnapshot {
            latency_bounds_us: &[10, 100, 1000],
            ..word_split(12, [(1500, 2800, 10), (1300, 2200, 70)])
        };
        let set = |s: &mut MetricsSnapshot, task: usize, count: u64, buckets: &[u64]| {
            s.components[1].tasks[task].execute_latency = latencies(count, 0, buckets);
        };
        set(&mut before, 0, 1000, &[1000, 1000, 1000]);
        set(&mut before, 1, 1000, &[1000, 1000, 1000]);
        set(&mut now, 0, 1500, &[1400, 1400, 1500]);
        set(&mut now, 1, 1300, &[1000, 1300, 1300]);
        // 800 in the interval: rank 792 falls among the 100 in (100, 1000] (700 below):
        // 100 + 900 * 92 / 100.
        assert_eq!(
            Figures::between(Some(&before), &now).components[1].p99_us,
            Some(928)
        );
        // Nothing executed in the interval: no p99.
        assert_eq!(
            Figures::between(Some(&now), &now).components[1].p99_us,
            None
        );
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let bounds = [10, 20, 50];
        assert_eq!(quantile(&bounds, &[0, 0, 0], 0, 0.99), None);
        assert_eq!(quantile(&bounds, &[100, 100, 100], 100, 0.99), Some(10));
        assert_eq!(quantile(&bounds, &[0, 100, 100], 100, 0.5), Some(15));
        assert_eq!(quantile(&bounds, &[50, 50, 100], 100, 0.99), Some(49));
        assert_eq!(
            quantile(&bounds, &[0, 0, 10], 100, 0.99),
            Some(50),
            "past the last bound"
        );
    }

    /// A component's figures with only what the bottleneck rule reads.
    fn stat(id: &str, capacity: f64, fill: Option<f64>, backpressure: f64) -> ComponentFigures {
        ComponentFigures {
            id: id.into(),
            role: Some(Role::Bolt),
            tasks: 1,
            capacity,
            backpressure,
            queue_fill: fill,
            ..ComponentFigures::default()
        }
    }

    fn named(stats: &[ComponentFigures]) -> Option<String> {
        bottleneck(stats, 5.0, false).map(|b| b.id)
    }

    #[test]
    fn the_bottleneck_is_the_busiest_else_the_fullest_else_none() {
        let some = |s: &str| Some(s.to_string());
        // The busiest from 0.7 on, whatever the queues.
        assert_eq!(
            named(&[
                stat("p", 0.9, Some(0.9), 0.0),
                stat("q", 0.95, Some(0.1), 0.0)
            ]),
            some("q")
        );
        assert_eq!(
            named(&[
                stat("p", 0.2, Some(0.9), 0.0),
                stat("q", 0.75, Some(0.1), 0.0)
            ]),
            some("q")
        );
        // Else the fullest queue over half full.
        assert_eq!(
            named(&[
                stat("p", 0.5, Some(0.6), 0.0),
                stat("q", 0.65, Some(0.2), 0.0)
            ]),
            some("p")
        );
        assert_eq!(
            named(&[
                stat("p", 0.2, Some(0.6), 0.0),
                stat("q", 0.5, Some(0.1), 0.0)
            ]),
            some("p")
        );
        // Else none.
        assert_eq!(
            named(&[
                stat("p", 0.69, Some(0.5), 0.0),
                stat("q", 0.1, Some(0.1), 0.0)
            ]),
            None
        );
        assert_eq!(
            named(&[stat("p", 0.2, Some(0.5), 0.0), stat("q", 0.5, None, 0.0)]),
            None
        );
        assert_eq!(named(&[]), None);
        // Spouts are never named by capacity.
        let spout = ComponentFigures {
            role: Some(Role::Spout),
            ..stat("s", 0.95, None, 0.0)
        };
        assert_eq!(
            named(&[spout.clone(), stat("b", 0.8, Some(0.1), 0.0)]),
            some("b")
        );
        assert_eq!(named(&[spout, stat("b", 0.1, None, 0.0)]), None);
        // The reasons.
        let why =
            |stats: &[ComponentFigures]| bottleneck(stats, 1.5, false).map(|b| (b.cause, b.why));
        assert_eq!(
            why(&[stat("p", 0.93, None, 0.0)]),
            Some((
                Cause::Capacity,
                "capacity 0.93: busy 93% of the last 1.5 s".into()
            ))
        );
        assert_eq!(
            why(&[stat("p", 0.1, Some(0.62), 0.0)]),
            Some((Cause::Queue, "receive queue 62% full".into()))
        );
    }

    #[test]
    fn capacities_within_a_hundredth_tie_and_the_one_waiting_least_wins() {
        let some = |s: &str| Some(s.to_string());
        // Both saturated: p waits 90% of its time for q's queue, so q holds the topology back.
        assert_eq!(
            named(&[
                stat("p", 1.0, Some(0.1), 0.9),
                stat("q", 0.995, Some(0.6), 0.0),
                stat("r", 0.2, Some(0.1), 0.0),
            ]),
            some("q")
        );
        // Out of the hundredth, the busiest wins however much it waits.
        assert_eq!(
            named(&[stat("p", 1.0, None, 0.9), stat("q", 0.98, None, 0.0)]),
            some("p")
        );
        // A full tie, capacity and waiting alike: the first in declaration order, both ways
        // round (so the rule does not depend on how the list is scanned).
        assert_eq!(
            named(&[stat("p", 0.8, None, 0.1), stat("q", 0.8, None, 0.1)]),
            some("p")
        );
        assert_eq!(
            named(&[stat("q", 0.8, None, 0.1), stat("p", 0.8, None, 0.1)]),
            some("q")
        );
        // Equally full queues: the first.
        assert_eq!(
            named(&[
                stat("p", 0.1, Some(0.6), 0.0),
                stat("q", 0.1, Some(0.6), 0.0)
            ]),
            some("p")
        );
        // Within the hundredth but under 0.7 itself: not a candidate.
        assert_eq!(
            named(&[stat("p", 0.705, None, 0.5), stat("q", 0.699, None, 0.0)]),
            some("p")
        );
    }

    #[test]
    fn edges_rates_are_exact_deltas() {
        let edge = |to: &str, transferred| EdgeSnapshot {
            from: "x".into(),
            stream: "default".into(),
            to: to.into(),
            transferred,
        };
        let mut before = snapshot(10.0, Vec::new());
        let mut now = snapshot(12.0, Vec::new());
        before.edges = vec![edge("z", 100), edge("y", 0)];
        now.edges = vec![edge("z", 500), edge("y", 0)];
        let rates: Vec<f64> = Figures::between(Some(&before), &now)
            .edges
            .iter()
            .map(|e| e.rate)
            .collect();
        // 400 tuples in 2 s on x -> z, none on x -> y.
        assert_eq!(rates, [200.0, 0.0]);
    }

    #[test]
    fn the_window_starts_at_the_kept_snapshot_nearest_its_length_ago() {
        let at = |secs: f64| snapshot(secs, Vec::new());
        let mut h = History::default();
        let f = h.figures(&at(1.0), Duration::from_secs(5));
        assert!(f.since_start, "nothing kept yet");
        for s in [2.0, 3.0, 4.0, 5.0, 6.0] {
            h.figures(&at(s), Duration::from_secs(5));
        }
        let f = h.figures(&at(7.1), Duration::from_secs(5));
        assert!((f.window_s - 5.1).abs() < 1e-9, "from 2 s: {}", f.window_s);
        let f = h.figures(&at(8.0), Duration::from_secs(1));
        assert!(
            (f.window_s - 0.9).abs() < 1e-9,
            "from 7.1 s: {}",
            f.window_s
        );
        // A young topology: the window is what there is.
        let mut fresh = History::default();
        fresh.figures(&at(1.0), Duration::from_secs(5));
        let f = fresh.figures(&at(2.0), Duration::from_secs(5));
        assert!((f.window_s - 1.0).abs() < 1e-9, "from 1 s: {}", f.window_s);
        // Nothing at least a tenth of a window old: since the start.
        let mut fresh = History::default();
        fresh.figures(&at(1.0), Duration::from_secs(1));
        assert!(fresh.figures(&at(1.05), Duration::from_secs(1)).since_start);
        // Snapshots older than KEPT go, the newest stays; a restart starts over.
        h.figures(&at(100.0), Duration::from_secs(5));
        assert_eq!(h.kept.len(), 1);
        h.figures(&at(0.5), Duration::from_secs(5));
        assert_eq!(
            h.kept.iter().map(|s| s.uptime).collect::<Vec<_>>(),
            [d(0.5)]
        );
    }
}
