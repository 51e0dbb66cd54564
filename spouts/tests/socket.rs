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

#[cfg(feature = "tls")]
/// TLS streams of the tests' own peers, with the test certificates.
mod peer {
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::{TlsAcceptor, TlsConnector};
    use topo_spouts::connector::tls::{Identity, Roots, TlsOptions, Verify};
    use topo_test_support::tls;

    /// A client trusting `ca`, presenting `cert` (and its key) when given.
    pub fn connector(ca: &str, cert: Option<(&str, &str)>) -> TlsConnector {
        let options = TlsOptions {
            ca: Some(tls::file(ca)),
            cert: cert.map(|(c, _)| tls::file(c)),
            key: cert.map(|(_, k)| tls::file(k)),
        };
        let config = options
            .load("tls")
            .expect("the test certificates")
            .client_config(Verify::Full)
            .expect("a client configuration");
        TlsConnector::from(Arc::new(config))
    }

    /// Connects to `addr` with `connector` and writes `text`; the handshake's or the write's
    /// error, if any.
    pub async fn send(
        connector: &TlsConnector,
        addr: std::net::SocketAddr,
        text: &str,
    ) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("a name");
        let mut stream = connector.connect(name, tcp).await?;
        stream.write_all(text.as_bytes()).await?;
        stream.shutdown().await
    }

    /// A TLS server with the test server certificate, asking clients for a certificate signed
    /// by the test CA when `client_ca` is true.
    pub async fn server(client_ca: bool) -> (TcpListener, TlsAcceptor) {
        let identity = Identity::load(
            ("cert", &tls::file("server.crt")),
            ("key", &tls::file("server.key")),
        )
        .expect("the server certificate");
        let roots = client_ca.then(|| Roots::load("ca", &tls::file("ca.crt")).expect("the CA"));
        let config = identity
            .server_config_with(roots.as_ref(), &[])
            .expect("a server configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        (listener, TlsAcceptor::from(Arc::new(config)))
    }
}

