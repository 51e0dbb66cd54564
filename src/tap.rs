//! Watching the tuples of a running topology: the `GET /api/tap` route of `topo run --http`, and
//! `topo tap`, its client. (The runtime's side, the taps themselves, is [`topo_runtime::tap`].)
//!
//! ```text
//!  tasks ─► TapPoint ─rate limit─► TapReceiver ─► GET /api/tap?component=split&direction=out&rate=10
//!                                                    │ one JSON object a line (NDJSON), as tuples come,
//!                                                    │ and {"skipped": n} each second some were skipped
//!                                                    ▼
//!                                   topo tap URL split ─► split[1] default: (word="cow")
//! ```
//!
//! A tuple's line:
//!
//! ```json
//! {"time_ms":1764000000123,"component":"count","task":3,"task_index":0,"direction":"in",
//!  "stream":"default","source":{"component":"split","task":2,"task_index":1},
//!  "fields":[{"name":"word","value":"cow"}]}
//! ```
//!
//! (on one line; `source` only for `direction=in`). `task` is the task id, as in
//! `/api/metrics`; `task_index` its position among the component's tasks. `{"skipped": n}` says
//! that `n` tuples were left out since the previous such line: over the rate, or because the
//! reader fell behind. The stream ends when the topology stops; closing the connection ends the
//! tap.

use std::convert::Infallible;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Serialize;
use topo_runtime::tap::{TapEvent, TapFormat, TapOptions, TapReceiver, TapSource};
use topo_runtime::{Direction, MetricsReader, TapError};

/// The rate of a tap when none is asked for, in tuples per second.
pub const DEFAULT_RATE: f64 = 10.0;

/// The content type of the tap stream: newline-delimited JSON.
const NDJSON: &str = "application/x-ndjson";

/// How often a `{"skipped": n}` line may be sent.
const SKIPPED_EVERY: Duration = Duration::from_secs(1);

/// The `GET /api/tap` route, tapping the topology `reader` reads. Mount it with
/// `.route("/api/tap", topo::tap::route(reader))`.
pub fn route<S: Clone + Send + Sync + 'static>(reader: MetricsReader) -> MethodRouter<S> {
    get(tap).with_state(reader)
}

/// The parameters of `/api/tap`, as checked.
#[derive(Debug, PartialEq)]
struct Params {
    component: String,
    direction: Direction,
    rate: f64,
}

const USAGE: &str = "GET /api/tap?component=ID&direction=out|in&rate=TUPLES_PER_SECOND";

/// Reads the query, naming the parameter that is wrong and what it should be.
fn params(pairs: Vec<(String, String)>) -> Result<Params, String> {
    let mut component = None;
    let mut direction = None;
    let mut rate = None;
    for (key, value) in pairs {
        let slot = match key.as_str() {
            "component" => &mut component,
            "direction" => &mut direction,
            "rate" => &mut rate,
            _ => {
                return Err(format!(
                    "unknown parameter `{key}` (expected component, direction, rate: {USAGE})"
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("parameter `{key}` is given twice"));
        }
    }
    let component = match component {
        Some(c) if !c.is_empty() => c,
        _ => return Err(format!("missing parameter `component` ({USAGE})")),
    };
    let direction = match direction {
        None => Direction::Out,
        Some(d) => d
            .parse()
            .map_err(|e| format!("bad parameter `direction`: {e}"))?,
    };
    let rate = match rate {
        None => DEFAULT_RATE,
        Some(r) => r.parse().map_err(|_| {
            format!("bad parameter `rate`: expected a number of tuples per second, got {r:?}")
        })?,
    };
    Ok(Params {
        component,
        direction,
        rate,
    })
}

/// An error as JSON: `{"error": "..."}`.
fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn tap(
    State(reader): State<MetricsReader>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("{e} ({USAGE})")),
    };
    let p = match params(pairs) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let options = TapOptions::new(p.direction, p.rate).format(TapFormat::Json);
    let rx = match reader.tap_with(&p.component, options) {
        Ok(rx) => rx,
        Err(e) => {
            let status = match e {
                TapError::UnknownComponent { .. } => StatusCode::NOT_FOUND,
                TapError::Ended { .. } => StatusCode::GONE,
                _ => StatusCode::BAD_REQUEST,
            };
            return refuse(status, e.to_string());
        }
    };
    let feed = Feed {
        rx,
        tick: tokio::time::interval(SKIPPED_EVERY),
        reported: 0,
        ended: false,
    };
    let lines = futures_util::stream::unfold(feed, |mut f| async move {
        let line = f.next_line().await?;
        Some((Ok::<_, Infallible>(line), f))
    });
    ([(CONTENT_TYPE, NDJSON)], Body::from_stream(lines)).into_response()
}

