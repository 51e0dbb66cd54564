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
/// `live figures: http://ADDR/...`, or `https://` over TLS); the rest of its stderr is then
/// drained in the background so the child never blocks writing status lines. Panics with what
/// the child said if it ends first.
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

/// A topology for tests of `topo run`'s endpoint: a generator of 1,000 sentences a second into
/// `split`, named `name`.
pub fn sentences_topology(name: &str) -> tempfile::NamedTempFile {
    temp_topology(&format!(
        r#"
name = "{name}"

[spouts.sentences]
kind = "generator"
rate = 1000
sentences = ["the cow jumped over the moon"]

[bolts.split]
kind = "split"
field = "sentence"
inputs = [{{ from = "sentences" }}]
"#
    ))
}

/// A running `topo run --for 120s --http 127.0.0.1:0 EXTRA FILE` of [`sentences_topology`]
/// (`RUST_LOG` and `TOPO_HTTP_TOKEN` unset, then `env` set), its endpoint's address read from
/// its stderr; killed when dropped.
pub struct RunningTopo {
    /// The `topo run` process.
    pub child: std::process::Child,
    /// The endpoint's `host:port`.
    pub addr: String,
    _file: tempfile::NamedTempFile,
}

impl RunningTopo {
    /// Starts `topo` (the binary at `topo`) so.
    pub fn start(topo: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> RunningTopo {
        use std::process::{Command, Stdio};
        let file = sentences_topology("endpoint-check");
        let mut cmd = Command::new(topo);
        cmd.env_remove("RUST_LOG")
            .env_remove("TOPO_HTTP_TOKEN")
            .args(["run", "--for", "120s", "--http", "127.0.0.1:0"])
            .args(extra)
            .arg(file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn topo run");
        let addr = http_address(&mut child);
        RunningTopo {
            child,
            addr,
            _file: file,
        }
    }
}

impl Drop for RunningTopo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
