//! Kinesis end to end, against a real Kinesis-compatible server (kinesalite, address in
//! `TOPO_KINESIS_ENDPOINT`, default `http://127.0.0.1:4567`):
//! - a 2-shard stream of N records read by the `kinesis` spout, through a bolt that fails tuples
//!   at random, into the `kinesis` sink writing another stream: every input record appears at
//!   least once in the output stream;
//! - `examples/kinesis_sensors.toml` run twice with `topo run --until-idle`: the readings put by
//!   the generator through the sink are read back by the spout and windowed, the second run
//!   resuming from the first run's checkpoints;
//! - a run killed with SIGKILL and restarted loses nothing;
//! - two processes of one topology share a 4-shard stream and one takes over the other's
//!   shards when it is killed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use topo_dsl::TopologyBuilder;
use topo_runtime::{
    BasicBolt, BasicCollector, BoltFactory, BoxError, OutputDeclarer, Tuple, values,
};
use topo_spouts::{BatchOptions, KinesisSinkOptions, KinesisWriter, RetryOptions};
use topo_spouts::{KinesisOptions, KinesisSpout, ReconnectOptions};
use topo_test_support::kinesis::{
    client, create_stream, delete_stream, endpoint, put_batched, read_all,
};
use topo_test_support::temp_topology;
use topo_test_support::unique;

const WAIT: Duration = Duration::from_secs(90);

/// The data of every record of a stream.
async fn data_of(c: &Client, stream: &str) -> Vec<String> {
    read_all(c, stream)
        .await
        .into_iter()
        .map(|r| r.data)
        .collect()
}

/// (partition key, data) for each record: keys spread over 11 values.
fn keyed(data: &[String]) -> Vec<(String, String)> {
    data.iter()
        .enumerate()
        .map(|(i, d)| (format!("key-{}", i % 11), d.clone()))
        .collect()
}

/// Passes (partition_key, data) on, failing about one tuple in `one_in` at random.
struct RandomFail {
    one_in: u32,
}

impl BasicBolt for RandomFail {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["partition_key", "data"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        if fastrand::u32(..self.one_in) == 0 {
            return Err("injected failure".into());
        }
        out.emit(values![
            input.str_field("partition_key")?,
            input.str_field("data")?
        ]);
        Ok(())
    }
}

