//! `topo run --http`: the live figures of a running topology, scraped from `/metrics`
//! (Prometheus text) and read from `/api/metrics` and `/api/topology`, equal the known input
//! exactly: N sentences of 4 words each, split and counted, every tree acked.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use topo_test_support::temp_topology;

const WAIT: Duration = Duration::from_secs(60);
const N: u64 = 5000;

/// The topology: N sentences of exactly 4 words -> split (2 tasks) -> count by word (2 tasks).
fn topology() -> tempfile::NamedTempFile {
    temp_topology(&format!(
        r#"
name = "metrics-check"

[spouts.sentences]
kind = "generator"
count = {N}
sentences = ["the cow jumped over", "an apple a day", "four score and seven"]

[bolts.split]
kind = "split"
field = "sentence"
parallelism = 2
inputs = [{{ from = "sentences" }}]

[bolts.count]
kind = "count"
parallelism = 2
inputs = [{{ from = "split", grouping = {{ fields = ["word"] }} }}]
"#
    ))
}

/// Starts `topo run --http 127.0.0.1:0` and returns it with the address it serves.
fn start(file: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .env_remove("RUST_LOG")
        .args(["run", "--for", "120s", "--http", "127.0.0.1:0"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo");
    let addr = topo_test_support::http_address(&mut child);
    (child, addr)
}

/// The value of the series `name{labels...}` whose labels include every one of `want`.
fn series(text: &str, name: &str, want: &[&str]) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

fn sum(text: &str, name: &str, component: &str) -> f64 {
    series(text, name, &[&format!("component=\"{component}\"")])
        .iter()
        .sum()
}

#[test]
fn metrics_count_exactly_what_went_through() {
    let file = topology();
    let (mut child, addr) = start(file.path());
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let http = reqwest::Client::new();
    let get = |path: &str| -> (String, String) {
        rt.block_on(async {
            let r = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("GET");
            assert!(r.status().is_success(), "{path}: {}", r.status());
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (ct, r.text().await.expect("body"))
        })
    };
    // Wait (bounded) until every sentence's tree is acked.
    let start = Instant::now();
    let text = loop {
        let (_, text) = get("/metrics");
        if sum(&text, "topo_acked_total", "sentences") as u64 == N {
            break text;
        }
        assert!(start.elapsed() < WAIT, "not all acked in time:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let words = 4 * N;
    assert_eq!(sum(&text, "topo_emitted_total", "sentences") as u64, N);
    assert_eq!(sum(&text, "topo_executed_total", "split") as u64, N);
    assert_eq!(sum(&text, "topo_acked_total", "split") as u64, N);
    assert_eq!(sum(&text, "topo_emitted_total", "split") as u64, words);
    assert_eq!(sum(&text, "topo_executed_total", "count") as u64, words);
    assert_eq!(sum(&text, "topo_acked_total", "count") as u64, words);
    for c in ["sentences", "split", "count"] {
        assert_eq!(sum(&text, "topo_failed_total", c), 0.0, "{c} failed");
    }
    assert_eq!(sum(&text, "topo_timed_out_total", "sentences"), 0.0);
    assert_eq!(sum(&text, "topo_pending", "sentences"), 0.0);
    // One series per task: 1 + 2 + 2 tasks and the acker.
    assert_eq!(series(&text, "topo_emitted_total", &[]).len(), 6, "{text}");
    assert_eq!(
        series(&text, "topo_queue_capacity", &["component=\"count\""]).len(),
        2
    );
    // Latency histograms: one observation per executed tuple and per completed tree, in
    // cumulative buckets ending with +Inf, which holds them all.
    assert_eq!(
        sum(&text, "topo_execute_latency_seconds_count", "count") as u64,
        words
    );
    assert_eq!(
        sum(&text, "topo_complete_latency_seconds_count", "sentences") as u64,
        N
    );
    let inf = series(
        &text,
        "topo_complete_latency_seconds_bucket",
        &["component=\"sentences\"", "le=\"+Inf\""],
    );
    assert_eq!(inf, [N as f64], "{text}");
    let buckets = series(
        &text,
        "topo_execute_latency_seconds_bucket",
        &["component=\"split\"", "task=\"1\""],
    );
    assert_eq!(buckets.len(), topo::LATENCY_BOUNDS_US.len() + 1, "{text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(sum(&text, "topo_complete_latency_seconds_sum", "sentences") > 0.0);
    // The process's own figures.
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in:\n{text}"));
        assert!(
            value.parse::<f64>().expect("a number") > 0.0,
            "{name} {value}"
        );
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );

    // The JSON API says the same.
    let (ct, json) = get("/api/metrics");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let comp = |id: &str| {
        v["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .expect("the component")
    };
    let total = |id: &str, field: &str| -> u64 {
        comp(id)["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| t[field].as_u64().expect("a count"))
            .sum()
    };
    assert_eq!(total("sentences", "acked"), N);
    assert_eq!(total("count", "executed"), words);
    // Each edge's count: every sentence to split, every word to count.
    let edges: Vec<(&str, &str, &str, u64)> = v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["from"].as_str().expect("from"),
                e["stream"].as_str().expect("stream"),
                e["to"].as_str().expect("to"),
                e["transferred"].as_u64().expect("transferred"),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("sentences", "default", "split", N),
            ("split", "default", "count", words)
        ]
    );
    assert_eq!(
        v["latency_bounds_us"].as_array().map(Vec::len),
        Some(topo::LATENCY_BOUNDS_US.len())
    );
    // Nothing went wrong: the recent errors are an empty list.
    assert_eq!(v["errors"], serde_json::json!([]), "{json}");

    let (_, topo) = get("/api/topology");
    let t: serde_json::Value = serde_json::from_str(&topo).expect("JSON");
    assert_eq!(t["name"], "metrics-check");
    let ids: Vec<&str> = t["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["sentences", "split", "count"]);
    assert_eq!(t["edges"][1]["grouping"], "fields");
    assert_eq!(t["edges"][1]["fields"][0], "word");
    assert_eq!(get("/health").1, "ok");

    child.kill().expect("stop topo");
    child.wait().expect("reap topo");
}

// A busy address is refused before the topology starts, naming the address and the option.
#[test]
fn a_busy_address_is_refused_with_its_name() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let file = topology();
    let out = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .args(["run", "--until-idle", "--http", &addr])
        .arg(file.path())
        .output()
        .expect("run topo");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot serve HTTP on {addr} (--http)")),
        "{err}"
    );
}

// A connector's warnings reach `/api/metrics` with the component they came from: a socket spout
// whose server is down says it cannot connect.
#[test]
fn recent_errors_name_their_component() {
    // A port that was free a moment ago: nothing listens on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let file = temp_topology(&format!(
        r#"
name = "errors-check"

[spouts.lines]
kind = "socket"
mode = "client"
address = "{closed}"
reconnect = {{ backoff = "50ms", max_backoff = "50ms", attempts = 0 }}

[bolts.count]
kind = "count"
field = "line"
inputs = [{{ from = "lines" }}]
"#
    ));
    let (mut child, addr) = start(file.path());
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let started = Instant::now();
    let errors = loop {
        let body = rt.block_on(async {
            reqwest::get(format!("http://{addr}/api/metrics"))
                .await
                .expect("GET")
                .text()
                .await
                .expect("a body")
        });
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let errors = v["errors"].as_array().cloned().unwrap_or_default();
        if !errors.is_empty() {
            break errors;
        }
        assert!(started.elapsed() < WAIT, "no error recorded: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let e = &errors[0];
    assert_eq!(e["component"], "lines", "{e}");
    assert_eq!(e["level"], "WARN", "{e}");
    assert_eq!(e["seq"], 1, "{e}");
    let message = e["message"].as_str().expect("a message");
    assert!(
        message.contains("cannot connect") && message.contains(&closed.to_string()),
        "{message}"
    );
    child.kill().expect("stop topo");
    child.wait().expect("reap topo");
}
