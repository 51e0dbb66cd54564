//! The live dashboard in a real browser: `topo run --http` serves `examples/dashboard.toml`,
//! headless Chromium (driven over WebDriver by chromedriver and `fantoccini`) loads `/`, and the
//! page must draw every component of the topology in its layer, show rates that move, mark the
//! throttled bolt — and only it — as the bottleneck, say "disconnected, retrying" when the
//! topology goes away and recover by itself when it is back. Against an endpoint with a token
//! (`--http-token`), over plain HTTP and over TLS (`--http-tls-cert`, the browser trusting the
//! test certificate), the page asks for the token, then goes live with `/#token=...`.
//!
//! ```text
//!  topo run --http 127.0.0.1:0 examples/dashboard.toml ◄── GET /, /api/* ── Chromium (headless)
//!                                                                              ▲ WebDriver
//!  this test ── fantoccini ──► chromedriver --port=N ──────────────────────────┘
//! ```
//!
//! A screenshot is saved to `<target dir>/dashboard.png` (its path is printed); with
//! `TOPO_UPDATE_SCREENSHOT=1` it also replaces `docs/dashboard.png`, the README's picture.
//! Chromium and chromedriver come from `scripts/services start`; without them the test fails and
//! says so.

use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use futures_util::FutureExt;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any one wait of this test may take.
const WAIT: Duration = Duration::from_secs(60);
/// The components of examples/dashboard.toml, in the layers the page must put them in.
const LAYERS: &[(&str, u64)] = &[("sentences", 0), ("split", 1), ("count", 2), ("to_api", 3)];
/// Its throttled bolt: the bottleneck.
const THROTTLED: &str = "to_api";

/// A child process killed (and reaped) when dropped, so no run leaves one behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `topo run --http ADDR EXTRA examples/dashboard.toml` with its state (checkpoints)
/// under `state`; returns it with the address it serves.
fn start_topo(http: &str, extra: &[&str], state: &Path) -> (Killed, String) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dashboard.toml");
    let child = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .env_remove("RUST_LOG")
        .env_remove("SENTENCES")
        .env_remove("TOPO_HTTP_TOKEN")
        .env("TOPO_STATE_DIR", state)
        .args(["run", "--for", "600s", "--http", http])
        .args(extra)
        .arg(example)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo");
    // Wrapped first, so a panic while reading the address still kills it.
    let mut child = Killed(child);
    let addr = topo_test_support::http_address(&mut child.0);
    (child, addr)
}