/// One tap's stream of lines.
struct Feed {
    rx: TapReceiver,
    /// When to look at the skipped count again.
    tick: tokio::time::Interval,
    /// The skipped count already reported.
    reported: u64,
    /// The tap has ended; only the last skipped line may follow.
    ended: bool,
}

impl Feed {
    /// The next line, or `None` when the tap has ended and everything is said.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            if self.ended {
                return self.skipped_line();
            }
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(e) => return Some(tuple_line(&e)),
                    None => self.ended = true,
                },
                _ = self.tick.tick() => {
                    if let Some(line) = self.skipped_line() {
                        return Some(line);
                    }
                }
            }
        }
    }

    /// `{"skipped": n}` if tuples were skipped since the last such line.
    fn skipped_line(&mut self) -> Option<String> {
        let now = self.rx.skipped();
        let n = now.checked_sub(self.reported).filter(|&n| n > 0)?;
        self.reported = now;
        Some(format!("{}\n", serde_json::json!({ "skipped": n })))
    }
}

/// A field of a tuple's line: the value as JSON, not as text.
#[derive(Serialize)]
struct LineField<'a> {
    name: &'a str,
    value: serde_json::Value,
}

/// A tuple's line (see the module docs).
#[derive(Serialize)]
struct Line<'a> {
    time_ms: i64,
    component: &'a str,
    task: u32,
    task_index: usize,
    direction: Direction,
    stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a TapSource>,
    fields: Vec<LineField<'a>>,
}

/// The JSON line of one tapped tuple, newline included.
fn tuple_line(e: &TapEvent) -> String {
    let line = Line {
        time_ms: e.time_ms,
        component: &e.component,
        task: e.task.0,
        task_index: e.task_index,
        direction: e.direction,
        stream: &e.stream,
        source: e.source.as_ref(),
        fields: e
            .fields
            .iter()
            .map(|f| LineField {
                name: &f.name,
                // The tap wrote JSON text (TapFormat::Json), so this parses.
                value: serde_json::from_str(&f.value)
                    .unwrap_or_else(|_| serde_json::Value::String(f.value.clone())),
            })
            .collect(),
    };
    // Plain data with text keys always serializes.
    let mut s = serde_json::to_string(&line).unwrap_or_default();
    s.push('\n');
    s
}

