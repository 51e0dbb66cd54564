//! The `mqtt` spout through the real `topo` binary and the local Mosquitto broker
//! (127.0.0.1:1883): `topo run` of a topology file mqtt -> stdout prints every message published,
//! sends a bad JSON payload to its `error` sink, and stops cleanly on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use topo_test_support::temp_topology;

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(30);

/// Sends SIGINT to the process `pid`.
fn interrupt(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Waits (bounded) until `cond` holds; `what` and `context()` go into the failure message.
fn until(what: &str, mut cond: impl FnMut() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// Guards the `mqtt` kind end to end: options from a topology file, JSON payload fields on
// stdout, a bad payload on the error stream, and a clean exit on SIGINT.
#[test]
fn mqtt_messages_are_printed_by_topo_run() {
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let prefix = format!("topo-cli-test/{run_id}");
    let topology = format!(
        r#"
name = "mqtt-to-stdout"

[spouts.readings]
kind = "mqtt"
broker = "mqtt://127.0.0.1:1883"
topics = ["{prefix}/+/reading"]
qos = 1
client_id = "topo-cli-test-{run_id}"
payload = "json"
fields = ["n"]
reconnect = {{ backoff = "20ms", max_backoff = "200ms" }}

[bolts.print]
kind = "stdout"
inputs = [{{ from = "readings" }}]

[bolts.rejects]
kind = "stdout"
format = "pretty"
show_source = true
inputs = [{{ from = "readings", stream = "error" }}]
"#
    );
    let file = temp_topology(&topology);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .env_remove("RUST_LOG")
        .args(["run", "--quiet"])
        .arg(file.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().expect("piped stdout");
    let l = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            l.lock().expect("lock").push(line);
        }
    });
    let stderr = child.stderr.take().expect("piped stderr");
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let e = errors.clone();
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            e.lock().expect("lock").push(line);
        }
    });
    let context = || {
        format!(
            "stdout: {:?}\nstderr: {:?}",
            lines.lock().expect("lock"),
            errors.lock().expect("lock")
        )
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut o = rumqttc::MqttOptions::new(format!("topo-cli-pub-{run_id}"), "127.0.0.1", 1883);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicBool::new(false));
    let (a, c) = (acked.clone(), connected.clone());
    let poller = runtime.spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => c.store(true, Relaxed),
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    let thread = std::thread::spawn(move || runtime.block_on(poller));
    until(
        "the publisher to connect",
        || connected.load(Relaxed),
        context,
    );
    let publish = |topic: String, payload: String| {
        client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("publish");
    };

    // Until topo has subscribed, a message is lost: publish probes until one is printed.
    let mut published = 0u64;
    let start = Instant::now();
    while !lines
        .lock()
        .expect("lock")
        .iter()
        .any(|l| l.contains("\"probe\""))
    {
        assert!(start.elapsed() < WAIT, "no probe printed:\n{}", context());
        publish(format!("{prefix}/probe/reading"), r#"{"n":"probe"}"#.into());
        published += 1;
        std::thread::sleep(Duration::from_millis(50));
    }

    const N: u64 = 200;
    for n in 0..N {
        publish(
            format!("{prefix}/d{}/reading", n % 5),
            format!(r#"{{"n":{n},"temperature":21.5}}"#),
        );
    }
    publish(format!("{prefix}/d0/reading"), "{not json".into());
    publish(format!("{prefix}/d0/other"), r#"{"n":-1}"#.into());
    published += N + 2;
    until(
        "the broker to ack every publication",
        || acked.load(Relaxed) >= published,
        context,
    );
    let numbers = || {
        lines
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["n"].as_u64())
            .collect::<std::collections::BTreeSet<u64>>()
    };
    until(
        "every message printed",
        || numbers().len() as u64 == N,
        context,
    );
    until(
        "the bad payload on the error stream",
        || {
            lines
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.starts_with("readings:error ") && l.contains("not valid JSON"))
        },
        context,
    );

    interrupt(child.id());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("topo did not exit after SIGINT:\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    reader.join().expect("stdout reader");
    err_reader.join().expect("stderr reader");
    assert!(status.success(), "exit status {status:?}:\n{}", context());

    let printed = lines.lock().expect("lock").clone();
    let first = printed
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["n"] == 0)
        .expect("message 0 printed");
    assert_eq!(first["topic"], format!("{prefix}/d0/reading"));
    assert_eq!(first["payload"]["temperature"], 21.5);
    assert!(
        !printed.iter().any(|l| l.contains("\"n\":-1")),
        "a topic that does not match the filter"
    );
    drop(client);
    drop(thread);
}
