//! `topo tap` and `topo top` against a real `topo run --http 127.0.0.1:0`: a generator of known
//! sentences -> split (2 tasks) -> count by word (2 tasks). `topo tap` prints tuples of the right
//! component, stream and fields, stops at `--limit`, keeps to `--rate`, shows what enters a bolt
//! with `--in`, names an unknown component; `topo top` draws every component under a real
//! pseudo-terminal and quits on `q`, prints the table once as text with `--once`, and marks the
//! bottleneck the endpoint names.
//!
//! Every wait is bounded: child processes run under a timeout, the pseudo-terminal's screen is
//! polled with a deadline.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use topo_test_support::temp_topology;

const WAIT: Duration = Duration::from_secs(60);

/// Every word the generator's sentences hold.
const SENTENCES: [&str; 3] = [
    "the cow jumped over",
    "an apple a day",
    "four score and seven",
];

fn words() -> Vec<&'static str> {
    SENTENCES.iter().flat_map(|s| s.split(' ')).collect()
}

/// The topology: endless sentences at 2,000/s -> split (2 tasks) -> count by word (2 tasks).
fn topology() -> tempfile::NamedTempFile {
    let sentences = SENTENCES
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    temp_topology(&format!(
        r#"
name = "tap-check"

[spouts.sentences]
kind = "generator"
rate = 2000
sentences = [{sentences}]

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

/// A running `topo run --http 127.0.0.1:0`, killed when dropped.
struct Running {
    child: Child,
    addr: String,
    _file: Option<tempfile::NamedTempFile>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the topology for at most `run_for` and returns it with the address it serves.
fn start(run_for: &str) -> Running {
    let file = topology();
    let path = file.path().to_path_buf();
    start_file(run_for, &path, Some(file))
}

/// Starts the topology file `path` (kept alive by `file`, if temporary).
fn start_file(
    run_for: &str,
    path: &std::path::Path,
    file: Option<tempfile::NamedTempFile>,
) -> Running {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .env_remove("RUST_LOG")
        .env_remove("SENTENCES")
        .args(["run", "--for", run_for, "--http", "127.0.0.1:0"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo run");
    let addr = topo_test_support::http_address(&mut child);
    Running {
        child,
        addr,
        _file: file,
    }
}

/// Runs `topo ARGS` to its end (bounded by [`WAIT`]).
fn topo(args: &[&str]) -> std::process::Output {
    let out = assert_cmd::Command::cargo_bin("topo")
        .expect("the topo binary")
        .env_remove("RUST_LOG")
        .args(args)
        .timeout(WAIT)
        .output()
        .expect("run topo");
    assert!(
        out.status.code().is_some(),
        "topo {args:?} did not end by itself within {WAIT:?}"
    );
    out
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `("split", 1, "default", "cow")` from `split[1] default: (word="cow")`.
fn parse_out(line: &str) -> Option<(&str, u32, &str, &str)> {
    let (head, fields) = line.split_once(": (")?;
    let (task, stream) = head.split_once(' ')?;
    let (component, index) = task.strip_suffix(']')?.split_once('[')?;
    let word = fields.strip_prefix("word=\"")?.strip_suffix("\")")?;
    Some((component, index.parse().ok()?, stream, word))
}

#[test]
fn tap_prints_tuples_of_the_component_with_their_stream_and_field_names() {
    let t = start("120s");
    let out = topo(&["tap", &t.addr, "split", "--limit", "6"]);
    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 6, "exactly --limit lines: {lines:?}");
    for line in &lines {
        let (component, index, stream, word) =
            parse_out(line).unwrap_or_else(|| panic!("not a tuple line: {line:?}"));
        assert_eq!((component, stream), ("split", "default"), "{line}");
        assert!(index < 2, "split has 2 tasks: {line}");
        assert!(
            words().contains(&word),
            "{word:?} is not a word of the sentences"
        );
    }
    // The spout's tuples carry whole sentences in the field `sentence`.
    let out = topo(&[
        "tap",
        &format!("http://{}", t.addr),
        "sentences",
        "--limit",
        "2",
    ]);
    assert!(out.status.success(), "{out:?}");
    for line in stdout_lines(&out) {
        let sentence = line
            .strip_prefix("sentences[0] default: (sentence=\"")
            .and_then(|l| l.strip_suffix("\")"))
            .unwrap_or_else(|| panic!("not a sentence line: {line:?}"));
        assert!(SENTENCES.contains(&sentence), "{sentence:?}");
    }
}

// `topo tap` on a running example, examples/dashboard.toml: what enters its throttled stage
// `to_api` are the counts of the `count` bolt, word and count.
#[test]
fn tap_shows_the_tuples_entering_a_stage_of_a_running_example() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dashboard.toml");
    let t = start_file("120s", &example, None);
    let out = topo(&["tap", &t.addr, "to_api", "--in", "--limit", "3"]);
    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        // e.g. to_api[5] <- count[3] default: (word="jumped", count=12)
        let (to, rest) = line
            .split_once(" <- ")
            .unwrap_or_else(|| panic!("not an input line: {line:?}"));
        assert!(to.starts_with("to_api["), "{line}");
        assert!(rest.starts_with("count["), "{line}");
        assert!(
            rest.contains(" default: (word=\"") && rest.contains(", count="),
            "{line}"
        );
    }
}

#[test]
fn json_lines_carry_time_component_task_stream_direction_and_named_fields() {
    let t = start("120s");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let out = topo(&["tap", &t.addr, "split", "--json", "--limit", "3"]);
    assert!(out.status.success(), "{out:?}");
    let tuples: Vec<serde_json::Value> = stdout_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v: &serde_json::Value| v.get("fields").is_some())
        .collect();
    assert_eq!(tuples.len(), 3);
    for v in tuples {
        assert_eq!(v["component"], "split", "{v}");
        assert_eq!(v["direction"], "out", "{v}");
        assert_eq!(v["stream"], "default", "{v}");
        assert!(v["task_index"].as_u64().is_some_and(|i| i < 2), "{v}");
        // split's tasks are ids 1 and 2 (the spout's is 0).
        assert!(v["task"].as_u64().is_some_and(|t| t == 1 || t == 2), "{v}");
        assert!(
            v["time_ms"].as_i64().is_some_and(|t| t >= before - 1000),
            "{v}"
        );
        assert!(v.get("source").is_none(), "{v}");
        let fields = v["fields"].as_array().expect("fields");
        assert_eq!(fields.len(), 1, "{v}");
        assert_eq!(fields[0]["name"], "word", "{v}");
        let word = fields[0]["value"].as_str().expect("a string value");
        assert!(words().contains(&word), "{v}");
    }
}

#[test]
fn tap_in_shows_the_tuples_entering_a_bolt_and_where_they_came_from() {
    let t = start("120s");
    let out = topo(&["tap", &t.addr, "count", "--in", "--limit", "4"]);
    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for line in &lines {
        // count[i] <- split[j] default: (word="...")
        let (me, rest) = line
            .split_once(" <- ")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(me == "count[0]" || me == "count[1]", "{line}");
        let (component, index, stream, word) =
            parse_out(rest).unwrap_or_else(|| panic!("not a tuple line: {line:?}"));
        assert_eq!((component, stream), ("split", "default"), "{line}");
        assert!(index < 2 && words().contains(&word), "{line}");
    }
}

#[test]
fn tap_keeps_to_its_rate_and_reports_what_it_skipped() {
    // 2,000 sentences/s are 8,000 words/s out of split; at 4/s with a bucket of 4, the 10th
    // tuple cannot come before (10 - 4) / 4 = 1.5 s after the first.
    let t = start("120s");
    let started = Instant::now();
    let out = topo(&[
        "tap", &t.addr, "split", "--json", "--rate", "4", "--limit", "10",
    ]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = stdout_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let times: Vec<i64> = lines.iter().filter_map(|v| v["time_ms"].as_i64()).collect();
    assert_eq!(times.len(), 10, "{lines:?}");
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(times[9] - times[0] >= 1499, "{times:?}");
    let skipped: u64 = lines.iter().filter_map(|v| v["skipped"].as_u64()).sum();
    assert!(
        skipped > 0,
        "a second of 8,000 words/s at 4/s skips some, and says so: {lines:?}"
    );
}

#[test]
fn an_unknown_component_or_endpoint_is_named_in_the_error() {
    let t = start("120s");
    let out = topo(&["tap", &t.addr, "splt"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no component `splt` in this topology; did you mean `split`?"),
        "{err}"
    );
    assert!(
        err.contains("(its components: sentences, split, count)"),
        "{err}"
    );

    let out = topo(&["tap", &t.addr, "sentences", "--in"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`sentences` is a spout: it executes no input"),
        "{err}"
    );

    let out = topo(&["tap", &t.addr, "split", "--rate", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--rate") && err.contains("tuples per second"),
        "{err}"
    );

    // An address nobody serves: taken, then given back.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    for args in [vec!["tap", &addr, "split"], vec!["top", &addr, "--once"]] {
        let out = topo(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("cannot reach {addr}")), "{err}");
    }
}

#[test]
fn tap_ends_when_the_topology_stops() {
    let t = start("3s");
    let out = topo(&["tap", &t.addr, "split", "--rate", "1"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the tap ended: the topology stopped"), "{err}");
    assert!(
        !stdout_lines(&out).is_empty(),
        "a tuple a second for about 3 s"
    );
}

#[test]
fn top_once_prints_every_component_with_live_rates() {
    let t = start("120s");
    let out = topo(&["top", &t.addr, "--once", "--interval", "500ms"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("topology tap-check, uptime "),
        "{text}"
    );
    assert!(
        lines[1].starts_with("COMPONENT  KIND   TASKS  TUPLES/S  ACKED/S  FAILED  TIMED OUT"),
        "{text}"
    );
    let row = |id: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row for {id}: {text}"))
            .split_whitespace()
            .collect()
    };
    for (id, kind, tasks) in [
        ("sentences", "spout", "1"),
        ("split", "bolt", "2"),
        ("count", "bolt", "2"),
        ("__acker", "acker", "1"),
    ] {
        let r = row(id);
        assert_eq!((r[1], r[2]), (kind, tasks), "{text}");
    }
    // The spout emits about 2,000 sentences a second (paced in ~5 ms releases).
    let rate: f64 = row("sentences")[3].parse().expect("a rate");
    assert!((1000.0..3000.0).contains(&rate), "{text}");
}

// Guards: `topo top` and the endpoint (whose figures the dashboard shows) name the same
// bottleneck — the throttled bolt of examples/dashboard.toml — as top only shows what the
// endpoint computes.
#[test]
fn top_names_the_bottleneck_the_endpoint_names() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dashboard.toml");
    let t = start_file("120s", &example, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let named = |window: &str| -> Option<String> {
        let url = format!("http://{}/api/metrics?window={window}", t.addr);
        let body = rt
            .block_on(async { reqwest::get(&url).await?.text().await })
            .expect("an answer from /api/metrics");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        json["figures"]["bottleneck"]["id"]
            .as_str()
            .map(str::to_string)
    };
    // The throttle saturates within a few seconds. Until then there may be no bottleneck, or a
    // passing one: on a loaded machine one run named the acker, whose queue was over half full
    // in that first window. Once the throttle is busy, its capacity comes before any queue.
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let id = named("1s");
        if id.as_deref() == Some("to_api") {
            break;
        }
        seen.extend(id);
        assert!(
            start.elapsed() < WAIT,
            "the endpoint did not name the throttle within {WAIT:?}; it named {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = topo(&["top", &t.addr, "--once", "--interval", "1s"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let marked: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("<- bottleneck"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(marked, ["to_api"], "{text}");
}

#[test]
fn top_draws_every_component_under_a_terminal_and_quits_on_q() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};

    let t = start("120s");
    let (rows, cols) = (30u16, 140u16);
    let pair = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pseudo-terminal");
    let mut cmd = CommandBuilder::new(assert_cmd::cargo::cargo_bin("topo"));
    cmd.args(["top", &t.addr]);
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("RUST_LOG");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn topo top");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let mut writer = pair.master.take_writer().expect("pty writer");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut screen = vt100::Parser::new(
        rows.try_into().expect("rows"),
        cols.try_into().expect("cols"),
        0,
    );
    let ids = ["sentences", "split", "count", "__acker"];
    let start = Instant::now();
    loop {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
            screen.process(&bytes);
        }
        let text = screen.screen().contents();
        if ids.iter().all(|id| text.contains(id)) && text.contains("live, every") {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "not every component on screen within {WAIT:?}:\n{text}"
        );
    }
    assert!(
        screen.screen().alternate_screen(),
        "the view takes the alternate screen"
    );
    let text = screen.screen().contents();
    assert!(text.contains("topo top: tap-check"), "{text}");
    assert!(text.contains("CAPACITY"), "{text}");

    writer.write_all(b"q").expect("send q");
    writer.flush().expect("flush");
    let start = Instant::now();
    let status = loop {
        while let Ok(bytes) = rx.try_recv() {
            screen.process(&bytes);
        }
        if let Some(status) = child.try_wait().expect("poll topo top") {
            break status;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("topo top did not quit on q within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    // What it wrote before ending gave the terminal back: the main screen again.
    let start = Instant::now();
    while screen.screen().alternate_screen() && start.elapsed() < Duration::from_secs(5) {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(50)) {
            screen.process(&bytes);
        }
    }
    assert!(
        !screen.screen().alternate_screen(),
        "the terminal was left in the alternate screen"
    );
}
