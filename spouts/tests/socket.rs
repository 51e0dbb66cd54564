//! The `socket` spout against real peers over loopback: reconnection, many clients, bad lines,
//! and replay of failed lines from its in-memory pending buffer.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_runtime::{
    BasicBolt, BasicCollector, BoltFactory, BoxError, TopologyHandle, Tuple, Value,
};
use topo_spouts::{Encoding, ReconnectOptions, SocketMode, SocketOptions, SocketSpout};

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(10);

fn client_options(address: String) -> SocketOptions {
    SocketOptions {
        mode: SocketMode::Client,
        address,
        reconnect: ReconnectOptions {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            attempts: Some(0),
            max_retries: None,
        },
        ..SocketOptions::default()
    }
}

/// Runs `spout` into a capture of its `default` and `error` streams.
fn run(spout: &SocketSpout, sink: &CaptureBolt) -> TopologyHandle {
    let mut b = TopologyBuilder::new("socket");
    let s = spout.clone();
    b.set_spout("lines", move || s.clone(), 1);
    b.set_bolt("sink", sink.factory(), 1)
        .shuffle_grouping("lines")
        .shuffle_grouping_stream("lines", "error");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

/// The first field of every tuple captured on `stream`, as text.
fn lines(sink: &CaptureBolt, stream: &str) -> Vec<String> {
    sink.tuples()
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| match &c.values[0] {
            Value::Str(s) => s.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// Guards that a client spout reconnects after the server closes the connection, and that the
// lines of both connections arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_the_server_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let spout = SocketSpout::new(client_options(addr)).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);

    let (mut first, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a first connection")
        .expect("accept");
    let before: Vec<String> = (0..50).map(|i| format!("before {i}")).collect();
    first
        .write_all(format!("{}\n", before.join("\n")).as_bytes())
        .await
        .expect("write");
    first.shutdown().await.expect("shutdown");
    drop(first);

    let (mut second, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a reconnection")
        .expect("accept");
    let after: Vec<String> = (0..50).map(|i| format!("after {i}")).collect();
    second
        .write_all(format!("{}\n", after.join("\n")).as_bytes())
        .await
        .expect("write");

    until("100 lines", || sink.len() >= 100).await;
    let mut want = before.clone();
    want.extend(after.iter().cloned());
    assert_eq!(sorted(lines(&sink, "default")), sorted(want));
    assert_eq!(spout.counters().connections(), 2);
    assert_eq!(spout.counters().lines(), 100);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that a server spout reads every line of several concurrent clients, each tagged with
// its client's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reads_every_line_of_concurrent_clients() {
    let spout = SocketSpout::new(SocketOptions {
        mode: SocketMode::Server,
        address: "127.0.0.1:0".into(),
        ..SocketOptions::default()
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);
    until("the server to listen", || spout.local_addr().is_some()).await;
    let addr = spout.local_addr().expect("listening");

    const CLIENTS: usize = 8;
    const LINES: usize = 500;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let me = s.local_addr().expect("local addr").to_string();
            for l in 0..LINES {
                s.write_all(format!("client {c} line {l}\n").as_bytes())
                    .await
                    .expect("write");
            }
            s.shutdown().await.expect("shutdown");
            me
        }));
    }
    let mut peers = BTreeMap::new();
    for (c, t) in clients.into_iter().enumerate() {
        peers.insert(c, t.await.expect("client ran"));
    }

    until("every line", || sink.len() >= CLIENTS * LINES).await;
    let got = sink.tuples();
    assert_eq!(got.len(), CLIENTS * LINES);
    let mut seen = HashSet::new();
    for t in &got {
        let (Value::Str(line), Value::Str(peer)) = (&t.values[0], &t.values[1]) else {
            panic!("unexpected tuple {:?}", t.values);
        };
        let c: usize = line
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("client");
        assert_eq!(peer.as_str(), peers[&c], "the peer of {line}");
        assert!(seen.insert(line.to_string()), "{line} twice");
    }
    assert_eq!(spout.counters().connections(), CLIENTS as u64);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that an oversize line and a line of invalid UTF-8 (strict) go to the `error` stream,
// counted, and that the lines after them still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_invalid_lines_go_to_error_and_reading_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut opts = client_options(listener.local_addr().expect("addr").to_string());
    opts.max_line_bytes = 16;
    opts.encoding = Encoding::Strict;
    opts.until_eof = true;
    let spout = SocketSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);
    let (mut conn, _) = listener.accept().await.expect("accept");
    let mut input = b"first\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend(b"\nbad \xff\xfe byte\nsecond\r\nexactly 16 bytes\n");
    input.extend(b"seventeen bytes!!\nshort\nend, no \\n");
    conn.write_all(&input).await.expect("write");
    conn.shutdown().await.expect("shutdown");
    drop(conn);

    handle.wait_until_idle(WAIT).await.expect("idle");
    assert_eq!(
        lines(&sink, "default"),
        [
            "first",
            "second",
            "exactly 16 bytes",
            "short",
            "end, no \\n"
        ]
    );
    let errors: Vec<(String, String)> = sink
        .tuples()
        .iter()
        .filter(|c| c.stream == "error")
        .map(|c| (c.values[0].to_string(), c.values[1].to_string()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].0.contains("max_line_bytes = 16"), "{errors:?}");
    assert_eq!(errors[0].1, "x".repeat(1024), "raw keeps the first KiB");
    assert!(errors[1].0.contains("invalid UTF-8"), "{errors:?}");
    assert_eq!(errors[1].1, "bad \u{fffd}\u{fffd} byte");
    assert_eq!(
        errors[2],
        (
            "line longer than max_line_bytes = 16".to_string(),
            "seventeen bytes!!".to_string()
        ),
        "raw ends with its line"
    );
    assert_eq!(spout.counters().oversize(), 2);
    assert_eq!(spout.counters().invalid_utf8(), 1);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards the lossy and bytes encodings: invalid UTF-8 replaced by U+FFFD, or kept as bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_replaces_invalid_utf8_and_bytes_keeps_it() {
    for (encoding, want) in [
        (Encoding::Lossy, Value::from("a\u{fffd}b")),
        (Encoding::Bytes, Value::from(b"a\xffb".to_vec())),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut opts = client_options(listener.local_addr().expect("addr").to_string());
        opts.encoding = encoding;
        opts.until_eof = true;
        let spout = SocketSpout::new(opts).expect("valid options");
        let sink = CaptureBolt::new();
        let handle = run(&spout, &sink);
        let (mut conn, _) = listener.accept().await.expect("accept");
        conn.write_all(b"a\xffb\n").await.expect("write");
        drop(conn);
        handle.wait_until_idle(WAIT).await.expect("idle");
        let got: Vec<Value> = sink.tuples().iter().map(|c| c.values[0].clone()).collect();
        assert_eq!(got, [want], "{encoding:?}");
        handle.stop(Duration::from_secs(5)).await;
    }
}

/// Fails the first delivery of each line, records every later one.
#[derive(Clone, Default)]
struct FailOnce {
    failed: Arc<Mutex<HashSet<String>>>,
    delivered: Arc<Mutex<Vec<String>>>,
}

impl BasicBolt for FailOnce {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let line = input.values()[0].to_string();
        if self.failed.lock().expect("lock").insert(line.clone()) {
            return Err(format!("first delivery of {line} fails").into());
        }
        self.delivered.lock().expect("lock").push(line);
        Ok(())
    }
}

