//! `sasl = { mechanism = "OAUTHBEARER", ... }`: librdkafka's OIDC login, against a real token
//! endpoint (an HTTP server of the test's own standing in for the identity provider).
//!
//! ```text
//!  kafka spout ── librdkafka: token? ── POST /token (client credentials) ──► token endpoint
//!       │                                  ◄── {"access_token": <JWT>, "expires_in": 3600}
//!       └── SASL OAUTHBEARER handshake with the token ──► broker (not run here: see below)
//! ```
//!
//! The local broker (tansu) offers no SASL, so the handshake with a broker is not tested here;
//! what is tested is that librdkafka, asking the spout's client for a token at start, gets it
//! from the endpoint with the client's id, secret and scope.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_spouts::kafka::{SaslMechanism, SaslOptions};
use topo_spouts::{KafkaOptions, KafkaSink, KafkaSinkOptions, KafkaSpout};

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(20);

/// What the token endpoint received: (Authorization header, form body).
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// An unsigned JWT for `sub`, valid for an hour (librdkafka reads its `sub` and `exp`).
fn jwt(sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let part = |json: String| URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.{}",
        part(r#"{"alg":"RS256","typ":"JWT"}"#.to_string()),
        part(format!(
            r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
            now + 3600
        )),
        URL_SAFE_NO_PAD.encode(b"not-checked-here")
    )
}

/// The endpoint's state: what it received, and whether it refuses every client.
#[derive(Clone, Default)]
struct Endpoint {
    seen: Requests,
    refuse: bool,
}

async fn token(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    endpoint
        .seen
        .lock()
        .expect("not poisoned")
        .push((auth, body));
    if endpoint.refuse {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.to_string(),
        );
    }
    let answer = format!(
        r#"{{"access_token":"{}","token_type":"bearer","expires_in":3600}}"#,
        jwt("topo-app")
    );
    (StatusCode::OK, answer)
}

/// Serves the token endpoint on a free port: its URL and what it receives.
async fn serve(refuse: bool) -> (String, Requests) {
    let endpoint = Endpoint {
        refuse,
        ..Endpoint::default()
    };
    let seen = endpoint.seen.clone();
    let app = axum::Router::new()
        .route("/token", post(token))
        .with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/token",
        listener.local_addr().expect("an address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

// Guards that `mechanism = "OAUTHBEARER"` makes the spout's librdkafka client log in with the
// client credentials grant at the token endpoint: one POST with HTTP basic authentication of
// the client id and secret (the secret read from its file), the grant type and the scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_fetches_a_token_with_the_client_credentials() {
    let (endpoint, seen) = serve(false).await;

    let dir = tempfile::tempdir().expect("a directory");
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, "oauth-S3cret\n").expect("write the secret");
    let spout = KafkaSpout::new(KafkaOptions {
        // Nothing listens there: the login comes before any broker connection.
        brokers: "127.0.0.1:9".into(),
        topic: Some("oauth".into()),
        sasl: Some(SaslOptions {
            mechanism: SaslMechanism::OAuthBearer,
            token_endpoint: Some(endpoint),
            client_id: Some("topo-app".into()),
            client_secret_file: Some(secret_file),
            scope: Some("kafka:read".into()),
            ..SaslOptions::default()
        }),
        ..KafkaOptions::default()
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("oauth");
    b.set_spout("lines", move || spout.clone(), 1);
    b.set_bolt("sink", sink.factory(), 1)
        .shuffle_grouping("lines");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    let start = Instant::now();
    while seen.lock().expect("not poisoned").is_empty() {
        assert!(start.elapsed() < WAIT, "no token request within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop(Duration::from_secs(5)).await;
    let (auth, body) = seen.lock().expect("not poisoned")[0].clone();
    assert_eq!(
        auth,
        format!("Basic {}", STANDARD.encode("topo-app:oauth-S3cret")),
        "the client id and secret, as HTTP basic authentication"
    );
    let form: Vec<&str> = body.split('&').collect();
    assert!(form.contains(&"grant_type=client_credentials"), "{body}");
    assert!(
        form.iter().any(|f| f.starts_with("scope=kafka")),
        "the scope: {body}"
    );
    assert!(sink.is_empty());
}

// Guards the error of a refused login: the `kafka` sink's client asks the endpoint, which answers
// 401, and the sink reports the failure with the endpoint, the status and what to check (the
// client's secret never in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_oauthbearer_login_is_reported_by_the_sink() {
    let (endpoint, seen) = serve(true).await;
    let sink = KafkaSink::new(KafkaSinkOptions {
        brokers: "127.0.0.1:9".into(),
        topic: Some("oauth".into()),
        sasl: Some(SaslOptions {
            mechanism: SaslMechanism::OAuthBearer,
            token_endpoint: Some(endpoint.clone()),
            client_id: Some("topo-app".into()),
            client_secret: Some("wrong-S3cret".into()),
            ..SaslOptions::default()
        }),
        ..KafkaSinkOptions::default()
    })
    .expect("valid options");
    let counters = sink.counters().clone();
    let spout = topo_runtime::testing::VecSpout::new(["n"], vec![topo_runtime::values![1]]);
    let mut b = TopologyBuilder::new("oauth-sink");
    b.set_spout("in", spout.factory(), 1);
    b.set_bolt(
        "out",
        topo_runtime::BoltFactory::full(move || sink.clone()),
        1,
    )
    .shuffle_grouping("in");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let start = Instant::now();
    let error = loop {
        if let Some(e) = counters.last_error().filter(|e| e.contains("HTTP 401")) {
            break e;
        }
        assert!(
            start.elapsed() < WAIT,
            "no login error within {WAIT:?}; last error {:?}",
            counters.last_error()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    handle.stop(Duration::from_secs(5)).await;
    assert!(!seen.lock().expect("not poisoned").is_empty());
    assert!(
        error.contains(&endpoint) && error.contains("sasl.client_secret"),
        "{error}"
    );
    assert!(!error.contains("wrong-S3cret"), "{error}");
}
