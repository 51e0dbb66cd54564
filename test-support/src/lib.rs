//! What the connector tests of topo's crates share (a dev-dependency only): clients of the
//! local servers that `scripts/services start` runs, and names of their own for the streams
//! and topics each test creates, so that tests running at once never meet.
//!
//! ```text
//!  spouts/tests, bolts/tests, tests/  ──►  topo-test-support  ──►  tansu (TOPO_KAFKA_BROKERS)
//!                                                            ├─►  kinesalite (TOPO_KINESIS_ENDPOINT)
//!                                                            ├─►  aws-kinesis-agg (Python, kpl)
//!                                                            └─►  moto, read with boto3 (s3)
//! ```

pub mod cpu;
pub mod kafka;
pub mod kinesis;
pub mod kpl;
pub mod s3;
pub mod soak;
pub mod tls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Where `scripts/services` installs the tools and servers: `$TOPO_TOOLS`, else
/// `$XDG_CACHE_HOME/topo/tools`, else `~/.cache/topo/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOPO_TOOLS") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("topo").join("tools")
}

/// A name no other test (of this run or another) uses: `topo-<what>-<pid>-<nanos>-<n>`.
pub fn unique(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "topo-{what}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Relaxed)
    )
}

/// A temporary topology file (`.toml`) holding `text`; removed when dropped.
pub fn temp_topology(text: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("a temporary file");
    f.write_all(text.as_bytes())
        .expect("write the temporary topology file");
    f.flush().expect("flush the temporary topology file");
    f
}

/// The address a `topo run --http ...` child serves on, read from its piped stderr (the line
/// `live figures: http://ADDR/...`, or `https://` over TLS); the rest of its stderr is then drained in the background so
/// the child never blocks writing status lines. Panics with what the child said if it ends first.
pub fn http_address(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let stderr = child
        .stderr
        .take()
        .expect("the child's stderr is piped (Stdio::piped())");
    let mut lines = BufReader::new(stderr).lines();
    let mut said = String::new();
    let addr = loop {
        let Some(line) = lines.next() else {
            panic!("topo ended before printing its address; it said:\n{said}");
        };
        let line = line.expect("read the child's stderr");
        said.push_str(&line);
        said.push('\n');
        if let Some(rest) = line
            .strip_prefix("live figures: http://")
            .or_else(|| line.strip_prefix("live figures: https://"))
        {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    addr
}
