//! Logging: the log lines of `topo` (text or JSON, each naming its component and task), and
//! [`RecentErrors`], the last warnings and errors kept for the dashboard and `/api/metrics`.
//!
//! ```text
//!  task span {component, task} ─┐
//!  tracing::warn!/error! ───────┴─► registry ─┬─► fmt layer (RUST_LOG / -v / -q) ─► stderr
//!                                             └─► RecentErrors (WARN and ERROR, always) ─► /api/metrics
//! ```
//!
//! Every task of a running topology runs inside a `task` span with the fields `component` and
//! `task` (its index), so a line logged by a bolt or spout names where it came from; connectors
//! that log from threads of their own pass `component` as a field of the event.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// How many events [`RecentErrors`] keeps.
pub const RECENT_ERRORS: usize = 100;

/// One warning or error, as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorEvent {
    /// Its number: 1 for the first event recorded, then counting up (never reused).
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `ERROR` or `WARN`.
    pub level: &'static str,
    /// The component it came from, when known.
    pub component: Option<String>,
    /// The task index within that component, when known.
    pub task: Option<u64>,
    /// The message, followed by the event's other fields as `key=value`.
    pub message: String,
}

/// The last [`RECENT_ERRORS`] warnings and errors logged, shared between the logging layer that
/// records them and the readers (the HTTP endpoint). Clones share the same events.
#[derive(Clone, Debug, Default)]
pub struct RecentErrors {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<ErrorEvent>,
}

impl RecentErrors {
    /// An empty record.
    pub fn new() -> RecentErrors {
        RecentErrors::default()
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> Vec<ErrorEvent> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.events.iter().cloned().collect()
    }

    /// A layer that records every WARN and ERROR event into this record, whatever the log level
    /// of the output (add it to a `tracing_subscriber::registry()`).
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        RecordLayer {
            errors: self.clone(),
        }
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN)
    }

    fn push(&self, mut event: ErrorEvent) {
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.next_seq += 1;
        event.seq = ring.next_seq;
        if ring.events.len() == RECENT_ERRORS {
            ring.events.pop_front();
        }
        ring.events.push_back(event);
    }
}

/// The `component` and `task` of a span, kept in its extensions.
#[derive(Debug, Default)]
struct Place {
    component: Option<String>,
    task: Option<u64>,
}

/// Collects the fields of an event or span.
#[derive(Default)]
struct Fields {
    place: Place,
    message: String,
    rest: String,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "component" => self.place.component = Some(value),
            "task" => match value.parse() {
                Ok(n) => self.place.task = Some(n),
                Err(_) => self.other(field, &value),
            },
            _ => self.other(field, &value),
        }
    }

    fn other(&mut self, field: &Field, value: &str) {
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        let _ = write!(self.rest, "{}={}", field.name(), value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

struct RecordLayer {
    errors: RecentErrors,
}

impl<S> Layer<S> for RecordLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if fields.place.component.is_some()
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(fields.place);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Fields {
            mut place,
            mut message,
            rest,
        } = fields;
        if place.component.is_none()
            && let Some(scope) = ctx.event_scope(event)
        {
            for span in scope {
                if let Some(p) = span.extensions().get::<Place>() {
                    place.component.clone_from(&p.component);
                    place.task = place.task.or(p.task);
                    break;
                }
            }
        }
        if !rest.is_empty() {
            if !message.is_empty() {
                message.push_str(" (");
                message.push_str(&rest);
                message.push(')');
            } else {
                message = rest;
            }
        }
        let level = if *event.metadata().level() == Level::ERROR {
            "ERROR"
        } else {
            "WARN"
        };
        self.errors.push(ErrorEvent {
            seq: 0,
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            level,
            component: place.component,
            task: place.task,
            message,
        });
    }
}

/// The format of `topo`'s log lines on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event: time, level, `task{component=.. task=..}`, message, fields.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, fields (message first) and the span's fields
    /// under `span`, for log collectors.
    Json,
}

/// Installs the global logger: stderr at `level` (overridden by `RUST_LOG`) in `format`, and
/// `errors` recording every warning and error. Returns false if a logger was already installed.
pub fn init(level: &str, format: LogFormat, errors: &RecentErrors) -> bool {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(output)
        .with(errors.layer())
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_with_the_component_and_task_of_their_span() {
        let errors = RecentErrors::new();
        let subscriber = tracing_subscriber::registry().with(errors.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept: below WARN");
            let span = tracing::error_span!("task", component = %"split", task = 2usize);
            span.in_scope(|| {
                tracing::warn!(suppressed = 3u64, "slow input");
                tracing::error!(component = "kafka", "broker down");
            });
            tracing::error!("no place");
        });
        let events = errors.events();
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.level,
                    e.component.as_deref(),
                    e.task,
                    e.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    "WARN",
                    Some("split"),
                    Some(2),
                    "slow input (suppressed=3)"
                ),
                // A component named by the event wins over its span's.
                (2, "ERROR", Some("kafka"), None, "broker down"),
                (3, "ERROR", None, None, "no place"),
            ]
        );
        assert!(events.iter().all(|e| e.time_ms > 0));
    }

    #[test]
    fn only_the_last_events_are_kept_and_numbers_go_on() {
        let errors = RecentErrors::new();
        let subscriber = tracing_subscriber::registry().with(errors.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..RECENT_ERRORS + 5 {
                tracing::warn!("event {i}");
            }
        });
        let events = errors.events();
        assert_eq!(events.len(), RECENT_ERRORS);
        assert_eq!(events[0].seq, 6);
        assert_eq!(events[0].message, "event 5");
        assert_eq!(events.last().map(|e| e.seq), Some(RECENT_ERRORS as u64 + 5));
    }
}