// Guards the server mode over TLS with client certificates (`tls_cert`, `tls_key`,
// `tls_client_ca`): a client with a certificate signed by the CA is read; a plain-text client,
// a client without a certificate and a client whose certificate another CA signed are each
// refused and counted, their bytes never emitted; the server goes on accepting.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_reads_certified_clients_and_refuses_the_others() {
    use topo_test_support::tls;
    let spout = SocketSpout::new(SocketOptions {
        mode: SocketMode::Server,
        address: "127.0.0.1:0".into(),
        tls_cert: Some(tls::file("server.crt")),
        tls_key: Some(tls::file("server.key")),
        tls_client_ca: Some(tls::file("ca.crt")),
        ..SocketOptions::default()
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);
    until("listening", || spout.local_addr().is_some()).await;
    let addr = spout.local_addr().expect("addr");

    let trusted = peer::connector("ca.crt", Some(("client.crt", "client.key")));
    peer::send(&trusted, addr, "first\nsecond\n")
        .await
        .expect("a client with a certificate of the CA");
    until("2 lines", || sink.len() >= 2).await;

    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(b"plain text\n").await.expect("write");
    until("the plain client refused", || {
        spout.counters().tls_refused() >= 1
    })
    .await;

    // TLS 1.3: the client's handshake ends before the server has checked its certificate, so
    // the refusal shows on the server's side (and in the client's next read).
    let anonymous = peer::connector("ca.crt", None);
    let _ = peer::send(&anonymous, addr, "no certificate\n").await;
    until("the client without a certificate refused", || {
        spout.counters().tls_refused() >= 2
    })
    .await;
    let stranger = peer::connector("ca.crt", Some(("other-client.crt", "other-client.key")));
    let _ = peer::send(&stranger, addr, "other CA\n").await;
    until("the client of another CA refused", || {
        spout.counters().tls_refused() >= 3
    })
    .await;

    peer::send(&trusted, addr, "third\n")
        .await
        .expect("still serving");
    until("3 lines", || sink.len() >= 3).await;
    assert_eq!(
        sorted(lines(&sink, "default")),
        ["first", "second", "third"],
        "only the certified clients' lines"
    );
    assert_eq!(spout.counters().connections(), 2);
    assert_eq!(spout.counters().tls_refused(), 3);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards the client mode over TLS (`tls = { ca, cert, key }`): the spout verifies the server
// with the CA, presents its client certificate to a server that requires one, and reads the
// lines; a spout trusting only the system's authorities refuses the server (each attempt counted,
// then it gives up and ends), as does a TLS spout whose server speaks plain text.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_verifies_the_server_and_presents_its_certificate() {
    use topo_spouts::connector::tls::TlsOptions;
    use topo_test_support::tls;
    let (listener, acceptor) = peer::server(true).await;
    let addr = listener.local_addr().expect("addr");
    let mut opts = client_options(format!("localhost:{}", addr.port()));
    opts.tls = Some(TlsOptions {
        ca: Some(tls::file("ca.crt")),
        cert: Some(tls::file("client.crt")),
        key: Some(tls::file("client.key")),
    });
    let spout = SocketSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a connection")
        .expect("accept");
    let mut stream = tokio::time::timeout(WAIT, acceptor.accept(tcp))
        .await
        .expect("a handshake in time")
        .expect("the spout's certificate accepted");
    stream.write_all(b"over\ntls\n").await.expect("write");
    until("2 lines", || sink.len() >= 2).await;
    assert_eq!(sorted(lines(&sink, "default")), ["over", "tls"]);
    assert_eq!(spout.counters().connections(), 1);
    assert_eq!(spout.counters().tls_refused(), 0);
    handle.stop(Duration::from_secs(5)).await;

    // The system's authorities do not know the test CA: every attempt fails, then the spout
    // gives up and ends.
    let mut opts = client_options(format!("127.0.0.1:{}", addr.port()));
    opts.tls = Some(TlsOptions::default());
    opts.reconnect.attempts = Some(2);
    let untrusting = SocketSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&untrusting, &sink);
    let refuse = tokio::spawn(async move {
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.expect("accept");
            assert!(acceptor.accept(tcp).await.is_err(), "the client refuses");
        }
    });
    handle.wait_until_idle(WAIT).await.expect("idle");
    tokio::time::timeout(WAIT, refuse)
        .await
        .expect("both attempts")
        .expect("the server's side");
    assert_eq!(untrusting.counters().tls_refused(), 2);
    assert_eq!(untrusting.counters().connections(), 0);
    assert!(sink.is_empty());
    handle.stop(Duration::from_secs(5)).await;

    // A plain-text server: its lines are not TLS records, the handshake fails at once.
    let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut opts = client_options(plain.local_addr().expect("addr").to_string());
    opts.tls = Some(TlsOptions {
        ca: Some(tls::file("ca.crt")),
        ..TlsOptions::default()
    });
    opts.reconnect.attempts = Some(1);
    let spout = SocketSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink);
    let (mut tcp, _) = tokio::time::timeout(WAIT, plain.accept())
        .await
        .expect("a connection")
        .expect("accept");
    let _ = tcp.write_all(b"plain line\n").await;
    handle.wait_until_idle(WAIT).await.expect("idle");
    assert_eq!(spout.counters().tls_refused(), 1);
    assert!(sink.is_empty());
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that TLS options in the wrong mode, a missing key and unreadable files are refused
// with a message naming the option (and the file).
#[cfg(feature = "tls")]
#[test]
fn bad_tls_options_are_named() {
    use topo_spouts::connector::tls::TlsOptions;
    use topo_test_support::tls;
    let server = |f: fn(&mut SocketOptions)| {
        let mut o = SocketOptions {
            mode: SocketMode::Server,
            address: "127.0.0.1:0".into(),
            ..SocketOptions::default()
        };
        f(&mut o);
        o
    };
    let bad = [
        (
            server(|o| o.tls = Some(TlsOptions::default())),
            "option `tls` is for mode = \"client\"".to_string(),
        ),
        (
            server(|o| o.tls_cert = Some(tls::file("server.crt"))),
            "`tls_cert` needs `tls_key`".to_string(),
        ),
        (
            server(|o| o.tls_client_ca = Some(tls::file("ca.crt"))),
            "`tls_client_ca` needs `tls_cert` and `tls_key`".to_string(),
        ),
        (
            server(|o| {
                o.tls_cert = Some(tls::file("server.crt"));
                o.tls_key = Some(tls::file("client.key"));
            }),
            "not the certificate's".to_string(),
        ),
        (
            server(|o| {
                o.tls_cert = Some(tls::file("server.crt"));
                o.tls_key = Some(tls::file("server.key"));
                o.tls_client_ca = Some(tls::file("server.key"));
            }),
            format!(
                "option `tls_client_ca` = {}: it holds no PEM certificate",
                tls::file("server.key").display()
            ),
        ),
        (
            SocketOptions {
                address: "127.0.0.1:1".into(),
                tls_cert: Some(tls::file("server.crt")),
                ..SocketOptions::default()
            },
            "are for mode = \"server\"".to_string(),
        ),
        (
            SocketOptions {
                address: "127.0.0.1:1".into(),
                tls: Some(TlsOptions {
                    ca: Some("/nonexistent/ca.pem".into()),
                    ..TlsOptions::default()
                }),
                ..SocketOptions::default()
            },
            "option `tls.ca` = /nonexistent/ca.pem".to_string(),
        ),
    ];
    for (opts, want) in bad {
        let err = SocketSpout::new(opts).err().expect("refused");
        assert!(err.contains(&want), "{err:?} should say {want}");
    }
}
