//! `topo run --http` over TLS (`--http-tls-cert`, `--http-tls-key`): the endpoint serves https://
//! with the certificate given (checked by a client of the test's own that trusts the test CA),
//! refuses plain HTTP and clients that do not trust it, and `topo top` and `topo tap` reach it
//! with `--ca`; a certificate and key that do not belong together, or a missing file, stop the
//! run before it starts, naming the option.

use std::time::Duration;

use topo_test_support::{RunningTopo, tls};

const TOKEN: &str = "tls-Token-4417";
const WAIT: Duration = Duration::from_secs(60);

fn run_args(cert: &str, key: &str) -> Vec<String> {
    vec![
        "run".into(),
        "--for".into(),
        "120s".into(),
        "--http".into(),
        "127.0.0.1:0".into(),
        "--http-token".into(),
        TOKEN.into(),
        "--http-tls-cert".into(),
        tls::file(cert).display().to_string(),
        "--http-tls-key".into(),
        tls::file(key).display().to_string(),
    ]
}

/// A running `topo run --http 127.0.0.1:0` over TLS with a token, killed when dropped; its port.
fn start() -> (RunningTopo, String) {
    let args = run_args("server.crt", "server.key");
    let args: Vec<&str> = args[5..].iter().map(String::as_str).collect();
    let run = RunningTopo::start(&assert_cmd::cargo::cargo_bin("topo"), &args, &[]);
    let port = run.addr.rsplit(':').next().unwrap_or_default().to_string();
    (run, port)
}

/// GET `url` with the token, trusting the test CA when `trust`: the status, or the error.
fn get(url: &str, trust: bool) -> Result<u16, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if trust {
            let pem = std::fs::read(tls::file("ca.crt")).expect("the CA");
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"));
        }
        let client = b.build().expect("a client");
        match client.get(url).bearer_auth(TOKEN).send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                Err(text)
            }
        }
    })
}

fn topo(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("topo")
        .expect("the topo binary")
        .env_remove("RUST_LOG")
        .env_remove("TOPO_HTTP_TOKEN")
        .args(args)
        .timeout(WAIT)
        .output()
        .expect("run topo")
}

/// `topo ARGS`, which must stop before running with exit code 2 (clap's, or topo's own refusal):
/// what it said.
fn refused(args: &[&str]) -> String {
    let out = topo(args);
    assert_eq!(out.status.code(), Some(2), "topo {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// Guards the endpoint over TLS: https:// with the given certificate for a client trusting the
// test CA; plain HTTP and a client without the CA refused (an error, not a hang); `topo top`
// and `topo tap` through it with `--ca` and the token, and a clear error without `--ca`.
#[test]
fn the_endpoint_serves_https_and_the_clients_reach_it_with_their_ca() {
    let (_run, port) = start();
    let base = format!("https://localhost:{port}");
    for path in ["/health", "/api/metrics", "/metrics", "/"] {
        assert_eq!(get(&format!("{base}{path}"), true), Ok(200), "{path}");
    }
    let plain = get(&format!("http://127.0.0.1:{port}/health"), true);
    assert!(plain.is_err(), "plain HTTP to the TLS port: {plain:?}");
    let untrusted = get(&format!("{base}/health"), false).expect_err("a certificate not trusted");
    assert!(untrusted.contains("certificate"), "{untrusted}");

    let ca = tls::file("ca.crt").display().to_string();
    let top = topo(&["top", &base, "--once", "--token", TOKEN, "--ca", &ca]);
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert!(String::from_utf8_lossy(&top.stdout).contains("split"));
    let tap = topo(&[
        "tap", &base, "split", "--limit", "3", "--token", TOKEN, "--ca", &ca,
    ]);
    assert!(
        tap.status.success(),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&tap.stdout).lines().count(), 3);
    let top = topo(&["top", &base, "--once", "--token", TOKEN]);
    assert!(
        !top.status.success(),
        "no --ca: the certificate is not trusted"
    );
    let err = String::from_utf8_lossy(&top.stderr);
    assert!(err.contains("certificate"), "{err}");
}

// Guards the start-up checks: a key that is not the certificate's, and a missing file, stop the
// run before it starts with an error naming the option; one option without the other is refused.
#[test]
fn a_bad_certificate_or_key_stops_the_run_naming_the_option() {
    let file = topo_test_support::sentences_topology("tls-check");
    let path = file.path().display().to_string();
    let mut args = run_args("server.crt", "other-client.key");
    args.push(path.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args);
    assert!(
        err.contains("--http-tls-cert") && err.contains("the key is not the certificate's"),
        "{err}"
    );
    let err = refused(&[
        "run",
        "--http",
        "127.0.0.1:0",
        "--http-tls-cert",
        "/no/such/cert.pem",
        "--http-tls-key",
        "/no/such/key.pem",
        &path,
    ]);
    assert!(
        err.contains("--http-tls-cert") && err.contains("/no/such/cert.pem"),
        "{err}"
    );
    let err = refused(&[
        "run",
        "--http",
        "127.0.0.1:0",
        "--http-tls-cert",
        "x.pem",
        &path,
    ]);
    assert!(err.contains("--http-tls-key"), "{err}");
}
