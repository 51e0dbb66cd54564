//! The HTTP endpoint of a running topology (`topo run --http 127.0.0.1:8080`; off by default):
//! exact figures, read from the tasks' own counters at each request, never sampled.
//!
//! ```text
//!  tasks ──counters, histograms──► TopologyHandle::metrics() ◄── each request
//!                                        │
//!   GET /metrics        Prometheus/OpenMetrics text, one series per component and task,
//!                       latency histograms, and the process's own figures (CPU, memory, fds)
//!   GET /api/metrics    the same snapshot as JSON (MetricsSnapshot, with per-edge counts and
//!                       the recent warnings and errors), and `figures`: rates, capacity, queue
//!                       fill, latency quantiles and the bottleneck over a window (`?window=5s`,
//!                       the default; see crate::figures), what the dashboard and `topo top` show
//!   GET /api/topology   components (kind, parallelism) and edges (stream, grouping) as JSON
//!   GET /api/tap        sampled tuples out of or into a component, streamed as JSON lines
//!                       (`topo tap`; see crate::tap)
//!   GET /health         200 "ok"
//!   GET /               the live dashboard (see crate::dashboard)
//! ```
//!
//! With a token (`topo run --http-token`, `TOPO_HTTP_TOKEN` or `--http-token-file`) every route
//! but `/health` and the dashboard's own files (which hold no data: the page sends the token with
//! its requests) answers `401` without `Authorization: Bearer <token>`. With `--no-tap`
//! `/api/tap` answers `403`: no copy of the data itself leaves the process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use topo_runtime::{
    ComponentSnapshot, DEFAULT_STREAM, Grouping, LATENCY_BOUNDS_US, LatencySummary, MetricsReader,
    MetricsSnapshot, Role, TaskSnapshot, Topology,
};

use crate::figures::{DEFAULT_WINDOW, Figures, History, KEPT};
use crate::logs::{ErrorEvent, RecentErrors};

/// The shape of a topology, as `/api/topology` serves it.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyInfo {
    /// The topology's name.
    pub name: String,
    /// Spouts and bolts in declaration order.
    pub components: Vec<ComponentInfo>,
    /// One edge per subscription.
    pub edges: Vec<EdgeInfo>,
}

/// A component of [`TopologyInfo`].
#[derive(Clone, Debug, Serialize)]
pub struct ComponentInfo {
    /// The component id.
    pub id: String,
    /// Spout or bolt (`kind` in JSON).
    #[serde(rename = "kind")]
    pub role: Role,
    /// Its tasks.
    pub parallelism: usize,
}

/// A subscription of [`TopologyInfo`]: tuples of `stream` of `from` go to `to` by `grouping`.
#[derive(Clone, Debug, Serialize)]
pub struct EdgeInfo {
    /// The upstream component.
    pub from: String,
    /// The subscribing bolt.
    pub to: String,
    /// The upstream stream.
    pub stream: String,
    /// The grouping's name (`shuffle`, `fields`, ...).
    pub grouping: &'static str,
    /// The grouping's fields (fields and partial-key groupings).
    pub fields: Vec<String>,
}

impl TopologyInfo {
    /// The shape of `topology`.
    pub fn of(topology: &Topology) -> TopologyInfo {
        let mut components = Vec::new();
        let mut edges = Vec::new();
        for id in topology.component_ids() {
            let Some(c) = topology.component(id) else {
                continue;
            };
            components.push(ComponentInfo {
                id: id.to_string(),
                role: c.factory.role(),
                parallelism: c.parallelism,
            });
            for input in &c.inputs {
                let fields = match &input.grouping {
                    Grouping::Fields(f) | Grouping::PartialKey(f) => {
                        f.iter().map(ToString::to_string).collect()
                    }
                    _ => Vec::new(),
                };
                edges.push(EdgeInfo {
                    from: input.component.to_string(),
                    to: id.to_string(),
                    stream: if input.stream.is_empty() {
                        DEFAULT_STREAM.to_string()
                    } else {
                        input.stream.to_string()
                    },
                    grouping: input.grouping.name(),
                    fields,
                });
            }
        }
        TopologyInfo {
            name: topology.name().to_string(),
            components,
            edges,
        }
    }
}

