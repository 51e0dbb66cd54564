//! `topo top URL`: a live table of every component of a running topology (`topo run --http`), in
//! the terminal.
//!
//! ```text
//!  GET /api/topology (once: name) ─┐
//!  GET /api/metrics?window=1s ─────┴─► `figures`: rows and bottleneck, computed by the endpoint
//!      every second                     (crate::figures, as for the dashboard) ─► table
//!  keys: q, Esc or Ctrl-C quit and give the terminal back as it was
//! ```
//!
//! `topo top` computes nothing: each refresh asks the endpoint for its figures over the refresh
//! interval, and shows them. So the table and the dashboard name the same bottleneck by the same
//! rule (see [`crate::figures`]), and break ties the same way.
//!
//! Each row: the component, its kind and tasks; tuples per second (spouts: emitted; bolts and the
//! acker: executed) and acked per second over the interval; failed and timed-out trees since the
//! start; the p99 latency (spouts: emit to tree completion; bolts: execute) over the interval,
//! from the latency buckets; how full its fullest receive queue is now; and its *capacity*, the
//! largest share of the interval one of its tasks spent in the component's own code. The
//! bottleneck, if any, is marked.
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
use topo_runtime::metrics::component_kind;

use crate::figures::{BUSY, ComponentFigures, Figures, KEPT};
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
    /// The endpoint's bearer token, if it asks for one.
    pub token: Option<String>,
    /// The certificate authority (PEM) of an https:// endpoint, beside the system's.
    pub ca: Option<std::path::PathBuf>,
}

/// The parts of `/api/metrics` the table uses (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    /// Time since the topology started.
    pub uptime: Duration,
    /// The rows and the bottleneck, over the window asked for.
    pub figures: Figures,
}

/// The parts of `/api/topology` the view uses.
#[derive(Debug, Clone, Deserialize)]
struct Shape {
    name: String,
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
fn cells(r: &ComponentFigures) -> [String; 10] {
    [
        r.id.clone(),
        component_kind::name(r.role).to_string(),
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

/// Whether `r` is the bottleneck `figures` name.
fn marked(figures: &Figures, r: &ComponentFigures) -> bool {
    figures.bottleneck.as_ref().is_some_and(|b| b.id == r.id)
}

/// The table as plain text, the bottleneck marked `<- bottleneck`.
pub fn table_text(figures: &Figures) -> String {
    let rows = &figures.components;
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
    for (r, cells) in rows.iter().zip(&body) {
        let mut l = line(cells);
        if marked(figures, r) {
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
    /// The endpoint at `base`, asked for figures over `window` (at most [`KEPT`]).
    fn new(
        base: &str,
        window: Duration,
        token: Option<&str>,
        ca: Option<&std::path::Path>,
    ) -> Result<Endpoint, (String, u8)> {
        let http =
            crate::tap::client(token, ca, Some(Duration::from_secs(5))).map_err(|e| (e, 1))?;
        let mut metrics = endpoint(base, "/api/metrics").map_err(|e| (e, 2))?;
        let window = window.clamp(Duration::from_millis(1), KEPT);
        metrics
            .query_pairs_mut()
            .append_pair("window", &humantime::format_duration(window).to_string());
        Ok(Endpoint {
            base: base.to_string(),
            http,
            metrics,
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

    async fn figures(&self) -> Result<Answer, String> {
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
        let ep = Endpoint::new(
            &args.url,
            args.interval,
            args.token.as_deref(),
            args.ca.as_deref(),
        )?;
        let shape: Shape = ep.get(&ep.topology).await.map_err(|e| (e, 1))?;
        // The first answer also leaves the endpoint a snapshot to start the next window from.
        let first = ep.figures().await.map_err(|e| (e, 1))?;
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
    _first: Answer,
    interval: Duration,
) -> Result<(), (String, u8)> {
    tokio::time::sleep(interval).await;
    let now = ep.figures().await.map_err(|e| (e, 1))?;
    let over = if now.figures.since_start {
        "since the start"
    } else {
        "over the last"
    };
    println!(
        "topology {}, uptime {}, at {} (figures {over} {:.1}s)",
        shape.name,
        uptime(now.uptime),
        ep.base,
        now.figures.window_s
    );
    print!("{}", table_text(&now.figures));
    Ok(())
}

/// What the live view shows.
struct View {
    name: String,
    base: String,
    interval: Duration,
    uptime: Duration,
    figures: Figures,
    /// The last refresh failed: why.
    trouble: Option<String>,
}

/// The live view, until a quit key or Ctrl-C; the terminal is restored however it ends.
async fn live(
    ep: &Endpoint,
    shape: &Shape,
    first: Answer,
    interval: Duration,
) -> Result<(), String> {
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot take over the terminal: {e}"))?;
    let mut view = View {
        name: shape.name.clone(),
        base: ep.base.clone(),
        interval,
        uptime: first.uptime,
        figures: first.figures,
        trouble: None,
    };
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
            _ = tick.tick() => match ep.figures().await {
                Ok(now) => {
                    view.figures = now.figures;
                    view.uptime = now.uptime;
                    view.trouble = None;
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

    let lines: Vec<TableRow> = view
        .figures
        .components
        .iter()
        .map(|r| {
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
            if marked(&view.figures, r) {
                row.push(Cell::from("◀ bottleneck"));
                TableRow::new(row).style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
            } else {
                row.push(Cell::from(""));
                TableRow::new(row)
            }
        })
        .collect();
    let id_width = view
        .figures
        .components
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
    use crate::figures::{Bottleneck, Cause};
    use topo_runtime::Role;

    fn row(id: &str, role: Role, tasks: usize) -> ComponentFigures {
        ComponentFigures {
            id: id.into(),
            role: Some(role),
            tasks,
            ..ComponentFigures::default()
        }
    }

    #[test]
    fn the_plain_table_aligns_columns_and_marks_the_bottleneck() {
        let figures = Figures {
            window_s: 2.0,
            since_start: false,
            components: vec![
                ComponentFigures {
                    rate: 100.0,
                    acked_rate: 100.0,
                    failed: 1,
                    capacity: 0.1,
                    ..row("gen", Role::Spout, 1)
                },
                ComponentFigures {
                    rate: 400.0,
                    acked_rate: 400.0,
                    failed: 2,
                    p99_us: Some(42),
                    queue_fill: Some(0.4),
                    capacity: 0.9,
                    ..row("split", Role::Bolt, 2)
                },
            ],
            edges: Vec::new(),
            bottleneck: Some(Bottleneck {
                id: "split".into(),
                cause: Cause::Capacity,
                why: "capacity 0.90: busy 90% of the last 2 s".into(),
            }),
            complete_p99_us: None,
        };
        let text = table_text(&figures);
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
