//! Secrets stay secret: a password planted in a `postgres` URL, a `redis` URL, the `kinesis` and
//! `s3` sinks' secret keys, the `kafka` sink's SASL password (in `properties` and in `sasl`) and
//! OAUTHBEARER client secret, the `mqtt` spout's password and the endpoint's token is in none
//! of what topo prints or serves — `topo validate`, `topo graph`, the logs of a run at `-vv`
//! (whose connections all fail, so their errors are logged), `/api/topology`, `/api/metrics` and
//! `/metrics`; nor in the errors of options that echo an address holding it.

use std::process::{Command, Stdio};
use std::time::Duration;

use topo_test_support::temp_topology;

const SECRET: &str = "PlantedSecret-7c41";

fn topology() -> tempfile::NamedTempFile {
    temp_topology(&format!(
        r#"
name = "secret-check"

[spouts.s]
kind = "generator"
rate = 200

[bolts.pg]
kind = "postgres"
url = "postgres://topo:{SECRET}@127.0.0.1:1/test"
table = "t"
columns = ["sentence"]
inputs = [{{ from = "s" }}]

[bolts.rd]
kind = "redis"
url = "redis://:{SECRET}@127.0.0.1:1/0"
command = "set"
key = "k:{{sentence}}"
value = "sentence"
inputs = [{{ from = "s" }}]

[bolts.k]
kind = "kinesis"
stream = "x"
endpoint = "http://127.0.0.1:1"
region = "us-east-1"
access_key_id = "AKIATEST"
secret_access_key = "{SECRET}"
partition_key_field = "sentence"
inputs = [{{ from = "s" }}]

[bolts.produce]
kind = "kafka"
brokers = "127.0.0.1:1"
topic = "t"
properties = {{ "security.protocol" = "sasl_plaintext", "sasl.mechanisms" = "PLAIN", "sasl.username" = "u", "sasl.password" = "{SECRET}" }}
inputs = [{{ from = "s" }}]

[bolts.produce_sasl]
kind = "kafka"
brokers = "127.0.0.1:1"
topic = "t"
sasl = {{ mechanism = "SCRAM-SHA-512", username = "u", password = "{SECRET}" }}
inputs = [{{ from = "s" }}]

[bolts.produce_oauth]
kind = "kafka"
brokers = "127.0.0.1:1"
topic = "t"
sasl = {{ mechanism = "OAUTHBEARER", token_endpoint = "http://127.0.0.1:1/token", client_id = "app", client_secret = "{SECRET}" }}
inputs = [{{ from = "s" }}]

[spouts.mq]
kind = "mqtt"
broker = "127.0.0.1:1"
topics = ["t/#"]
username = "u"
password = "{SECRET}"

[bolts.archive]
kind = "s3"
url = "s3://bucket/x"
endpoint = "http://127.0.0.1:1"
access_key_id = "AKIATEST"
secret_access_key = "{SECRET}"
inputs = [{{ from = "s" }}]
"#
    ))
}

fn get(addr: &str, path: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .bearer_auth(SECRET)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("a response");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.text().await.expect("a body")
    })
}

#[test]
fn a_planted_secret_is_never_printed_or_served() {
    let file = topology();
    let path = file.path().to_str().expect("utf-8");
    let bin = assert_cmd::cargo::cargo_bin("topo");
    for args in [vec!["validate", path], vec!["graph", path]] {
        let out = Command::new(&bin).args(&args).output().expect("run topo");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(text).contains(SECRET),
                "topo {args:?} printed the secret"
            );
        }
    }

    let state = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(&bin)
        .env_remove("RUST_LOG")
        .env("TOPO_STATE_DIR", state.path())
        .env("TOPO_HTTP_TOKEN", SECRET)
        .args([
            "-vv",
            "run",
            "--for",
            "3s",
            "--drain-timeout",
            "1s",
            "--http",
            "127.0.0.1:0",
            path,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo run");
    // The address line comes first; the rest of stderr is read to the end below.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut said = String::new();
    let addr = loop {
        use std::io::BufRead;
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "topo ended before printing its address:\n{said}");
        said.push_str(&line);
        if let Some(rest) = line.strip_prefix("live figures: http://") {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    // The rest of stderr, read as it comes (a full pipe would stop the run).
    let rest = std::thread::spawn(move || {
        use std::io::Read;
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Let every sink fail to connect at least once, so their errors are logged.
    std::thread::sleep(Duration::from_millis(1500));
    for route in ["/api/topology", "/api/metrics", "/metrics"] {
        let body = get(&addr, route);
        assert!(!body.contains(SECRET), "{route} serves the secret");
    }
    let out = child.wait_with_output().expect("topo ends");
    said.push_str(&rest.join().expect("the reader"));
    assert!(
        said.contains("cannot connect to PostgreSQL") && said.contains("cannot connect to Redis"),
        "the connection errors were logged:\n{said}"
    );
    assert!(!said.contains(SECRET), "the logs hold the secret");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
}

// Guards option errors that echo an address: an MQTT broker, an HTTP sink URL, a Redis URL and a
// feed's base URL with credentials in them are refused or reported with the credentials shown as
// `***`.
#[test]
fn option_errors_do_not_echo_credentials() {
    let file = temp_topology(&format!(
        r#"
name = "secret-options"

[spouts.m]
kind = "mqtt"
broker = "mqtt://u:{SECRET}@127.0.0.1:1883"
topics = ["a/b"]

[spouts.f]
kind = "feed"
subreddits = ["news"]
user_agent = "test"
base = "ftp://u:{SECRET}@example.org/"

[bolts.h]
kind = "http"
url = "ftp://u:{SECRET}@example.org/in"
inputs = [{{ from = "m" }}]

[bolts.r]
kind = "redis"
url = "redis://:{SECRET}@127.0.0.1:notaport/0"
command = "set"
key = "k"
value = "topic"
inputs = [{{ from = "m" }}]
"#
    ));
    let out = Command::new(assert_cmd::cargo::cargo_bin("topo"))
        .args(["validate", file.path().to_str().expect("utf-8")])
        .output()
        .expect("run topo validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for component in ["spouts.m", "spouts.f", "bolts.h", "bolts.r"] {
        assert!(err.contains(component), "{component} not reported:\n{err}");
    }
    assert!(err.contains("`username` and `password`"), "{err}");
    assert!(err.contains("***@"), "{err}");
    assert!(
        !err.contains(SECRET),
        "an option error printed the secret:\n{err}"
    );
}