/// The body of `/api/metrics`: the snapshot's fields, and the recent warnings and errors.
#[derive(Clone, Debug, Serialize)]
pub struct MetricsBody {
    /// Every task's figures, every edge's count.
    #[serde(flatten)]
    pub snapshot: MetricsSnapshot,
    /// The last warnings and errors logged, oldest first, with their component and task.
    pub errors: Vec<ErrorEvent>,
    /// What the dashboard and `topo top` show, over the window the request asked for.
    pub figures: Figures,
}

/// The query of `/api/metrics`: the window of its `figures` (`?window=500ms`; 5 s without one).
#[derive(Debug, Deserialize)]
struct MetricsQuery {
    window: Option<String>,
}

/// The window a query asks for, from 1 ms to [`KEPT`].
fn window(q: &MetricsQuery) -> Result<Duration, String> {
    let Some(text) = &q.window else {
        return Ok(DEFAULT_WINDOW);
    };
    match humantime::parse_duration(text) {
        Ok(d) if d >= Duration::from_millis(1) && d <= KEPT => Ok(d),
        Ok(_) => Err(format!(
            "window `{text}`: must be from 1ms to {}",
            humantime::format_duration(KEPT)
        )),
        Err(e) => Err(format!("window `{text}`: {e} (such as 5s or 500ms)")),
    }
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    handle: MetricsReader,
    info: Arc<TopologyInfo>,
    registry: Arc<Registry>,
    errors: RecentErrors,
    /// The snapshots of earlier `/api/metrics` requests: where their windows start.
    history: Arc<Mutex<History>>,
}

/// Who may read the endpoint: the bearer token its data routes ask for (none: anyone who can
/// reach the address), and whether `/api/tap` serves sampled tuples.
#[derive(Clone, Debug)]
pub struct Access {
    /// The token every route but `/health` and the dashboard's files asks for.
    pub token: Option<Arc<str>>,
    /// Whether `/api/tap` is served.
    pub tap: bool,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            token: None,
            tap: true,
        }
    }
}

/// What a request without the right token gets.
const NEEDS_TOKEN: &str = "this endpoint needs its token: send `Authorization: Bearer <token>` (topo tap and topo top: --token or TOPO_HTTP_TOKEN; the dashboard: open it as http://<address>/#token=<token>)";

/// Refuses a request without `Authorization: Bearer <token>` (compared in constant time).
async fn require_token(
    State(token): State<Arc<str>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use subtle::ConstantTimeEq;
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            "Bearer realm=\"topo\"",
        )],
        Json(serde_json::json!({ "error": NEEDS_TOKEN })),
    )
        .into_response()
}

