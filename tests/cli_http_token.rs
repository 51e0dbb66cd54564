//! `topo run --http` with a bearer token and without the tap: every data route asks for the
//! token (`/health` and the dashboard's page do not), `topo top` and `topo tap` send it with
//! `--token`, `--no-tap` turns `/api/tap` off, an endpoint open to other hosts without a token is
//! warned about at start-up, and the token itself is never printed.

use std::time::Duration;

use topo_test_support::RunningTopo;

const TOKEN: &str = "s3cret-Token-8861";
const WAIT: Duration = Duration::from_secs(60);

/// A running `topo run --http 127.0.0.1:0 EXTRA`, killed when dropped.
fn start(extra: &[&str], env: &[(&str, &str)]) -> RunningTopo {
    RunningTopo::start(&assert_cmd::cargo::cargo_bin("topo"), extra, env)
}

/// GET `path` of `addr` with an optional bearer token: (status, body).
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = tokio::time::timeout(WAIT, req.send())
            .await
            .expect("an answer in time")
            .expect("a response");
        let status = r.status().as_u16();
        // The tap streams: its first bytes are enough.
        let body = if path.starts_with("/api/tap") && status == 200 {
            String::new()
        } else {
            r.text().await.unwrap_or_default()
        };
        (status, body)
    })
}

fn topo(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = assert_cmd::Command::cargo_bin("topo").expect("the topo binary");
    cmd.env_remove("RUST_LOG")
        .env_remove("TOPO_HTTP_TOKEN")
        .args(args)
        .timeout(WAIT);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run topo")
}

// Guards the token: data routes answer 401 without it or with a wrong one, 200 with it;
// /health and the dashboard's page stay open; the clients get in with --token (or the
// environment) and name the token when they have none.
#[test]
fn data_routes_ask_for_the_token_and_the_clients_send_it() {
    let run = start(&["--http-token", TOKEN], &[]);
    let addr = run.addr.as_str();
    assert_eq!(get(addr, "/health", None).0, 200);
    assert_eq!(
        get(addr, "/", None).0,
        200,
        "the dashboard's page holds no data"
    );
    assert_eq!(get(addr, "/dashboard.js", None).0, 200);
    for path in [
        "/metrics",
        "/api/metrics",
        "/api/topology",
        "/api/tap?component=split",
    ] {
        let (status, body) = get(addr, path, None);
        assert_eq!(status, 401, "{path} without the token: {body}");
        assert!(body.contains("needs its token"), "{path}: {body}");
        assert!(!body.contains(TOKEN));
        assert_eq!(
            get(addr, path, Some("wrong")).0,
            401,
            "{path} with a wrong token"
        );
        assert_eq!(get(addr, path, Some(TOKEN)).0, 200, "{path} with the token");
    }

    let url = format!("http://{addr}");
    let top = topo(&["top", &url, "--once", "--token", TOKEN], &[]);
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert!(String::from_utf8_lossy(&top.stdout).contains("split"));
    let top = topo(&["top", &url, "--once"], &[("TOPO_HTTP_TOKEN", TOKEN)]);
    assert!(top.status.success(), "the token from the environment");
    let top = topo(&["top", &url, "--once"], &[]);
    assert!(!top.status.success());
    let err = String::from_utf8_lossy(&top.stderr);
    assert!(
        err.contains("needs its token") && err.contains("--token"),
        "{err}"
    );

    let tap = topo(
        &["tap", &url, "split", "--limit", "3", "--token", TOKEN],
        &[],
    );
    assert!(
        tap.status.success(),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&tap.stdout).lines().count(), 3);
    let tap = topo(&["tap", &url, "split", "--limit", "3"], &[]);
    assert!(!tap.status.success());
    assert!(String::from_utf8_lossy(&tap.stderr).contains("needs its token"));
}

// Guards --no-tap: /api/tap answers 403 with the reason, and `topo tap` says so; the figures
// are still served.
#[test]
fn no_tap_turns_the_tap_off() {
    let run = start(&["--no-tap"], &[]);
    let (status, body) = get(&run.addr, "/api/tap?component=split", None);
    assert_eq!(status, 403);
    assert!(
        body.contains("turned off") && body.contains("--no-tap"),
        "{body}"
    );
    assert_eq!(get(&run.addr, "/api/metrics", None).0, 200);
    let tap = topo(
        &[
            "tap",
            &format!("http://{}", run.addr),
            "split",
            "--limit",
            "1",
        ],
        &[],
    );
    assert!(!tap.status.success());
    assert!(String::from_utf8_lossy(&tap.stderr).contains("turned off"));
}

// Guards the token's other sources and the start-up line: from TOPO_HTTP_TOKEN and from a file;
// an empty token is refused; the token is never printed, and the dashboard's line says how to
// give it.
#[test]
fn the_token_comes_from_the_environment_or_a_file_and_is_never_printed() {
    let run = start(&[], &[("TOPO_HTTP_TOKEN", TOKEN)]);
    assert_eq!(get(&run.addr, "/api/metrics", None).0, 401);
    assert_eq!(get(&run.addr, "/api/metrics", Some(TOKEN)).0, 200);
    drop(run);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).expect("write the token");
    let file = topo_test_support::sentences_topology("token-check");
    let run_with_file = || {
        topo(
            &[
                "run",
                "--for",
                "1s",
                "--http",
                "127.0.0.1:0",
                "--http-token-file",
                path.to_str().expect("utf-8"),
                file.path().to_str().expect("utf-8"),
            ],
            &[],
        )
    };
    let out = run_with_file();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("#token=<token>"), "{err}");
    assert!(!err.contains(TOKEN), "the token was printed:\n{err}");
    assert!(
        !err.contains("warning: the endpoint serves"),
        "loopback: no warning\n{err}"
    );

    std::fs::write(&path, "\n").expect("write an empty token");
    let out = run_with_file();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
}

// Guards the warning: an endpoint bound to every address without a token says at start-up that
// anyone who can reach it sees the figures and the data; with a token it does not.
#[test]
fn an_open_endpoint_on_every_address_is_warned_about() {
    let file = topo_test_support::sentences_topology("token-check");
    let path = file.path().to_str().expect("utf-8");
    let out = topo(&["run", "--for", "1s", "--http", "0.0.0.0:0", path], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the endpoint serves the live figures and sampled copies of the data (/api/tap) to anyone who can reach 0.0.0.0:")
            && err.contains("--http-token"),
        "{err}"
    );
    let out = topo(
        &[
            "run",
            "--for",
            "1s",
            "--http",
            "0.0.0.0:0",
            "--http-token",
            TOKEN,
            path,
        ],
        &[],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("warning: the endpoint serves"), "{err}");
    assert!(!err.contains(TOKEN), "the token was printed:\n{err}");
}
