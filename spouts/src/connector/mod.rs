//! The connector layer: what every source and sink of the edge shares, held once.
//!
//! ```text
//!  source:  bytes ──encoding──► Value ──► emit ──► ... ack ──► acked::AckedPrefix ──► checkpoint (state::state_dir)
//!              └─ undecodable ──► ERROR_STREAM (SOURCE_ERROR_FIELDS: reason, raw)
//!  sink:    input ──► sink::BatchSink<W> ──write──► ack        failed write ──► retry::RetryOptions
//!              └─ never writable ──► ERROR_STREAM (SINK_ERROR_FIELDS: reason, record)
//!  both:    counters! (atomic counters + getters), warn (one warning a second, errors kept),
//!           tls::TlsOptions ──load──► TlsFiles ──► rustls::ClientConfig (or PEM for the client)
//! ```
//!
//! - [`acked`]: the acked-prefix tracker of the sources that resume from a position.
//! - [`counters`]: the counters struct of a connector (the crate-internal `counters!` macro).
//! - [`encoding`]: line encodings and payload formats, bytes to a value or the reason not.
//! - `oauth` (with `feed` or `kafka`): the OAuth 2 client credentials token request.
//! - [`records`]: tuples as JSON lines or CSV rows (the `file` and `s3` sinks).
//! - [`retry`]: retries and back-off, one set of options.
//! - [`sink`]: what every durable sink shares — batching, ack after the write, retries, the
//!   `record` of an `error` tuple and the JSON encoding of a tuple.
//! - [`state`]: the state directory of a component.
//! - `tls` (with a system that uses it): the TLS options of client connections, read once, and
//!   the client configuration they make.
//! - `warn`: the warning limiter and the error log (crate-internal).

pub mod acked;
pub mod counters;
pub mod encoding;
#[cfg(any(feature = "feed", feature = "kafka"))]
pub mod oauth;
pub mod records;
pub mod retry;
pub mod sink;
pub mod state;
#[cfg(feature = "tls")]
pub mod tls;
pub(crate) mod warn;

pub(crate) use counters::counters;
pub use topo_runtime::ERROR_STREAM;

/// An address as it may be shown in a message: the user information of `scheme://user:password@host/...`
/// replaced by `***`, so that a password (or a token given as a user name) is never printed.
/// Anything without `://` and `@` in its authority comes back as it is.
pub fn redact(address: &str) -> String {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => address.to_string(),
    }
}

/// A secret kept in a file (a `*_file` option: a mounted Kubernetes or Docker secret): its first
/// line, without the line end. The error names the option and the file, never the content.
pub fn secret_file(option: &str, path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("option `{option}` = {}: {e}", path.display()))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(format!(
            "option `{option}` = {}: the file's first line is empty",
            path.display()
        ));
    }
    Ok(first.to_string())
}

/// The fields of a source's `error` stream: why the input was refused, and the first KiB of it.
pub const SOURCE_ERROR_FIELDS: [&str; 2] = ["reason", "raw"];

/// The fields of a sink's `error` stream: why the input can never be written, and the input as
/// a map of field name to value ([`sink::record`]).
pub const SINK_ERROR_FIELDS: [&str; 2] = ["reason", "record"];

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_user_information_only() {
        use super::redact;
        assert_eq!(redact("redis://:pw@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("mqtt://u:pw@h:1883"), "mqtt://***@h:1883");
        assert_eq!(
            redact("https://token@api.example/x?a=b@c"),
            "https://***@api.example/x?a=b@c"
        );
        assert_eq!(redact("http://h:80/p@q"), "http://h:80/p@q");
        assert_eq!(redact("127.0.0.1:1883"), "127.0.0.1:1883");
    }
}