// Guards replay from the in-memory pending buffer: with a bolt that fails each line once, every
// line is delivered again and acked exactly once, and the spout (until_eof) ends after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lines_are_replayed_and_each_acked_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut opts = client_options(listener.local_addr().expect("addr").to_string());
    opts.until_eof = true;
    let spout = SocketSpout::new(opts).expect("valid options");
    let bolt = FailOnce::default();
    let mut b = TopologyBuilder::new("replay");
    let s = spout.clone();
    b.set_spout("lines", move || s.clone(), 1);
    let f = bolt.clone();
    b.set_bolt("flaky", BoltFactory::basic(move || f.clone()), 2)
        .shuffle_grouping("lines");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    const N: usize = 300;
    let (mut conn, _) = listener.accept().await.expect("accept");
    let sent: Vec<String> = (0..N).map(|i| format!("line {i}")).collect();
    conn.write_all(format!("{}\n", sent.join("\n")).as_bytes())
        .await
        .expect("write");
    drop(conn);

    let m = handle.wait_until_idle(WAIT).await.expect("idle");
    let lines = m.component("lines").expect("the spout's figures");
    assert_eq!(lines.acked(), N as u64, "each line acked exactly once");
    assert_eq!(lines.failed(), N as u64, "each line failed once");
    assert_eq!(lines.pending(), 0);
    assert_eq!(lines.emitted(), 2 * N as u64, "each line emitted twice");
    let delivered = sorted(bolt.delivered.lock().expect("lock").clone());
    assert_eq!(delivered, sorted(sent));
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that bad options are refused with a message naming the option and the value.
#[test]
fn bad_options_are_named() {
    let bad = [
        (
            SocketOptions {
                address: "nohost".into(),
                ..SocketOptions::default()
            },
            "`address` = \"nohost\"",
        ),
        (
            SocketOptions {
                address: "h:1".into(),
                max_line_bytes: 0,
                ..SocketOptions::default()
            },
            "`max_line_bytes` = 0",
        ),
        (
            SocketOptions {
                address: "h:1".into(),
                mode: SocketMode::Server,
                until_eof: true,
                ..SocketOptions::default()
            },
            "`until_eof`",
        ),
        (
            SocketOptions {
                address: "h:1".into(),
                reconnect: ReconnectOptions {
                    backoff: Duration::from_secs(2),
                    max_backoff: Duration::from_secs(1),
                    attempts: Some(0),
                    max_retries: None,
                },
                ..SocketOptions::default()
            },
            "`reconnect.max_backoff` = \"1s\"",
        ),
    ];
    for (opts, want) in bad {
        let err = SocketSpout::new(opts).err().expect("refused");
        assert!(err.contains(want), "{err:?} should name {want}");
    }
}

// Guards `reconnect.attempts`: a client that finds no server gives up after that many tries in a
// row, and the spout is then exhausted (the topology becomes idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gives_up_after_the_attempts_and_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let mut opts = client_options(addr);
    opts.reconnect.attempts = Some(3);
    let spout = SocketSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);
    handle.wait_until_idle(WAIT).await.expect("idle");
    assert_eq!(spout.counters().connections(), 0);
    assert!(sink.is_empty());
    handle.stop(Duration::from_secs(5)).await;
}
