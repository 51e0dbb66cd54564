//! `topo top URL`: a live table of every component of a running topology (`topo run --http`), in
//! the terminal.
//!
//! ```text
//!  GET /api/topology (once: name) ─┐
//!  GET /api/metrics every second ──┴─► deltas of the exact cumulative counters ─► rows ─► table
//!                                                                   bottleneck ◄─┘
//!  keys: q, Esc or Ctrl-C quit and give the terminal back as it was
//! ```
//!
//! Each row: the component, its kind and tasks; tuples per second (spouts: emitted; bolts and the
//! acker: executed) and acked per second over the last interval; failed and timed-out trees since
//! the start; the p99 latency (spouts: emit to tree completion; bolts: execute) over the last
//! interval, from the deltas of the latency buckets (interpolated inside the bucket, as
//! Prometheus' `histogram_quantile` does; since the start from an endpoint without buckets);
//! how full its receive queues are now; and its *capacity*, the largest share of the last
//! interval one of its tasks spent in the component's own code. The **bottleneck** is the bolt
//! (or acker) with the highest capacity when that is at least 0.7, or else the one whose queues
//! are fullest when they are over half full; there may be none. Spouts are never marked: a
//! spout's busy time includes what `next_tuple` awaits (a paced generator sleeping, a consumer
//! waiting for its broker), so a high figure there says little about the topology's flow.
//!
//! When standard output is not a terminal, or with `--once`, the table is printed once as plain
//! text, over one interval:
//!
//! ```text
//! topology word-count, uptime 4s, at 127.0.0.1:8080 (figures over the last 1.0s)
//! COMPONENT  KIND   TASKS  TUPLES/S  ACKED/S  FAILED  TIMED OUT  P99      QUEUE  CAPACITY
//! sentences  spout      1     98.5k    99.3k       0          0  18.6 ms      -      0.10
//! split      bolt       2     98.5k    98.5k       0          0  28 µs       3%      0.42
//! count      bolt       2    633.1k   633.1k       0          0  6 µs        0%      0.35
//! __acker    acker      1    395.6k    99.5k       0          0  -           6%      0.00
//! ```

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use ratatui::Frame;
use ratatui::crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::status::short;
use crate::tap::{chain, endpoint, error_message};

/// What `topo top` was asked.
#[derive(Debug, Clone)]
pub struct TopArgs {
    /// The endpoint of `topo run --http`.
    pub url: String,
    /// Print the table once as plain text, even on a terminal.
    pub once: bool,
    /// The refresh interval (and, once, the interval the figures are taken over).
    pub interval: Duration,
}

/// The parts of `/api/metrics` the table uses (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    /// Time since the topology started.
    pub uptime: Duration,
    /// Spouts and bolts in declaration order, then the acker.
    pub components: Vec<ComponentFigures>,
    /// The upper bounds of the latency buckets, µs (empty from an endpoint without buckets).
    #[serde(default)]
    pub latency_bounds_us: Vec<u64>,
}

/// One component of a [`Snapshot`].
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentFigures {
    /// The component id.
    pub id: String,
    /// `spout`, `bolt` or `acker`.
    pub kind: String,
    /// One entry per task.
    pub tasks: Vec<TaskFigures>,
}

/// One task of a [`ComponentFigures`]: cumulative counters and the queue now.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskFigures {
    /// The task id.
    pub task: u32,
    /// Tuples emitted.
    pub emitted: u64,
    /// Tuples executed.
    pub executed: u64,
    /// Inputs acked (spouts: trees completed).
    pub acked: u64,
    /// Inputs failed (spouts: trees failed).
    pub failed: u64,
    /// Spouts: trees timed out.
    pub timed_out: u64,
    /// Time in the component's own code.
    pub busy: Duration,
    /// Tuples in the receive queue.
    pub queue_len: u64,
    /// The receive queue's capacity.
    pub queue_capacity: u64,
    /// Bolts: time per executed tuple.
    pub execute_latency: Latency,
    /// Spouts: time from emit to tree completion.
    pub complete_latency: Latency,
}

