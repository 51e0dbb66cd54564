//! The `http` spout through the real `topo` binary: a topology file listening on loopback,
//! records POSTed with reqwest, printed on stdout; a malformed body refused with 400 and printed
//! by the `error` sink; Ctrl-C ends the run with every record acked.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use topo_test_support::temp_topology;

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(30);

const TOPOLOGY: &str = r#"
name = "http-ingest"

[spouts.ingest]
kind = "http"
address = "127.0.0.1:${HTTP_PORT}"
path = "/ingest"
fields = ["host", "status"]
auth_token = "${INGEST_TOKEN}"

[bolts.print]
kind = "stdout"
inputs = [{ from = "ingest" }]

[bolts.rejects]
kind = "stdout"
format = "pretty"
show_source = true
inputs = [{ from = "ingest", stream = "error" }]
"#;

/// A port free a moment ago (the topology binds it right after).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Collects the lines of a child's output in a thread.
fn collect(out: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            l.lock().expect("lock").push(line);
        }
    });
    lines
}

/// Kills the child if the test fails before it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends SIGINT to the process `pid`.
fn interrupt(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

// Guards the http spout end to end: POSTed NDJSON and JSON records appear on stdout once each,
// each request answered 200; a malformed body is refused with 400 naming the line and printed
// by the rejects sink; a missing token is 401; SIGINT drains and exits 0 with every record acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_records_reach_stdout_through_the_binary() {
    let file = temp_topology(TOPOLOGY);
    let port = free_port();
    let child = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .env_remove("RUST_LOG")
        .env("HTTP_PORT", port.to_string())
        .env("INGEST_TOKEN", "t0ken")
        .args(["run", "--status-interval", "50ms"])
        .arg(file.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo");
    let mut child = Guard(child);
    let stdout = collect(child.0.stdout.take().expect("piped"));
    let stderr = collect(child.0.stderr.take().expect("piped"));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let start = Instant::now();
    loop {
        let ok = client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
        if ok {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "no /health: {:#?}",
            stderr.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let post = |content_type: &'static str, body: String, token: Option<&'static str>| {
        let mut req = client
            .post(format!("{base}/ingest"))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.expect("a response");
            (r.status().as_u16(), r.text().await.expect("a body"))
        }
    };

    const REQUESTS: usize = 5;
    const RECORDS: usize = 40;
    let mut want = Vec::new();
    for q in 0..REQUESTS {
        let mut body = String::new();
        for i in 0..RECORDS {
            let host = format!("h{q}-{i}");
            body.push_str(&format!(
                "{{\"host\":\"{host}\",\"status\":{},\"x\":1}}\n",
                200 + i
            ));
            want.push((host, 200 + i as i64));
        }
        assert_eq!(
            post("application/x-ndjson", body, Some("t0ken")).await,
            (200, format!("{{\"accepted\":{RECORDS}}}"))
        );
    }
    let (status, _) = post(
        "application/json",
        r#"[{"host":"j1"},{"host":"j2","status":503}]"#.into(),
        Some("t0ken"),
    )
    .await;
    assert_eq!(status, 200);
    want.push(("j1".into(), -1));
    want.push(("j2".into(), 503));
    let (status, body) = post(
        "application/x-ndjson",
        "{\"host\":\"ok\"}\n{\"host\":\n".into(),
        Some("t0ken"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("line 2"), "{body}");
    let (status, _) = post("application/json", "{}".into(), None).await;
    assert_eq!(status, 401);

    // Each 200 came after the stdout sink wrote and acked the records; wait for the pipe.
    let n = want.len();
    let start = Instant::now();
    while stdout.lock().expect("lock").len() < n + 1 {
        assert!(
            start.elapsed() < WAIT,
            "stdout: {:#?}",
            stdout.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    interrupt(child.0.id());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(start.elapsed() < WAIT, "topo did not exit after SIGINT");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // The reader threads end with the pipes.
    let start = Instant::now();
    while !stderr
        .lock()
        .expect("lock")
        .iter()
        .any(|l| l.contains(" acked "))
    {
        assert!(start.elapsed() < WAIT, "no final status");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = stderr.lock().expect("lock").clone();
    assert!(exit.success(), "{exit:?}: {err:#?}");

    let out = stdout.lock().expect("lock").clone();
    let mut got = Vec::new();
    let mut rejects = Vec::new();
    for l in &out {
        if let Some(r) = l.strip_prefix("ingest:error ") {
            rejects.push(r.to_string());
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        got.push((
            v["host"].as_str().expect("host").to_string(),
            v["status"].as_i64().unwrap_or(-1),
        ));
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(2),
            "only the fields: {l}"
        );
    }
    got.sort();
    want.sort();
    assert_eq!(got, want, "each record printed once");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(rejects[0].contains("line 2"), "{rejects:?}");

    let last = err
        .iter()
        .rev()
        .find(|l| l.contains(" acked "))
        .expect("a status line");
    assert!(
        last.contains(&format!(" acked {n} failed 0 timeout 0 pending 0")),
        "final status: {last}"
    );
}