/// The URL of `path` on the endpoint `base` (`http://127.0.0.1:8080`, `127.0.0.1:8080`; any path
/// of `base` is replaced), or a message naming what is wrong with `base`.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, String> {
    let with_scheme = if base.contains("://") {
        base.to_string()
    } else {
        format!("http://{base}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| {
        format!("`{base}` is not a URL ({e}); expected one such as http://127.0.0.1:8080")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{base}` is not an http:// or https:// URL; expected one such as http://127.0.0.1:8080"
        ));
    }
    url.join(path)
        .map_err(|e| format!("`{base}` cannot be joined with {path}: {e}"))
}

/// An error with its causes: `error sending request: client error (Connect): connection refused`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// The message of an endpoint's error answer: its `{"error": ...}`, else the body if it is one
/// short line of text, else the status alone.
pub(crate) fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let body = body.trim();
            if body.is_empty() || body.len() > 200 || body.contains('\n') || body.starts_with('<') {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {body}")
            }
        })
}

/// What `topo tap` was asked.
#[derive(Debug, Clone)]
pub struct TapArgs {
    /// The endpoint of `topo run --http`.
    pub url: String,
    /// The component to watch.
    pub component: String,
    /// Which side of it.
    pub direction: Direction,
    /// At most this many tuples per second.
    pub rate: f64,
    /// Stop after this many tuples.
    pub limit: Option<u64>,
    /// Print the endpoint's JSON lines as they are.
    pub json: bool,
    /// The endpoint's bearer token, if it asks for one.
    pub token: Option<String>,
    /// The certificate authority (PEM) of an https:// endpoint, beside the system's.
    pub ca: Option<std::path::PathBuf>,
}

/// An HTTP client of the endpoint: sends `token` as a bearer token with every request (marked
/// sensitive, so it is never printed), trusts `ca` (PEM) beside the system's authorities for an
/// https:// endpoint, gives up connecting after 5 s, and a whole request after `timeout` when
/// one is given.
pub(crate) fn client(
    token: Option<&str>,
    ca: Option<&std::path::Path>,
    timeout: Option<Duration>,
) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| "the token holds characters an HTTP header cannot carry".to_string())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .default_headers(headers);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    if let Some(path) = ca {
        let roots = topo_spouts::connector::tls::Roots::load("--ca", path)?;
        for der in roots.der() {
            let cert = reqwest::Certificate::from_der(der)
                .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
        .map_err(|e| format!("cannot make an HTTP client: {}", chain(&e)))
}

/// How a tap run ended badly: the message, and the exit code (1 the endpoint or the connection,
/// 2 what was asked: an unknown component, a bad rate).
#[derive(Debug)]
struct Failure(String, u8);

/// `topo tap`: prints the tapped tuples until `--limit`, Ctrl-C or the end of the topology.
pub fn run(args: TapArgs) -> ExitCode {
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
    let outcome = rt.block_on(async {
        tokio::select! {
            r = stream(&args) => r.map(Some),
            r = tokio::signal::ctrl_c() => match r {
                Ok(()) => Ok(None),
                Err(e) => Err(Failure(format!("cannot listen for Ctrl-C: {e}"), 1)),
            },
        }
    });
    match outcome {
        Ok(Some(end)) => {
            if let Some(end) = end.message() {
                eprintln!("{end}");
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Why a tap run ended well.
#[derive(Debug, PartialEq)]
enum End {
    /// `--limit` tuples were printed.
    Limit,
    /// The endpoint ended the stream: the topology stopped.
    Stopped(u64),
    /// Standard output was closed (`topo tap ... | head`).
    OutputClosed,
}

impl End {
    fn message(&self) -> Option<String> {
        match self {
            End::Stopped(n) => Some(format!("the tap ended: the topology stopped ({n} tuples)")),
            End::Limit | End::OutputClosed => None,
        }
    }
}

/// Connects, then prints lines until `--limit`, the end of the stream or of standard output.
async fn stream(args: &TapArgs) -> Result<End, Failure> {
    let mut url = endpoint(&args.url, "/api/tap").map_err(|e| Failure(e, 2))?;
    url.query_pairs_mut()
        .append_pair("component", &args.component)
        .append_pair("direction", args.direction.as_str())
        .append_pair("rate", &args.rate.to_string());
    let client =
        client(args.token.as_deref(), args.ca.as_deref(), None).map_err(|e| Failure(e, 1))?;
    let mut response = client.get(url.clone()).send().await.map_err(|e| {
        Failure(
            format!(
                "cannot reach {}: {} (is `topo run --http` serving there?)",
                args.url,
                chain(&e)
            ),
            1,
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let code = match status.as_u16() {
            400 | 404 if body.contains("\"error\"") => 2,
            _ => 1,
        };
        return Err(Failure(
            format!(
                "{} refused the tap: {}",
                args.url,
                error_message(status, &body)
            ),
            code,
        ));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type.starts_with(NDJSON) {
        return Err(Failure(
            format!(
                "{url} is not a tap stream (it answered {status} with content type {content_type:?}, \
                 expected {NDJSON}); is a `topo run --http` with /api/tap serving there?"
            ),
            1,
        ));
    }
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            Failure(
                format!("the connection to {} broke: {}", args.url, chain(&e)),
                1,
            )
        })?;
        let Some(chunk) = chunk else {
            return Ok(End::Stopped(printed));
        };
        pending.extend_from_slice(&chunk);
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                Failure(
                    format!("{} sent a line that is not JSON ({e}): {line}", args.url),
                    1,
                )
            })?;
            let is_tuple = v.get("fields").is_some();
            let text = if args.json {
                Some(line.to_string())
            } else if let Some(n) = v.get("skipped").and_then(|n| n.as_u64()) {
                eprintln!("({n} tuples skipped: over the rate, or the reader fell behind)");
                None
            } else {
                Some(readable(&v).ok_or_else(|| {
                    Failure(
                        format!("{} sent a line that is not a tuple: {line}", args.url),
                        1,
                    )
                })?)
            };
            if let Some(text) = text {
                let mut out = stdout.lock();
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    return Ok(End::OutputClosed);
                }
            }
            if is_tuple {
                printed += 1;
                if args.limit.is_some_and(|l| printed >= l) {
                    return Ok(End::Limit);
                }
            }
        }
    }
}

/// One tuple's line as a person reads it: `split[1] default: (word="cow", n=3)`, and for tuples
/// entering a bolt `count[0] <- split[1] default: (word="cow")`. Values are JSON (strings quoted).
pub fn readable(v: &serde_json::Value) -> Option<String> {
    let component = v["component"].as_str()?;
    let index = v["task_index"].as_u64()?;
    let stream = v["stream"].as_str()?;
    let fields = v["fields"]
        .as_array()?
        .iter()
        .map(|f| Some(format!("{}={}", f["name"].as_str()?, f.get("value")?)))
        .collect::<Option<Vec<_>>>()?
        .join(", ");
    Some(match v.get("source") {
        Some(s) => format!(
            "{component}[{index}] <- {}[{}] {stream}: ({fields})",
            s["component"].as_str()?,
            s["task_index"].as_u64()?
        ),
        None => format!("{component}[{index}] {stream}: ({fields})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_default_and_each_mistake_is_named() {
        assert_eq!(
            params(pairs(&[("component", "split")])),
            Ok(Params {
                component: "split".into(),
                direction: Direction::Out,
                rate: DEFAULT_RATE
            })
        );
        assert_eq!(
            params(pairs(&[
                ("component", "count"),
                ("direction", "in"),
                ("rate", "2.5")
            ]))
            .map(|p| (p.direction, p.rate)),
            Ok((Direction::In, 2.5))
        );
        let err = |q: &[(&str, &str)]| params(pairs(q)).unwrap_err();
        assert!(err(&[]).starts_with("missing parameter `component`"));
        assert!(err(&[("component", "")]).starts_with("missing parameter `component`"));
        assert_eq!(
            err(&[("component", "a"), ("direction", "up")]),
            "bad parameter `direction`: direction must be `in` or `out`, got \"up\""
        );
        assert_eq!(
            err(&[("component", "a"), ("rate", "fast")]),
            "bad parameter `rate`: expected a number of tuples per second, got \"fast\""
        );
        assert!(
            err(&[("component", "a"), ("limit", "3")])
                .starts_with("unknown parameter `limit` (expected component, direction, rate")
        );
        assert_eq!(
            err(&[("component", "a"), ("component", "b")]),
            "parameter `component` is given twice"
        );
    }

    #[test]
    fn a_tuple_line_has_json_values_and_a_source_only_when_entering() {
        let e = TapEvent {
            time_ms: 5,
            component: "count".into(),
            task: topo_runtime::TaskId(3),
            task_index: 0,
            direction: Direction::In,
            stream: "default".into(),
            source: Some(TapSource {
                component: "split".into(),
                task: topo_runtime::TaskId(2),
                task_index: 1,
            }),
            fields: vec![
                topo_runtime::tap::TapField {
                    name: "word".into(),
                    value: "\"cow\"".into(),
                },
                topo_runtime::tap::TapField {
                    name: "n".into(),
                    value: "3".into(),
                },
            ],
        };
        let line = tuple_line(&e);
        assert_eq!(
            line,
            "{\"time_ms\":5,\"component\":\"count\",\"task\":3,\"task_index\":0,\"direction\":\"in\",\
             \"stream\":\"default\",\"source\":{\"component\":\"split\",\"task\":2,\"task_index\":1},\
             \"fields\":[{\"name\":\"word\",\"value\":\"cow\"},{\"name\":\"n\",\"value\":3}]}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(
            readable(&v).as_deref(),
            Some("count[0] <- split[1] default: (word=\"cow\", n=3)")
        );
        let out = TapEvent {
            direction: Direction::Out,
            source: None,
            ..e
        };
        let v: serde_json::Value = serde_json::from_str(&tuple_line(&out)).expect("JSON");
        assert!(v.get("source").is_none());
        assert_eq!(
            readable(&v).as_deref(),
            Some("count[0] default: (word=\"cow\", n=3)")
        );
        assert_eq!(readable(&serde_json::json!({"skipped": 3})), None);
    }

    #[test]
    fn endpoints_take_a_base_with_or_without_scheme_and_refuse_others() {
        let url = |b: &str| endpoint(b, "/api/tap").map(|u| u.to_string());
        assert_eq!(
            url("127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080/api/tap")
        );
        assert_eq!(
            url("http://127.0.0.1:8080/metrics").as_deref(),
            Ok("http://127.0.0.1:8080/api/tap")
        );
        assert!(
            url("ftp://x")
                .unwrap_err()
                .contains("not an http:// or https:// URL")
        );
        assert!(url("http://").unwrap_err().contains("is not a URL"));
    }

    #[test]
    fn error_answers_give_their_message() {
        let s = reqwest::StatusCode::NOT_FOUND;
        assert_eq!(
            error_message(s, r#"{"error":"no component `x`"}"#),
            "no component `x`"
        );
        assert_eq!(error_message(s, ""), "HTTP 404 Not Found");
        assert_eq!(error_message(s, "nope\n"), "HTTP 404 Not Found: nope");
        assert_eq!(
            error_message(s, "<!DOCTYPE HTML>\n<html>...</html>"),
            "HTTP 404 Not Found"
        );
    }
}