// The issue's demonstration: N records in a 2-shard stream, spout -> bolt with random failures
// -> kinesis sink to another stream; every input appears at least once in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spout_to_failing_bolt_to_sink_delivers_every_record_at_least_once() {
    const N: usize = 1000;
    let c = client().await;
    let input = unique("in");
    let output = unique("out");
    create_stream(&c, &input, 2).await;
    create_stream(&c, &output, 2).await;
    let sent: Vec<String> = (0..N).map(|i| format!("record-{i}")).collect();
    put_batched(&c, &input, &keyed(&sent)).await;

    let state = tempfile::tempdir().expect("temp dir");
    let spout = KinesisSpout::new(KinesisOptions {
        stream: input.clone(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        state_dir: Some(state.path().to_path_buf()),
        stop_at_end: true,
        checkpoint_interval: Duration::from_millis(100),
        shard_refresh: Duration::from_millis(200),
        retry: ReconnectOptions {
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            attempts: Some(0),
            max_retries: None,
        },
        ..KinesisOptions::default()
    })
    .expect("valid spout options");
    let sink_opts = KinesisSinkOptions {
        stream: output.clone(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        partition_key_field: "partition_key".into(),
        data_field: Some("data".into()),
        batch: BatchOptions::new(100, 1 << 20, Duration::from_millis(50)),
        retry: RetryOptions {
            attempts: Some(5),
            max_retries: None,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        ..KinesisSinkOptions::default()
    };
    sink_opts.check().expect("valid sink options");
    let writer = KinesisWriter::new(sink_opts);

    let mut b = TopologyBuilder::new("kinesis-e2e");
    b.config_mut().max_spout_pending = Some(300);
    let s = spout.clone();
    b.set_spout("in", move || s.clone(), 2);
    b.set_bolt("flaky", BoltFactory::basic(|| RandomFail { one_in: 10 }), 2)
        .shuffle_grouping("in");
    let w = writer.clone();
    b.set_bolt("out", BoltFactory::full(move || w.clone().into_sink()), 2)
        .shuffle_grouping("flaky");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let m = handle.wait_until_idle(WAIT).await.expect("idle");
    let s = m.component("in").expect("the spout's figures");
    assert_eq!(s.acked(), N as u64, "every input acked once");
    assert!(s.failed() > 0, "failures were injected and replayed");
    handle.stop(Duration::from_secs(5)).await;

    let got = data_of(&c, &output).await;
    let got_set: HashSet<&str> = got.iter().map(String::as_str).collect();
    let missing: Vec<&String> = sent
        .iter()
        .filter(|d| !got_set.contains(d.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing from the output: {missing:?}");
    assert!(got.len() >= N);
    delete_stream(&c, &input).await;
    delete_stream(&c, &output).await;
}

/// Runs the example with these settings; returns the window rows and late readings printed.
fn run_example(
    stream: &str,
    state: &std::path::Path,
    count: usize,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let out = assert_cmd::Command::cargo_bin("topo")
        .expect("the topo binary")
        .env_remove("RUST_LOG")
        .env("STREAM", stream)
        .env("KINESIS_ENDPOINT", endpoint())
        .env("COUNT", count.to_string())
        .env("RATE", "2000")
        .env("STOP_AT_END", "true")
        .env("TOPO_STATE_DIR", state)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .args(["run", "--quiet", "--until-idle"])
        .args(extra)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/kinesis_sensors.toml"
        ))
        .timeout(WAIT)
        .output()
        .expect("run topo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "topo failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("readings").is_some() || v.get("record").is_some())
        .collect()
}

// The example file: readings go through the stream and come back as windows; over two runs
// every reading of the first run is counted. The second starts with empty state (`--fresh`: the
// generator puts another 500 readings, where a resume would find its count reached), and its
// kinesis spout goes on from the shard positions the first run's last checkpoint committed.
#[test]
fn the_example_puts_readings_and_reads_them_back_across_two_runs() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let stream = unique("example");
    rt.block_on(async { create_stream(&client().await, &stream, 2).await });
    let state = tempfile::tempdir().expect("temp dir");
    let first = run_example(&stream, state.path(), 500, &[]);
    let second = run_example(&stream, state.path(), 500, &["--fresh"]);
    let mut per_device: HashMap<String, u64> = HashMap::new();
    for row in first.iter().chain(&second) {
        // A window row counts its readings; a late reading (after its window fired: shards are
        // read side by side) is printed alone as (timestamp, record).
        let (device, n) = match row.get("record") {
            Some(r) => (r["device_id"].as_str().unwrap_or(""), 1),
            None => (
                row["device_id"].as_str().unwrap_or(""),
                row["readings"].as_u64().unwrap_or(0),
            ),
        };
        *per_device.entry(device.to_string()).or_default() += n;
    }
    let total: u64 = per_device.values().sum();
    assert!(
        total >= 500,
        "every reading of the first run was read back by one of the runs: {total} counted, {per_device:?}"
    );
    assert!(
        per_device.len() == 10,
        "the ten devices appear: {per_device:?}"
    );
    let in_stream = rt.block_on(async { data_of(&client().await, &stream).await });
    assert_eq!(in_stream.len(), 1000, "both runs put their readings");
    assert!(
        total <= in_stream.len() as u64,
        "no reading counted twice without a failure: {total}"
    );
    rt.block_on(async { delete_stream(&client().await, &stream).await });
}

/// A topology file: the `kinesis` spout on `input` -> the `kinesis` sink on `output`, reading
/// slowly (100 records a second per shard) so that a run can be killed midway.
fn relay_topology(input: &str, output: &str) -> tempfile::NamedTempFile {
    temp_topology(&format!(
        r#"
name = "kinesis-relay"

[spouts.in]
kind = "kinesis"
stream = "{input}"
endpoint = "{endpoint}"
region = "us-east-1"
poll_interval = "1s"
max_records = 100
checkpoint_interval = "100ms"
stop_at_end = true

[bolts.out]
kind = "kinesis"
stream = "{output}"
endpoint = "{endpoint}"
region = "us-east-1"
partition_key_field = "partition_key"
data_field = "data"
batch = {{ max_records = 50, interval = "50ms" }}
inputs = [{{ from = "in" }}]
"#,
        endpoint = endpoint()
    ))
}

fn topo(file: &std::path::Path, state: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("topo"));
    cmd.env_remove("RUST_LOG")
        .env("TOPO_STATE_DIR", state)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .args(["run", "--quiet", "--until-idle"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

// A process killed (SIGKILL) in the middle of a run loses nothing: the next run resumes from
// the checkpoints of acked records, and every input record is in the output stream at least
// once, with at most the records in flight at the kill written twice.
#[test]
fn a_killed_run_resumes_from_its_checkpoints_without_losing_records() {
    const N: usize = 3000;
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let input = unique("kill-in");
    let output = unique("kill-out");
    let sent: Vec<String> = (0..N).map(|i| format!("record-{i}")).collect();
    rt.block_on(async {
        let c = client().await;
        create_stream(&c, &input, 2).await;
        create_stream(&c, &output, 2).await;
        put_batched(&c, &input, &keyed(&sent)).await;
    });
    let state = tempfile::tempdir().expect("temp dir");
    let file = relay_topology(&input, &output);

    let mut child = topo(file.path(), state.path()).spawn().expect("spawn topo");
    let start = std::time::Instant::now();
    loop {
        let n = rt.block_on(async { data_of(&client().await, &output).await.len() });
        if n >= 300 {
            break;
        }
        assert!(
            child.try_wait().expect("poll the child").is_none(),
            "the first run ended before it could be killed"
        );
        assert!(start.elapsed() < WAIT, "the first run wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill topo");
    child.wait().expect("reap topo");
    let after_kill = rt.block_on(async { data_of(&client().await, &output).await.len() });
    assert!(after_kill < N, "killed midway ({after_kill} written)");

    let out = topo(file.path(), state.path())
        .output()
        .expect("run topo again");
    assert!(
        out.status.success(),
        "second run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rt.block_on(async { data_of(&client().await, &output).await });
    let got_set: HashSet<&str> = got.iter().map(String::as_str).collect();
    let missing: Vec<&String> = sent
        .iter()
        .filter(|d| !got_set.contains(d.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} records lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        got.len() < after_kill + N,
        "the second run resumed from the checkpoints, not the start: {} written, {after_kill} before the kill",
        got.len()
    );
    rt.block_on(async {
        let c = client().await;
        delete_stream(&c, &input).await;
        delete_stream(&c, &output).await;
    });
}

/// A relay that runs until stopped, re-listing shards every 200 ms, and prints each record
/// it reads (JSON lines with `shard` and `data`).
fn shared_relay_topology(input: &str, output: &str) -> tempfile::NamedTempFile {
    temp_topology(&format!(
        r#"
name = "kinesis-shared"

[spouts.in]
kind = "kinesis"
stream = "{input}"
endpoint = "{endpoint}"
region = "us-east-1"
poll_interval = "200ms"
checkpoint_interval = "100ms"
shard_refresh = "200ms"

[bolts.out]
kind = "kinesis"
stream = "{output}"
endpoint = "{endpoint}"
region = "us-east-1"
partition_key_field = "partition_key"
data_field = "data"
batch = {{ max_records = 100, interval = "50ms" }}
inputs = [{{ from = "in" }}]

[bolts.print]
kind = "stdout"
inputs = [{{ from = "in" }}]
"#,
        endpoint = endpoint()
    ))
}

/// Lines of a file that contain `what`.
fn count_in(path: &std::path::Path, what: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

/// The shards of the records printed to `path` whose data starts with `prefix`.
fn printed_shards(path: &std::path::Path, prefix: &str) -> HashSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["data"].as_str().is_some_and(|d| d.starts_with(prefix)))
        .filter_map(|v| v["shard"].as_str().map(str::to_string))
        .collect()
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// Two processes running the same topology with the same state directory share the shards of a
// 4-shard stream (the second one to start gets 2, handed back by the first); when one is killed
// (SIGKILL), the other takes its shards over, and every record reaches the output stream.
#[test]
fn two_processes_share_the_shards_and_one_takes_over_when_the_other_is_killed() {
    const N: usize = 1000;
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let input = unique("shared-in");
    let output = unique("shared-out");
    rt.block_on(async {
        let c = client().await;
        create_stream(&c, &input, 4).await;
        create_stream(&c, &output, 2).await;
    });
    let state = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let file = shared_relay_topology(&input, &output);
    let spawn = |name: &str| {
        let out = std::fs::File::create(logs.path().join(format!("{name}.out"))).expect("file");
        let err = std::fs::File::create(logs.path().join(format!("{name}.err"))).expect("file");
        std::process::Command::new(assert_cmd::cargo::cargo_bin("topo"))
            .env("RUST_LOG", "topo_spouts=info")
            .env("NO_COLOR", "1")
            .env("TOPO_STATE_DIR", state.path())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .arg("run")
            .arg(file.path())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn topo")
    };
    let (a_out, a_err) = (logs.path().join("a.out"), logs.path().join("a.err"));
    let (b_out, b_err) = (logs.path().join("b.out"), logs.path().join("b.err"));

    let mut a = spawn("a");
    eventually("the first process reads the 4 shards", || {
        count_in(&a_err, "reading shard") == 4
    });
    let mut b = spawn("b");
    eventually(
        "the second process reads 2 shards handed back by the first",
        || count_in(&b_err, "reading shard") == 2 && count_in(&a_err, "shard handed back") == 2,
    );
    let one: Vec<String> = (0..N).map(|i| format!("one-{i}")).collect();
    rt.block_on(async { put_batched(&client().await, &input, &keyed(&one)).await });
    let written = |rt: &tokio::runtime::Runtime| -> HashSet<String> {
        rt.block_on(async { data_of(&client().await, &output).await })
            .into_iter()
            .collect()
    };
    eventually("the first records are relayed", || {
        let got = written(&rt);
        one.iter().all(|d| got.contains(d))
    });
    let (sa, sb) = (
        printed_shards(&a_out, "one-"),
        printed_shards(&b_out, "one-"),
    );
    assert!(sa.is_disjoint(&sb), "a shard read by both: {sa:?} {sb:?}");
    assert_eq!((sa.len(), sb.len()), (2, 2), "{sa:?} {sb:?}");

    a.kill().expect("kill the first process");
    a.wait().expect("reap it");
    eventually("the second process takes the 4 shards over", || {
        count_in(&b_err, "reading shard") == 4
    });
    let two: Vec<String> = (0..N).map(|i| format!("two-{i}")).collect();
    rt.block_on(async { put_batched(&client().await, &input, &keyed(&two)).await });
    eventually("the second records are relayed", || {
        let got = written(&rt);
        one.iter().chain(&two).all(|d| got.contains(d))
    });
    b.kill().expect("kill the second process");
    b.wait().expect("reap it");
    assert_eq!(
        printed_shards(&b_out, "two-").len(),
        4,
        "b read every shard"
    );
    rt.block_on(async {
        let c = client().await;
        delete_stream(&c, &input).await;
        delete_stream(&c, &output).await;
    });
}