/// The parts of a latency summary the table uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Latency {
    /// How many latencies were recorded.
    pub count: u64,
    /// 99th percentile since the start, µs.
    pub p99_us: u64,
    /// Cumulative counts at [`Snapshot::latency_bounds_us`] (empty from an endpoint without
    /// buckets).
    #[serde(default)]
    pub buckets: Vec<u64>,
}

/// The parts of `/api/topology` the view uses.
#[derive(Debug, Clone, Deserialize)]
struct Shape {
    name: String,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The component id.
    pub id: String,
    /// `spout`, `bolt` or `acker`.
    pub kind: String,
    /// Its tasks.
    pub tasks: usize,
    /// Spouts: emitted per second; bolts and ackers: executed per second.
    pub rate: f64,
    /// Acked per second.
    pub acked_rate: f64,
    /// Failed since the start.
    pub failed: u64,
    /// Timed out since the start.
    pub timed_out: u64,
    /// p99 latency over the interval (spouts: complete; others: execute), if any was recorded;
    /// since the start when the endpoint gives no buckets.
    pub p99_us: Option<u64>,
    /// Queued tuples over queue capacity, now (not for spouts, which have no input queue).
    pub queue_fill: Option<f64>,
    /// The largest share of the interval one task spent busy, 0 to 1.
    pub capacity: f64,
}

/// The rows for the interval from `before` to `now`. A `before` from another run of the topology
/// (a later uptime) counts as no `before`: the figures are then since the start.
pub fn rows(before: Option<&Snapshot>, now: &Snapshot) -> Vec<Row> {
    let before = before.filter(|b| b.uptime <= now.uptime);
    let dt = now
        .uptime
        .saturating_sub(before.map_or(Duration::ZERO, |b| b.uptime))
        .as_secs_f64();
    let per_second = |n: u64| if dt > 0.0 { n as f64 / dt } else { 0.0 };
    now.components
        .iter()
        .map(|c| {
            let prev = before.and_then(|b| b.components.iter().find(|p| p.id == c.id));
            let prev_task =
                |t: &TaskFigures| prev.and_then(|p| p.tasks.iter().find(|x| x.task == t.task));
            let delta = |f: fn(&TaskFigures) -> u64| -> u64 {
                c.tasks
                    .iter()
                    .map(|t| f(t).saturating_sub(prev_task(t).map_or(0, f)))
                    .sum()
            };
            let spout = c.kind == "spout";
            let rate = per_second(if spout {
                delta(|t| t.emitted)
            } else {
                delta(|t| t.executed)
            });
            let capacity = c
                .tasks
                .iter()
                .map(|t| {
                    let busy = t
                        .busy
                        .saturating_sub(prev_task(t).map_or(Duration::ZERO, |p| p.busy));
                    if dt > 0.0 {
                        busy.as_secs_f64() / dt
                    } else {
                        0.0
                    }
                })
                .fold(0.0f64, f64::max)
                .clamp(0.0, 1.0);
            let latency = |t: &TaskFigures| -> Latency {
                if spout {
                    t.complete_latency.clone()
                } else {
                    t.execute_latency.clone()
                }
            };
            let bounds = &now.latency_bounds_us;
            let bucketed = !bounds.is_empty()
                && c.tasks
                    .iter()
                    .all(|t| latency(t).buckets.len() == bounds.len());
            let p99_us = if bucketed {
                // The interval's histogram: each task's buckets minus its earlier ones.
                let mut buckets = vec![0u64; bounds.len()];
                let mut count = 0u64;
                for t in &c.tasks {
                    let l = latency(t);
                    let earlier = prev_task(t)
                        .map(latency)
                        .filter(|p| p.buckets.len() == bounds.len());
                    count += l
                        .count
                        .saturating_sub(earlier.as_ref().map_or(0, |p| p.count));
                    for (i, b) in buckets.iter_mut().enumerate() {
                        let before = earlier.as_ref().map_or(0, |p| p.buckets[i]);
                        *b += l.buckets[i].saturating_sub(before);
                    }
                }
                quantile(bounds, &buckets, count, 0.99)
            } else {
                c.tasks
                    .iter()
                    .map(latency)
                    .filter(|l| l.count > 0)
                    .map(|l| l.p99_us)
                    .max()
            };
            let queued: u64 = c.tasks.iter().map(|t| t.queue_len).sum();
            let room: u64 = c.tasks.iter().map(|t| t.queue_capacity).sum();
            Row {
                id: c.id.clone(),
                kind: c.kind.clone(),
                tasks: c.tasks.len(),
                rate,
                acked_rate: per_second(delta(|t| t.acked)),
                failed: c.tasks.iter().map(|t| t.failed).sum(),
                timed_out: c.tasks.iter().map(|t| t.timed_out).sum(),
                p99_us,
                queue_fill: (!spout && room > 0).then(|| queued as f64 / room as f64),
                capacity,
            }
        })
        .collect()
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

/// The capacity from which the busiest component is the bottleneck.
const BUSY: f64 = 0.7;
/// The queue fill above which the fullest component is the bottleneck.
const FULL: f64 = 0.5;

/// The row of the bottleneck among the bolts and ackers: the highest capacity if at least 0.7,
/// else the fullest queues if over half full, else none.
pub fn bottleneck(rows: &[Row]) -> Option<usize> {
    let busiest = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind != "spout")
        .max_by(|a, b| a.1.capacity.total_cmp(&b.1.capacity))
        .filter(|(_, r)| r.capacity >= BUSY);
    let fullest = || {
        rows.iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.queue_fill?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, fill)| *fill > FULL)
    };
    busiest
        .map(|(i, _)| i)
        .or_else(|| fullest().map(|(i, _)| i))
}