/// Starts chromedriver on a free loopback port and waits (bounded) until it listens.
fn start_chromedriver() -> (Killed, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let mut child = Killed(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("chromedriver ended before listening on port {port}: {status}");
        }
        assert!(
            start.elapsed() < WAIT,
            "chromedriver did not listen on port {port} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// The browser, headless, with a profile of its own and its background traffic off (the
/// network here is closed: left on, it would keep trying to reach Google's services).
async fn open_browser(port: u16, profile: &Path) -> Client {
    open_browser_trusting(port, profile, None).await
}

/// [`open_browser`], trusting the server certificate whose public key hash is `spki` (as a
/// browser trusts a certificate installed for one site).
async fn open_browser_trusting(port: u16, profile: &Path, spki: Option<&str>) -> Client {
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-quic".to_string(),
        "--no-first-run".to_string(),
        "--disable-background-networking".to_string(),
        "--disable-component-update".to_string(),
        "--disable-sync".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--hide-scrollbars".to_string(),
        "--window-size=1440,1250".to_string(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if let Some(spki) = spki {
        args.push(format!("--ignore-certificate-errors-spki-list={spki}"));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// What the page shows, read in one script: the drawn nodes and edges, the table's rows, the
/// connection indicator and the error list.
const READ_PAGE: &str = r##"
const nodes = [...document.querySelectorAll("#graph .node")].map((n) => ({
  id: n.dataset.component, kind: n.dataset.kind, layer: Number(n.dataset.layer),
  rate: n.dataset.rate, capacity: n.dataset.capacity,
  bottleneck: n.classList.contains("bottleneck"),
  text: n.textContent,
}));
const edges = [...document.querySelectorAll("#graph .edge")].map((e) => ({
  from: e.dataset.from, to: e.dataset.to, rate: e.dataset.rate ?? "", text: e.textContent,
}));
const rows = [...document.querySelectorAll("#components tbody tr")].map((r) => ({
  id: r.dataset.component, rate: r.dataset.rate ?? "", text: r.textContent,
}));
return {
  nodes, edges, rows,
  bottlenecks: [...document.querySelectorAll(".bottleneck")].map((b) => b.dataset.component ?? b.tagName),
  note: document.getElementById("bottleneck-note").hidden ? "" : document.getElementById("bottleneck-note").textContent,
  connection: document.getElementById("connection-text").textContent,
  uptime: document.getElementById("uptime").textContent,
  noErrors: !document.getElementById("no-errors").hidden,
  throughputPoints: (document.querySelector("#throughput-chart path.line")?.getAttribute("d") ?? "").split("L").length,
  name: document.getElementById("topology-name").textContent,
};
"##;

async fn read(client: &Client) -> Result<Value, String> {
    client
        .execute(READ_PAGE, Vec::new())
        .await
        .map_err(|e| format!("reading the page: {e}"))
}

/// Reads the page until `done` says what it wanted is there, or fails after [`WAIT`] with the
/// last reading.
async fn until(
    client: &Client,
    what: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> Result<Value, String> {
    let start = Instant::now();
    loop {
        let page = read(client).await?;
        if done(&page) {
            return Ok(page);
        }
        if start.elapsed() > WAIT {
            return Err(format!(
                "{what}: not within {WAIT:?}; the page showed:\n{page:#}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn nodes(page: &Value) -> &[Value] {
    page["nodes"].as_array().map_or(&[], Vec::as_slice)
}

fn node<'a>(page: &'a Value, id: &str) -> Option<&'a Value> {
    nodes(page).iter().find(|n| n["id"] == id)
}

/// Parses a `data-*` number (empty = not yet known).
fn number(v: &Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// The page's own functions whose answers are known, run in the browser: the layout (longest
/// path, barycentre order), the edge rates it takes from the endpoint's figures, and the short
/// numbers. (The figures themselves — rates, capacity, quantiles, the bottleneck — are computed
/// by the endpoint, and tested with it in `src/figures.rs`.)
const CHECK_FUNCTIONS: &str = r##"
const done = arguments[arguments.length - 1];
import("/dashboard.js").then((m) => {
  const topo = {
    name: "t",
    components: ["a", "b", "x", "y", "z"].map((id) => ({ id, kind: id < "c" ? "spout" : "bolt", parallelism: 1 })),
    edges: [["b", "x"], ["a", "y"], ["x", "z"], ["y", "z"], ["a", "z"]]
      .map(([from, to]) => ({ from, to, stream: "default", grouping: "shuffle", fields: [] })),
  };
  const l = m.layout(topo);
  const placed = Object.fromEntries([...l.nodes].map(([id, p]) => [id, [p.layer, p.order]]));
  const edges = [{ from: "x", to: "z", stream: "default" }, { from: "x", to: "y", stream: "default" }];
  const rates = m.edgeRates(edges, { edges: [{ from: "x", stream: "default", to: "z", rate: 200 }] });
  done({
    placed,
    rates: [...rates.values()],
    short: [0, 0.5, 42, 312.4, 12345, 4560000].map(m.short),
  });
}).catch((e) => done({ error: String(e) }));
"##;

async fn check_functions(client: &Client) -> Result<(), String> {
    let got = client
        .execute_async(CHECK_FUNCTIONS, Vec::new())
        .await
        .map_err(|e| format!("running the page's functions: {e}"))?;
    let want = |what: &str, value: &Value, expected: Value| {
        if *value == expected {
            Ok(())
        } else {
            Err(format!(
                "{what}: {value}, expected {expected} (all: {got:#})"
            ))
        }
    };
    want("error", &got["error"], Value::Null)?;
    // Longest path: z is in layer 2 (a -> y -> z), not 1 (a -> z); inside layer 1, y (fed by a,
    // order 0) comes before x (fed by b, order 1).
    want(
        "layout",
        &got["placed"],
        json!({ "a": [0, 0], "b": [0, 1], "y": [1, 0], "x": [1, 1], "z": [2, 0] }),
    )?;
    // The endpoint's rate for x -> z; none listed for x -> y: it carried nothing.
    want("edge rates", &got["rates"], json!([200, 0]))?;
    want(
        "short",
        &got["short"],
        json!(["0", "0.50", "42", "312", "12.3k", "4.56M"]),
    )
}

/// Drives the page through everything the test checks; an error says what was missing.
async fn drive(client: &Client, addr: &str, shot: &Path) -> Result<(), String> {
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            let body = reqwest::get(&url)
                .await
                .map_err(|e| format!("GET {url}: {e}"))?
                .text()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            serde_json::from_str::<Value>(&body).map_err(|e| format!("GET {url}: {e}"))
        }
    };
    let topology = get("/api/topology").await?;
    let ids: Vec<&str> = topology["components"]
        .as_array()
        .ok_or("no components in /api/topology")?
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    let expected: Vec<&str> = LAYERS.iter().map(|(id, _)| *id).collect();
    if ids != expected {
        return Err(format!(
            "examples/dashboard.toml has {ids:?}, expected {expected:?}"
        ));
    }

    client
        .goto(&format!("http://{addr}/"))
        .await
        .map_err(|e| format!("loading the page: {e}"))?;
    check_functions(client).await?;

    // Every component is drawn, once, in its layer (the longest path from the spout).
    let page = until(client, "every component drawn", |p| {
        nodes(p).len() == ids.len()
    })
    .await?;
    for (id, layer) in LAYERS {
        let n = node(&page, id).ok_or(format!("component `{id}` is not drawn"))?;
        if n["layer"].as_u64() != Some(*layer) {
            return Err(format!(
                "`{id}` drawn in layer {}, expected {layer}",
                n["layer"]
            ));
        }
        if !n["text"].as_str().is_some_and(|t| t.contains(id)) {
            return Err(format!("`{id}`'s box does not show its id: {n}"));
        }
    }
    if page["name"] != topology["name"] {
        return Err(format!(
            "header shows {}, expected {}",
            page["name"], topology["name"]
        ));
    }
    if page["edges"].as_array().map(Vec::len) != topology["edges"].as_array().map(Vec::len) {
        return Err(format!("edges drawn: {:#}", page["edges"]));
    }

    // Rates: known for every node, then moving between two readings.
    let first = until(client, "a rate on every node", |p| {
        nodes(p).iter().all(|n| number(&n["rate"]).is_some())
    })
    .await?;
    let rates = |p: &Value| -> Vec<String> {
        nodes(p)
            .iter()
            .map(|n| n["rate"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let before = rates(&first);
    until(client, "rates moving", |p| rates(p) != before).await?;

    // The throttled bolt is the bottleneck, and nothing else is.
    let page = until(client, "the throttled bolt marked as the bottleneck", |p| {
        p["bottlenecks"] == json!([THROTTLED])
    })
    .await?;
    let throttled = node(&page, THROTTLED).ok_or("no throttled node")?;
    let capacity = number(&throttled["capacity"]).unwrap_or(0.0);
    if capacity < 0.7 {
        return Err(format!(
            "the bottleneck's capacity is {capacity}, expected >= 0.7"
        ));
    }
    if !page["note"].as_str().is_some_and(|t| t.contains(THROTTLED)) {
        return Err(format!("the bottleneck note says {}", page["note"]));
    }
    for n in nodes(&page) {
        if n["id"] != THROTTLED && n["bottleneck"] == true {
            return Err(format!("{} is marked too", n["id"]));
        }
    }

    // The page names the bottleneck the endpoint names (it computes none itself).
    let figures = get("/api/metrics").await?;
    if figures["figures"]["bottleneck"]["id"] != THROTTLED {
        return Err(format!(
            "the endpoint names {} as the bottleneck, the page {THROTTLED}",
            figures["figures"]["bottleneck"]
        ));
    }

    // Edge rates: the endpoint's exact figures, on every edge, none marked estimated ("≈").
    let page = until(client, "a rate on every edge", |p| {
        p["edges"]
            .as_array()
            .is_some_and(|es| es.iter().all(|e| number(&e["rate"]).is_some()))
    })
    .await?;
    for e in page["edges"].as_array().into_iter().flatten() {
        if e["text"].as_str().is_some_and(|t| t.contains('≈')) {
            return Err(format!("edge {e} is marked estimated"));
        }
    }

    // The table has a row per component (and the acker), the header says live, no errors.
    let rows = page["rows"].as_array().ok_or("no table rows")?;
    for id in &ids {
        if !rows
            .iter()
            .any(|r| r["id"] == *id && number(&r["rate"]).is_some())
        {
            return Err(format!("no table row with a rate for `{id}`: {rows:#?}"));
        }
    }
    if page["connection"] != "live" {
        return Err(format!(
            "the connection indicator says {}",
            page["connection"]
        ));
    }
    if page["noErrors"] != true {
        return Err("the error list does not say \"no errors recorded\"".into());
    }

    // A few seconds of history in the charts (a minute for the README's picture), then the
    // screenshot.
    let points = if updating_docs() { 60 } else { 10 };
    until(client, "history in the throughput chart", |p| {
        p["throughputPoints"].as_u64().unwrap_or(0) >= points
    })
    .await?;
    let png = client
        .screenshot()
        .await
        .map_err(|e| format!("screenshot: {e}"))?;
    std::fs::write(shot, &png).map_err(|e| format!("writing {}: {e}", shot.display()))?;
    println!("screenshot: {}", shot.display());
    Ok(())
}

/// The seconds of an uptime as the header shows it (`42s`, `3m 07s`, `1h 02m 03s`).
fn uptime_secs(v: &Value) -> Option<u64> {
    let mut total = 0;
    for part in v.as_str()?.split_whitespace() {
        let unit = match part.chars().last()? {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = part[..part.len() - 1].parse().ok()?;
        total += n * unit;
    }
    Some(total)
}

/// The topology goes away and comes back on the same address: the page says so, then recovers
/// by itself (a new graph, counters from zero).
async fn reconnects(
    client: &Client,
    topo: Killed,
    addr: &str,
    state: &Path,
) -> Result<Killed, String> {
    let old = uptime_secs(&read(client).await?["uptime"]).ok_or("no uptime shown")?;
    drop(topo);
    until(client, "\"disconnected, retrying\"", |p| {
        p["connection"] == "disconnected, retrying"
    })
    .await?;
    let (topo, again) = start_topo(addr, &[], state);
    if again != addr {
        return Err(format!("restarted on {again}, expected {addr}"));
    }
    until(
        client,
        "live again, with the restarted topology's figures",
        |p| {
            p["connection"] == "live"
                && uptime_secs(&p["uptime"]).is_some_and(|new| new < old)
                && nodes(p).len() == LAYERS.len()
                && nodes(p).iter().all(|n| number(&n["rate"]).is_some())
        },
    )
    .await?;
    Ok(topo)
}

/// Whether this run replaces `docs/dashboard.png` (`TOPO_UPDATE_SCREENSHOT=1`).
fn updating_docs() -> bool {
    std::env::var_os("TOPO_UPDATE_SCREENSHOT").is_some_and(|v| v == "1")
}

#[test]
fn the_dashboard_draws_the_topology_and_marks_the_throttle_as_the_bottleneck() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: run `scripts/services start`, which installs chromium and \
             chromium-driver (the dashboard's browser test needs both)"
        );
    }
    let state = tempfile::tempdir().expect("a state directory");
    let (topo, addr) = start_topo("127.0.0.1:0", &[], state.path());
    let (_driver, port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let shot = target.join("dashboard.png");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let outcome = rt.block_on(async {
        let client = open_browser(port, profile.path()).await;
        let checks = async {
            drive(&client, &addr, &shot).await?;
            reconnects(&client, topo, &addr, state.path()).await
        };
        let result = AssertUnwindSafe(checks).catch_unwind().await;
        // Close the session, and so the browser, whatever happened: chromedriver does not take
        // the browser down with it when it is killed.
        if let Err(e) = client.close().await {
            eprintln!("closing the browser: {e}");
        }
        result
    });
    let _topo = match outcome {
        Ok(Ok(topo)) => topo,
        Ok(Err(e)) => panic!("{e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if updating_docs() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::copy(&shot, &docs).expect("copy the screenshot to docs/");
        println!("updated {}", docs.display());
    }
}

/// The token of [`the_dashboard_sends_the_token_given_in_its_address`].
const TOKEN: &str = "dash-Token-4417";

/// Against an endpoint with a token, at `base` (`http://ADDR` or `https://localhost:PORT`):
/// opened without it the page says how to give it; opened as `/#token=...` it goes live
/// (drawing every component) and takes the token out of the address.
async fn token_flow(client: &Client, base: &str) -> Result<(), String> {
    client
        .goto(&format!("{base}/"))
        .await
        .map_err(|e| format!("opening the dashboard: {e}"))?;
    until(client, "the page asks for the token", |p| {
        p["connection"]
            .as_str()
            .is_some_and(|c| c.contains("needs its token") && c.contains("#token="))
    })
    .await?;
    client
        .goto(&format!("{base}/#token={TOKEN}"))
        .await
        .map_err(|e| format!("opening the dashboard with its token: {e}"))?;
    until(client, "the page is live with the token", |p| {
        p["connection"] == "live" && nodes(p).len() == LAYERS.len()
    })
    .await?;
    let href = client
        .execute("return location.href", Vec::new())
        .await
        .map_err(|e| format!("reading the address: {e}"))?;
    if href.as_str().is_none_or(|h| h.contains(TOKEN)) {
        return Err(format!("the token stayed in the address: {href}"));
    }
    if !href.as_str().is_some_and(|h| h.starts_with(base)) {
        return Err(format!("the page left {base}: {href}"));
    }
    Ok(())
}

/// Runs [`token_flow`] in a browser trusting `trusted` (see [`open_browser`]) against `base`.
fn run_token_flow(base: &str, trusted: Option<&str>) {
    let (_driver, port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let outcome = rt.block_on(async {
        let client = open_browser_trusting(port, profile.path(), trusted).await;
        let result = AssertUnwindSafe(token_flow(&client, base))
            .catch_unwind()
            .await;
        if let Err(e) = client.close().await {
            eprintln!("closing the browser: {e}");
        }
        result
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn browser_is_installed() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: run `scripts/services start`"
        );
    }
}

#[test]
fn the_dashboard_sends_the_token_given_in_its_address() {
    browser_is_installed();
    let state = tempfile::tempdir().expect("a state directory");
    let (_topo, addr) = start_topo("127.0.0.1:0", &["--http-token", TOKEN], state.path());
    run_token_flow(&format!("http://{addr}"), None);
}

/// The base64 SHA-256 of `cert`'s public key (SubjectPublicKeyInfo), as Chromium's
/// `--ignore-certificate-errors-spki-list` takes it, computed with `openssl`.
fn spki_hash(cert: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("base64")
        .trim()
        .to_string()
}

// Guards the dashboard over TLS with a token (`--http-tls-cert`, `--http-tls-key`,
// `--http-token`): Chromium, trusting the test server's certificate, loads the page over
// https://, which asks for the token, then goes live with it, its API calls over TLS too.
#[test]
fn the_dashboard_over_tls_sends_its_token() {
    use topo_test_support::tls;
    browser_is_installed();
    let state = tempfile::tempdir().expect("a state directory");
    let (cert, key) = (tls::file("server.crt"), tls::file("server.key"));
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let extra = [
        "--http-token",
        TOKEN,
        "--http-tls-cert",
        &cert_arg,
        "--http-tls-key",
        &key_arg,
    ];
    let (_topo, addr) = start_topo("127.0.0.1:0", &extra, state.path());
    let port = addr.rsplit(':').next().expect("a port");
    run_token_flow(
        &format!("https://localhost:{port}"),
        Some(&spki_hash(&cert)),
    );
}