/// The routes above, reading the figures from `handle` (a topology whose shape is `info`) and
/// the recent warnings and errors from `errors`, open to whom `access` says.
pub fn router(
    handle: MetricsReader,
    info: TopologyInfo,
    errors: RecentErrors,
    access: Access,
) -> axum::Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(TaskCollector {
        handle: handle.clone(),
    }));
    crate::process::register(&mut registry);
    let state = AppState {
        handle,
        info: Arc::new(info),
        registry: Arc::new(registry),
        errors,
        history: Arc::default(),
    };
    let tap = if access.tap {
        crate::tap::route(state.handle.clone())
    } else {
        get(|| async {
            (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({
                    "error": "the tap is turned off on this endpoint (topo run --no-tap)"
                })),
            )
        })
    };
    let mut data = axum::Router::new()
        .route("/metrics", get(metrics_text))
        .route("/api/metrics", get(metrics_json))
        .route("/api/topology", get(topology_json))
        .route("/api/tap", tap);
    if let Some(token) = access.token {
        data = data.layer(axum::middleware::from_fn_with_state(token, require_token));
    }
    data.route("/health", get(|| async { "ok" }))
        .merge(crate::dashboard::routes())
        .with_state(state)
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {e}"),
        );
    }
    (
        axum::http::StatusCode::OK,
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn metrics_json(
    State(s): State<AppState>,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<MetricsBody>, (StatusCode, String)> {
    let window = window(&q).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let snapshot = s.handle.metrics();
    // A poisoned lock only means a request panicked while keeping a snapshot; the rest is intact.
    let figures = s
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .figures(&snapshot, window);
    Ok(Json(MetricsBody {
        snapshot,
        errors: s.errors.events(),
        figures,
    }))
}

async fn topology_json(State(s): State<AppState>) -> Json<TopologyInfo> {
    Json((*s.info).clone())
}

/// Encodes a snapshot of every task at each scrape.
#[derive(Debug)]
struct TaskCollector {
    handle: MetricsReader,
}

/// A family of series, one per task: name, help, and the task's value.
type Family<V> = (&'static str, &'static str, fn(&TaskSnapshot) -> V);

/// Counts: Prometheus counters.
const COUNTS: &[Family<u64>] = &[
    (
        "topo_emitted",
        "Tuples emitted (an emit counts once).",
        |t| t.emitted,
    ),
    (
        "topo_transferred",
        "Tuples sent to tasks (an emit to three tasks counts three).",
        |t| t.transferred,
    ),
    ("topo_executed", "Input tuples executed (bolts).", |t| {
        t.executed
    }),
    (
        "topo_acked",
        "Bolts: inputs acked. Spouts: trees completed.",
        |t| t.acked,
    ),
    (
        "topo_failed",
        "Bolts: inputs failed. Spouts: trees failed.",
        |t| t.failed,
    ),
    (
        "topo_timed_out",
        "Spouts: trees failed by the message timeout.",
        |t| t.timed_out,
    ),
    (
        "topo_errors",
        "Errors returned or panics raised by the component.",
        |t| t.errors,
    ),
    (
        "topo_restarts",
        "Times the component was re-created.",
        |t| t.restarts,
    ),
];

/// Times spent: Prometheus counters, in seconds.
const TIMES: &[Family<f64>] = &[
    (
        "topo_busy_seconds",
        "Time spent in the component's own code.",
        |t| t.busy.as_secs_f64(),
    ),
    (
        "topo_backpressure_seconds",
        "Time spent waiting for a full downstream queue.",
        |t| t.backpressure.as_secs_f64(),
    ),
];

/// Levels: Prometheus gauges.
const LEVELS: &[Family<f64>] = &[
    (
        "topo_pending",
        "Spouts: trees emitted and not yet acked or failed.",
        |t| t.pending as f64,
    ),
    (
        "topo_capacity",
        "Busy time as a share of the uptime: near 1, the task is the bottleneck.",
        |t| t.busy_fraction,
    ),
    (
        "topo_queue_length",
        "Tuples waiting in the task's receive queue.",
        |t| t.queue_len as f64,
    ),
    (
        "topo_queue_capacity",
        "Capacity of the task's receive queue, in tuples.",
        |t| t.queue_capacity as f64,
    ),
];

/// A summary's cumulative counts as the per-bucket counts the encoder sums up, bounds in seconds,
/// ending with the `+Inf` bucket.
fn histogram_buckets(l: &LatencySummary) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(LATENCY_BOUNDS_US.len() + 1);
    let mut below = 0;
    for (&bound, &cumulative) in LATENCY_BOUNDS_US.iter().zip(&l.buckets) {
        out.push((bound as f64 / 1e6, cumulative - below));
        below = cumulative;
    }
    out.push((f64::INFINITY, l.count - below));
    out
}

/// The checkpoint series: counts of this run, and figures of the newest completed checkpoint.
fn checkpoint_series(
    encoder: &mut DescriptorEncoder,
    cp: &topo_runtime::CheckpointSnapshot,
) -> Result<(), std::fmt::Error> {
    for (name, help, n) in [
        (
            "topo_checkpoints_completed",
            "Checkpoints completed in this run.",
            cp.completed,
        ),
        (
            "topo_checkpoints_failed",
            "Checkpoints that failed in this run (declined, a write failed, timed out).",
            cp.failed,
        ),
    ] {
        encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    let gauges: [(&str, &str, Option<f64>); 6] = [
        (
            "topo_checkpoint_last_id",
            "The id of the newest completed checkpoint.",
            cp.last_id.map(|i| i as f64),
        ),
        (
            "topo_checkpoint_last_duration_seconds",
            "The newest completed checkpoint: from its start to its manifest.",
            cp.last_id.map(|_| cp.last_duration.as_secs_f64()),
        ),
        (
            "topo_checkpoint_last_size_bytes",
            "Bytes written for the newest completed checkpoint.",
            cp.last_id.map(|_| cp.last_bytes as f64),
        ),
        (
            "topo_checkpoint_last_alignment_seconds",
            "The newest completed checkpoint: its longest barrier alignment over the tasks.",
            cp.last_id.map(|_| cp.last_alignment.as_secs_f64()),
        ),
        (
            "topo_checkpoint_last_pause_seconds",
            "The newest completed checkpoint: its longest processing pause over the tasks.",
            cp.last_id.map(|_| cp.last_pause.as_secs_f64()),
        ),
        (
            "topo_checkpoint_since_last_seconds",
            "Time since the newest checkpoint completed.",
            cp.since_last.map(|d| d.as_secs_f64()),
        ),
    ];
    for (name, help, v) in gauges {
        if let Some(v) = v {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&v)?;
        }
    }
    Ok(())
}

/// The labels of a task's series.
fn labels(c: &ComponentSnapshot, t: &TaskSnapshot) -> Vec<(&'static str, String)> {
    vec![
        ("component", c.id.to_string()),
        ("kind", c.kind().to_string()),
        ("task", t.task.to_string()),
    ]
}

/// Encodes `families` as counters, one series per task.
fn counters<V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    families: &[Family<V>],
    snap: &MetricsSnapshot,
) -> Result<(), std::fmt::Error> {
    for &(name, help, value) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for c in &snap.components {
            for t in &c.tasks {
                family
                    .encode_family(&labels(c, t))?
                    .encode_counter::<NoLabelSet, _, u64>(&value(t), None)?;
            }
        }
    }
    Ok(())
}

