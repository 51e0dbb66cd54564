//! The `feed` spout through the real `topo` binary against a local listing server: two runs of
//! one topology file with the state under `TOPO_STATE_DIR` emit each submission once (the second
//! run only what is new), a `max_items` run over recorded 2016 comments (no `permalink`, one
//! child without `created_utc`) ends with every child emitted or reported, and a bad option is
//! reported when the file is validated.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use topo_test_support::temp_topology;

/// The longest a run may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A listing server whose r/worldnews holds submissions 1..=`newest` (Reddit's JSON shape,
/// newest first, sliced by `before`/`after`).
struct Listing {
    url: String,
    newest: Arc<Mutex<u64>>,
    _runtime: tokio::runtime::Runtime,
}

fn fullname(n: u64) -> String {
    format!("t3_{n}")
}

impl Listing {
    fn start() -> Listing {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let newest = Arc::new(Mutex::new(0u64));
        let shared = newest.clone();
        let app = axum::Router::new().route(
            "/r/worldnews/new.json",
            axum::routing::get(move |query: axum::extract::RawQuery| {
                let newest = *shared.lock().expect("lock");
                async move { Listing::page(newest, &query.0.unwrap_or_default()) }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("the address"));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Listing {
            url,
            newest,
            _runtime: runtime,
        }
    }

    fn publish_up_to(&self, n: u64) {
        *self.newest.lock().expect("lock") = n;
    }

    fn page(newest: u64, query: &str) -> String {
        let param = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let limit: u64 = param("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
        let number = |f: &str| f.strip_prefix("t3_").and_then(|n| n.parse::<u64>().ok());
        let numbers: Vec<u64> = match (param("before").map(number), param("after").map(number)) {
            (Some(Some(b)), _) => (b + 1..=(b + limit).min(newest)).rev().collect(),
            (_, Some(Some(a))) => (a.saturating_sub(limit).max(1)..a).rev().collect(),
            (Some(None), _) | (_, Some(None)) => Vec::new(),
            (None, None) => (newest.saturating_sub(limit) + 1..=newest).rev().collect(),
        };
        let children: Vec<serde_json::Value> = numbers
            .iter()
            .map(|&n| {
                serde_json::json!({"kind": "t3", "data": {
                    "subreddit": "worldnews", "selftext": "", "title": format!("Story {n}"),
                    "name": fullname(n), "id": n.to_string(), "author": "reporter",
                    "score": 1, "num_comments": 0, "created_utc": 1_700_000_000.0 + n as f64,
                    "url": format!("https://example.com/{n}"),
                    "permalink": format!("/r/worldnews/comments/{n}/story/")
                }})
            })
            .collect();
        serde_json::json!({"kind": "Listing", "data": {
            "after": null, "dist": children.len(), "children": children, "before": null
        }})
        .to_string()
    }
}

fn topology(base: &str, max_items: u64) -> String {
    format!(
        r#"
name = "feed-cli"

[spouts.news]
kind = "feed"
parallelism = 2           # one subreddit: the second task has nothing to poll
base = "{base}"
subreddits = ["worldnews"]
poll_interval = "20ms"
max_poll_interval = "40ms"
max_items = {max_items}

[bolts.print]
kind = "stdout"
inputs = [{{ from = "news" }}]

[bolts.rejects]
kind = "stdout"
show_source = true
inputs = [{{ from = "news", stream = "error" }}]
"#
    )
}

/// Runs `file` to the end with the state under `state`; what it printed.
fn run_output(file: &Path, state: &Path) -> String {
    let out = Command::cargo_bin("topo")
        .expect("the topo binary")
        .env("TOPO_STATE_DIR", state)
        .env_remove("RUST_LOG")
        .args(["run", "--until-idle", "--quiet"])
        .arg(file)
        .timeout(TIMEOUT)
        .output()
        .expect("topo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `file` to the end with the state under `state`; the fullnames printed, in order.
fn run(file: &Path, state: &Path) -> Vec<String> {
    run_output(file, state)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["fullname"]
                .as_str()
                .unwrap_or_else(|| panic!("not an item: {l}"))
                .to_string()
        })
        .collect()
}

// Guards the persisted seen set across processes: the first run emits the listing oldest first
// and writes the acked fullnames under TOPO_STATE_DIR/<topology>/<component>; the second run
// of the same file emits only the submissions published in between.
#[test]
fn a_second_run_emits_only_what_is_new() {
    let listing = Listing::start();
    let state = tempfile::tempdir().expect("temp dir");
    listing.publish_up_to(5);
    let first = temp_topology(&topology(&listing.url, 5));
    assert_eq!(
        run(first.path(), state.path()),
        (1..=5).map(fullname).collect::<Vec<_>>()
    );
    let file = state
        .path()
        .join("feed-cli/news/submissions-worldnews.seen");
    let text = std::fs::read_to_string(&file).expect("the state file");
    assert_eq!(text.lines().filter(|l| l.starts_with("t3_")).count(), 5);

    listing.publish_up_to(8);
    let second = temp_topology(&topology(&listing.url, 3));
    assert_eq!(
        run(second.path(), state.path()),
        (6..=8).map(fullname).collect::<Vec<_>>()
    );
}

/// A listing server whose r/AskReddit/comments.json answers a recorded listing of 2016 (the
/// first answer: the listing; later `before` polls: nothing newer).
fn recorded_comments(runtime: &tokio::runtime::Runtime, doc: serde_json::Value) -> String {
    let empty = serde_json::json!({"kind": "Listing", "data": {
        "modhash": "", "children": [], "after": null, "before": null
    }})
    .to_string();
    let full = doc.to_string();
    let app = axum::Router::new().route(
        "/r/AskReddit/comments.json",
        axum::routing::get(move |query: axum::extract::RawQuery| {
            let before = query.0.unwrap_or_default().contains("before=");
            let body = if before { empty.clone() } else { full.clone() };
            async move { body }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("the address"));
    runtime.spawn(async move { axum::serve(listener, app).await });
    url
}

// Guards the end of a `max_items` run over real 2016 comments, which carry no `permalink`: the
// comments are emitted with one derived in Reddit's shape, the child without `created_utc` is
// printed on the `error` stream, and as it counts toward `max_items` the run ends.
#[test]
fn a_max_items_run_over_recorded_comments_ends() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("spouts/tests/fixtures/comments-2016-07-oauth-askreddit.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the fixture")).expect("JSON");
    doc["data"]["children"][1]["data"]
        .as_object_mut()
        .expect("a child")
        .remove("created_utc");
    let url = recorded_comments(&runtime, doc);
    let text =
        topology(&url, 4).replace("[\"worldnews\"]", "[\"AskReddit\"]\nlisting = \"comments\"");
    let file = temp_topology(&text);
    let state = tempfile::tempdir().expect("temp dir");
    let stdout = run_output(file.path(), state.path());
    let (errors, items): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|l| l.starts_with("news:error "));
    assert_eq!(errors.len(), 1, "{stdout}");
    let error: serde_json::Value =
        serde_json::from_str(errors[0].trim_start_matches("news:error ")).expect("a JSON line");
    assert_eq!(
        error["reason"],
        "t1 child t1_d4y8bdo: missing field `created_utc`: expected epoch seconds (a number)"
    );
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let names: Vec<&str> = items
        .iter()
        .map(|v| v["fullname"].as_str().expect("a fullname"))
        .collect();
    assert_eq!(
        names,
        ["t1_d4y8bdf", "t1_d4y8bdn", "t1_d4y8bdp"],
        "{stdout}"
    );
    assert_eq!(
        items[2]["permalink"],
        "/r/AskReddit/comments/4r4inc/serious_to_anyone_who_followed_their_dreams_how/d4y8bdp/"
    );
    assert_eq!(items[2]["title"], serde_json::Value::Null);
    assert_eq!(items[2]["created_utc"], 1_467_590_690);
}

// Guards that a bad feed option is reported by `validate` with its place and what is expected.
#[test]
fn a_bad_option_is_reported_when_the_file_is_validated() {
    let text = topology("http://127.0.0.1:9", 0).replace("max_items = 0", "limit = 500");
    let file = temp_topology(&text);
    let out = Command::cargo_bin("topo")
        .expect("the topo binary")
        .args(["validate"])
        .arg(file.path())
        .timeout(TIMEOUT)
        .output()
        .expect("topo runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spouts.news") && stderr.contains("`limit` = 500: expected from 1 to 100"),
        "{stderr}"
    );
}