/// `850 µs`, `3.2 ms`, `1.25 s`.
fn latency(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// `1h 02m`, `3m 07s`, `41s`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

const HEADER: [&str; 10] = [
    "COMPONENT",
    "KIND",
    "TASKS",
    "TUPLES/S",
    "ACKED/S",
    "FAILED",
    "TIMED OUT",
    "P99",
    "QUEUE",
    "CAPACITY",
];

/// The cells of a row, as text, in [`HEADER`]'s order.
fn cells(r: &Row) -> [String; 10] {
    [
        r.id.clone(),
        r.kind.clone(),
        r.tasks.to_string(),
        short(r.rate),
        short(r.acked_rate),
        r.failed.to_string(),
        r.timed_out.to_string(),
        r.p99_us.map_or_else(|| "-".to_string(), latency),
        r.queue_fill
            .map_or_else(|| "-".to_string(), |f| format!("{:.0}%", f * 100.0)),
        format!("{:.2}", r.capacity),
    ]
}

/// Columns whose text is aligned right (numbers).
fn right_aligned(column: usize) -> bool {
    !matches!(column, 0 | 1 | 7)
}

/// The table as plain text, the bottleneck marked `<- bottleneck`.
pub fn table_text(rows: &[Row]) -> String {
    let body: Vec<[String; 10]> = rows.iter().map(cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right_aligned(i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        parts.join("  ")
    };
    let mut out = line(&HEADER.map(String::from));
    out.push('\n');
    let marked = bottleneck(rows);
    for (i, r) in body.iter().enumerate() {
        let mut l = line(r);
        if marked == Some(i) {
            l.push_str("  <- bottleneck");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

/// The endpoint's two routes, with a client.
struct Endpoint {
    base: String,
    http: reqwest::Client,
    metrics: reqwest::Url,
    topology: reqwest::Url,
}

impl Endpoint {
    fn new(base: &str) -> Result<Endpoint, (String, u8)> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| (format!("cannot make an HTTP client: {}", chain(&e)), 1))?;
        Ok(Endpoint {
            base: base.to_string(),
            http,
            metrics: endpoint(base, "/api/metrics").map_err(|e| (e, 2))?,
            topology: endpoint(base, "/api/topology").map_err(|e| (e, 2))?,
        })
    }

    async fn get<T: DeserializeOwned>(&self, url: &reqwest::Url) -> Result<T, String> {
        let response = self.http.get(url.clone()).send().await.map_err(|e| {
            format!(
                "cannot reach {}: {} (is `topo run --http` serving there?)",
                self.base,
                chain(&e)
            )
        })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{url}: the answer broke off: {}", chain(&e)))?;
        if !status.is_success() {
            return Err(format!("{url}: {}", error_message(status, &body)));
        }
        serde_json::from_str(&body)
            .map_err(|e| format!("{url} did not answer with topo's figures: {e}"))
    }

    async fn snapshot(&self) -> Result<Snapshot, String> {
        self.get(&self.metrics).await
    }
}

/// `topo top`: the live table on a terminal; the table once as text otherwise or with `--once`.
pub fn run(args: TopArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let plain = args.once || !std::io::stdout().is_terminal();
    match rt.block_on(async {
        let ep = Endpoint::new(&args.url)?;
        let shape: Shape = ep.get(&ep.topology).await.map_err(|e| (e, 1))?;
        let first = ep.snapshot().await.map_err(|e| (e, 1))?;
        if plain {
            once(&ep, &shape, first, args.interval).await
        } else {
            live(&ep, &shape, first, args.interval)
                .await
                .map_err(|e| (e, 1))
        }
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Prints the table over one interval.
async fn once(
    ep: &Endpoint,
    shape: &Shape,
    first: Snapshot,
    interval: Duration,
) -> Result<(), (String, u8)> {
    tokio::time::sleep(interval).await;
    let now = ep.snapshot().await.map_err(|e| (e, 1))?;
    let over = now.uptime.saturating_sub(first.uptime);
    println!(
        "topology {}, uptime {}, at {} (figures over the last {:.1}s)",
        shape.name,
        uptime(now.uptime),
        ep.base,
        over.as_secs_f64()
    );
    print!("{}", table_text(&rows(Some(&first), &now)));
    Ok(())
}

/// What the live view shows.
struct View {
    name: String,
    base: String,
    interval: Duration,
    uptime: Duration,
    rows: Vec<Row>,
    /// The last refresh failed: why.
    trouble: Option<String>,
}

/// The live view, until a quit key or Ctrl-C; the terminal is restored however it ends.
async fn live(
    ep: &Endpoint,
    shape: &Shape,
    first: Snapshot,
    interval: Duration,
) -> Result<(), String> {
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot take over the terminal: {e}"))?;
    let mut view = View {
        name: shape.name.clone(),
        base: ep.base.clone(),
        interval,
        uptime: first.uptime,
        rows: rows(None, &first),
        trouble: None,
    };
    let mut last = first;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        if let Err(e) = terminal.draw(|f| draw(f, &view)) {
            break Err(format!("cannot draw: {e}"));
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
                    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                        break Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("cannot read the keyboard: {e}")),
                None => break Ok(()),
            },
            _ = &mut ctrl_c => break Ok(()),
            _ = tick.tick() => match ep.snapshot().await {
                Ok(now) => {
                    view.rows = rows(Some(&last), &now);
                    view.uptime = now.uptime;
                    view.trouble = None;
                    last = now;
                }
                Err(e) => view.trouble = Some(e),
            },
        }
    };
    ratatui::restore();
    outcome
}

fn draw(frame: &mut Frame, view: &View) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let state = match &view.trouble {
        None => Span::styled(
            format!("live, every {:.1}s", view.interval.as_secs_f64()),
            Style::new().fg(Color::Green),
        ),
        Some(e) => Span::styled(
            format!("disconnected, retrying: {e}"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    let title = Line::from(vec![
        Span::styled(format!("topo top: {}", view.name), bold),
        Span::raw(format!("   uptime {}   {}", uptime(view.uptime), view.base)),
    ]);
    frame.render_widget(Paragraph::new(vec![title, Line::from(state)]), head);

    let marked = bottleneck(&view.rows);
    let lines: Vec<TableRow> = view
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let capacity_colour = if r.capacity >= BUSY {
                Color::Red
            } else if r.capacity >= 0.3 {
                Color::Yellow
            } else {
                Color::Green
            };
            let mut row: Vec<Cell> = cells(r)
                .into_iter()
                .enumerate()
                .map(|(c, text)| {
                    let text = if right_aligned(c) {
                        Line::from(text).right_aligned()
                    } else {
                        Line::from(text)
                    };
                    let cell = Cell::from(text);
                    if c == 9 {
                        cell.style(Style::new().fg(capacity_colour))
                    } else {
                        cell
                    }
                })
                .collect();
            if marked == Some(i) {
                row.push(Cell::from("◀ bottleneck"));
                TableRow::new(row).style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
            } else {
                row.push(Cell::from(""));
                TableRow::new(row)
            }
        })
        .collect();
    let id_width = view
        .rows
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(HEADER[0].len()) as u16;
    let widths = [
        Constraint::Length(id_width),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(12),
    ];
    let header = TableRow::new(
        HEADER
            .iter()
            .enumerate()
            .map(|(c, h)| {
                if right_aligned(c) {
                    Cell::from(Line::from(*h).right_aligned())
                } else {
                    Cell::from(*h)
                }
            })
            .collect::<Vec<_>>(),
    )
    .style(bold);
    frame.render_widget(
        Table::new(lines, widths).header(header).column_spacing(2),
        body,
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("q", bold),
            Span::raw(" quit   capacity: the busiest task's share of the interval   "),
            Span::styled("bottleneck", Style::new().fg(Color::Red)),
            Span::raw(": capacity ≥ 0.7, else queues over half full"),
        ])),
        foot,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(task: u32, executed: u64, busy_ms: u64, queue: u64) -> TaskFigures {
        TaskFigures {
            task,
            emitted: executed,
            executed,
            acked: executed,
            failed: 1,
            timed_out: 0,
            busy: Duration::from_millis(busy_ms),
            queue_len: queue,
            queue_capacity: 100,
            execute_latency: Latency {
                count: executed,
                p99_us: 40 + task as u64,
                buckets: Vec::new(),
            },
            complete_latency: Latency::default(),
        }
    }

    fn snapshot(secs: u64, split: [(u64, u64, u64); 2]) -> Snapshot {
        Snapshot {
            uptime: Duration::from_secs(secs),
            components: vec![
                ComponentFigures {
                    id: "gen".into(),
                    kind: "spout".into(),
                    tasks: vec![task(0, secs * 100, secs * 100, 0)],
                },
                ComponentFigures {
                    id: "split".into(),
                    kind: "bolt".into(),
                    tasks: split
                        .iter()
                        .enumerate()
                        .map(|(i, &(n, busy, q))| task(1 + i as u32, n, busy, q))
                        .collect(),
                },
            ],
            latency_bounds_us: Vec::new(),
        }
    }

    #[test]
    fn rates_and_capacity_come_from_the_deltas_of_the_counters() {
        let before = snapshot(10, [(1000, 1000, 0), (1000, 2000, 0)]);
        let now = snapshot(12, [(1500, 2800, 10), (1300, 2200, 70)]);
        let r = rows(Some(&before), &now);
        assert_eq!(r.len(), 2);
        let spout = &r[0];
        assert_eq!((spout.kind.as_str(), spout.tasks), ("spout", 1));
        assert_eq!(spout.rate, 100.0, "200 emitted over 2 s");
        assert_eq!(spout.queue_fill, None, "a spout has no input queue");
        assert_eq!(spout.p99_us, None, "no tree completed");
        let split = &r[1];
        assert_eq!(split.rate, 400.0, "(500 + 300) executed over 2 s");
        assert_eq!(split.acked_rate, 400.0);
        assert_eq!(split.failed, 2);
        assert_eq!(split.capacity, 0.9, "task 1 was busy 1.8 s of 2 s");
        assert_eq!(split.queue_fill, Some(0.4));
        assert_eq!(split.p99_us, Some(42));
        assert_eq!(bottleneck(&r), Some(1));
        // Without an earlier snapshot (or with one of another run), the figures are since start.
        let since_start = rows(None, &now);
        assert_eq!(since_start[1].rate, 2800.0 / 12.0);
        assert_eq!(rows(Some(&snapshot(99, [(0, 0, 0); 2])), &now), since_start);
    }

    #[test]
    fn p99_comes_from_the_buckets_of_the_interval_when_there_are_some() {
        let mut before = snapshot(10, [(1000, 1000, 0), (1000, 2000, 0)]);
        let mut now = snapshot(12, [(1500, 2800, 10), (1300, 2200, 70)]);
        // Bounds 10, 100, 1000 µs. Before: everything at most 10 µs. In the interval: task 1
        // adds 400 at most 10 µs and 100 in (100, 1000]; task 2 adds 300 in (10, 100].
        for s in [&mut before, &mut now] {
            s.latency_bounds_us = vec![10, 100, 1000];
        }
        let set = |s: &mut Snapshot, task: usize, buckets: [u64; 3]| {
            s.components[1].tasks[task].execute_latency.buckets = buckets.to_vec();
        };
        set(&mut before, 0, [1000, 1000, 1000]);
        set(&mut before, 1, [1000, 1000, 1000]);
        set(&mut now, 0, [1400, 1400, 1500]);
        set(&mut now, 1, [1000, 1300, 1300]);
        // 800 in the interval: rank 792 falls among the 100 in (100, 1000] (700 below):
        // 100 + 900 * 92 / 100.
        assert_eq!(rows(Some(&before), &now)[1].p99_us, Some(928));
        // A bucket-less spout keeps its since-start figure (none here).
        assert_eq!(rows(Some(&before), &now)[0].p99_us, None);
        // Nothing executed in the interval: no p99.
        assert_eq!(rows(Some(&now), &now)[1].p99_us, None);
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

    #[test]
    fn the_bottleneck_is_the_busiest_else_the_fullest_else_none() {
        let row = |capacity: f64, fill: Option<f64>| Row {
            id: "x".into(),
            kind: "bolt".into(),
            tasks: 1,
            rate: 0.0,
            acked_rate: 0.0,
            failed: 0,
            timed_out: 0,
            p99_us: None,
            queue_fill: fill,
            capacity,
        };
        assert_eq!(
            bottleneck(&[row(0.2, Some(0.9)), row(0.75, Some(0.1))]),
            Some(1)
        );
        assert_eq!(
            bottleneck(&[row(0.2, Some(0.6)), row(0.5, Some(0.1))]),
            Some(0)
        );
        assert_eq!(bottleneck(&[row(0.2, Some(0.5)), row(0.5, None)]), None);
        assert_eq!(bottleneck(&[]), None);
        let spout = Row {
            kind: "spout".into(),
            ..row(0.95, None)
        };
        assert_eq!(bottleneck(&[spout.clone(), row(0.8, None)]), Some(1));
        assert_eq!(bottleneck(&[spout, row(0.1, None)]), None);
    }

    #[test]
    fn the_plain_table_aligns_columns_and_marks_the_bottleneck() {
        let before = snapshot(10, [(1000, 1000, 0), (1000, 2000, 0)]);
        let now = snapshot(12, [(1500, 2800, 10), (1300, 2200, 70)]);
        let text = table_text(&rows(Some(&before), &now));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "COMPONENT  KIND   TASKS  TUPLES/S  ACKED/S  FAILED  TIMED OUT  P99    QUEUE  CAPACITY",
                "gen        spout      1       100      100       1          0  -          -      0.10",
                "split      bolt       2       400      400       2          0  42 µs    40%      0.90  <- bottleneck",
            ]
        );
    }

    #[test]
    fn latencies_and_uptimes_read_at_a_glance() {
        assert_eq!(latency(850), "850 µs");
        assert_eq!(latency(3_240), "3.2 ms");
        assert_eq!(latency(1_250_000), "1.25 s");
        assert_eq!(uptime(Duration::from_secs(41)), "41s");
        assert_eq!(uptime(Duration::from_secs(187)), "3m 07s");
        assert_eq!(uptime(Duration::from_secs(3720)), "1h 02m");
    }
}