impl Collector for TaskCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.handle.metrics();
        let tasks = || {
            snap.components
                .iter()
                .flat_map(|c| c.tasks.iter().map(move |t| (c, t)))
        };
        counters(&mut encoder, COUNTS, &snap)?;
        counters(&mut encoder, TIMES, &snap)?;
        for &(name, help, value) in LEVELS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (c, t) in tasks() {
                family
                    .encode_family(&labels(c, t))?
                    .encode_gauge(&value(t))?;
            }
        }
        // Latencies as histograms with the buckets of LATENCY_BOUNDS_US (recorded in microseconds
        // to 3 significant digits).
        for (name, help, pick) in [
            (
                "topo_execute_latency_seconds",
                "Bolts: time per executed tuple.",
                (|t| t.execute_latency) as fn(&TaskSnapshot) -> LatencySummary,
            ),
            (
                "topo_complete_latency_seconds",
                "Spouts: time from emit to tree completion.",
                |t| t.complete_latency,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (c, t) in tasks() {
                let l = pick(t);
                if l.count == 0 {
                    continue;
                }
                family
                    .encode_family(&labels(c, t))?
                    .encode_histogram::<NoLabelSet>(
                        l.sum_us as f64 / 1e6,
                        l.count,
                        &histogram_buckets(&l),
                        None,
                    )?;
            }
        }
        let mut up = encoder.encode_descriptor(
            "topo_uptime_seconds",
            "Time since the topology started.",
            None,
            MetricType::Gauge,
        )?;
        up.encode_gauge(&snap.uptime.as_secs_f64())?;
        if let Some(cp) = &snap.checkpoints {
            checkpoint_series(&mut encoder, cp)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_a_duration_up_to_a_minute_five_seconds_without_one() {
        let q = |w: Option<&str>| MetricsQuery {
            window: w.map(str::to_string),
        };
        assert_eq!(window(&q(None)), Ok(Duration::from_secs(5)));
        assert_eq!(window(&q(Some("500ms"))), Ok(Duration::from_millis(500)));
        assert_eq!(window(&q(Some("1m"))), Ok(Duration::from_secs(60)));
        assert!(window(&q(Some("2m"))).is_err_and(|e| e.contains("from 1ms to 1m")));
        assert!(window(&q(Some("0s"))).is_err());
        assert!(window(&q(Some("soon"))).is_err_and(|e| e.starts_with("window `soon`")));
    }
}
