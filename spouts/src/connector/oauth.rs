//! OAuth 2 client credentials: the token request of the connectors that log in with a client
//! id and secret (the `feed` spout, the Kafka clients' `OAUTHBEARER`).
//!
//! ```text
//!  POST token_url  (HTTP basic auth: client_id, client_secret)
//!       grant_type=client_credentials[&scope=...]
//!    ◄── 200 {"access_token": "...", "expires_in": 3600}  ──► Token { access, lifetime }
//!    ◄── other status / unreadable body                    ──► TokenError (reason, Retry-After)
//! ```

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use serde::Deserialize;

/// A client's credentials at a token endpoint.
#[derive(Clone, Copy)]
pub struct ClientCredentials<'a> {
    /// The token endpoint.
    pub token_url: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// The client secret.
    pub client_secret: &'a str,
    /// The scope asked for, if any.
    pub scope: Option<&'a str>,
    /// The option that holds these credentials (`oauth`, `sasl`), named in errors.
    pub option: &'a str,
}

/// An access token and how long it lives.
pub struct Token {
    /// The access token.
    pub access: String,
    /// Its lifetime from now (`expires_in`; an hour when the endpoint does not say).
    pub lifetime: Duration,
}

/// Why no token came: the reason (naming the endpoint) and the server's `Retry-After`, if any.
#[derive(Debug)]
pub struct TokenError {
    /// What went wrong, naming the endpoint.
    pub reason: String,
    /// How long the server asked to wait before trying again.
    pub retry_after: Option<Duration>,
}

/// At most this much of an answer's body goes into an error.
const BODY_PREFIX: usize = 200;

/// Asks the token endpoint for an access token with the client credentials grant.
pub async fn fetch_token(
    client: &reqwest::Client,
    c: ClientCredentials<'_>,
) -> Result<Token, TokenError> {
    let url = c.token_url;
    let fail = |reason: String, retry_after: Option<Duration>| TokenError {
        reason,
        retry_after,
    };
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = c.scope {
        form.push(("scope", scope));
    }
    let resp = client
        .post(url)
        .basic_auth(c.client_id, Some(c.client_secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| fail(format!("token request to {url} failed: {e}"), None))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
        .map(secs);
    let body = resp
        .bytes()
        .await
        .map_err(|e| fail(format!("token response from {url} failed: {e}"), None))?;
    if !status.is_success() {
        return Err(fail(
            format!(
                "token request to {url}: HTTP {status} (check {o}.client_id and {o}.client_secret): {}",
                prefix(&body),
                o = c.option,
            ),
            retry_after,
        ));
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        expires_in: Option<f64>,
    }
    let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        fail(
            format!(
                "token response from {url}: {e}; expected {{\"access_token\": .., \"expires_in\": ..}}: {}",
                prefix(&body)
            ),
            None,
        )
    })?;
    Ok(Token {
        access: t.access_token,
        lifetime: secs(t.expires_in.unwrap_or(3600.0)),
    })
}

/// Seconds as a duration, at most a day (and none below zero).
fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.clamp(0.0, 86_400.0))
}

/// The first bytes of an answer, as text, for an error message.
fn prefix(bytes: &[u8]) -> String {
    let end = bytes.len().min(BODY_PREFIX);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
