//! The `stdin` spout through the real `topo` binary: `… | topo run t.toml --until-idle` reads
//! every line, ends by itself at end of input, and acks each line once.

use std::time::Duration;

use assert_cmd::Command;
use topo_test_support::temp_topology;

/// The longest a run may take.
const TIMEOUT: Duration = Duration::from_secs(60);

const TOPOLOGY: &str = r#"
name = "stdin-lines"

[spouts.lines]
kind = "stdin"
parallelism = 2           # only the first task reads; the other is exhausted at once
max_line_bytes = 100

[bolts.print]
kind = "stdout"
inputs = [{ from = "lines" }]

[bolts.rejects]
kind = "stdout"
format = "pretty"
show_source = true
inputs = [{ from = "lines", stream = "error" }]
"#;

// Guards that piped standard input is read to the end, every line printed once (CRLF and a last
// line without newline included), an oversize line sent to `error`, and that the run ends by
// itself with every line acked.
#[test]
fn stdin_lines_run_to_the_end_of_input() {
    const N: usize = 3000;
    let mut input = String::new();
    let mut want = Vec::new();
    for i in 0..N - 1 {
        let line = format!("line {i}");
        input.push_str(&line);
        input.push_str(if i % 2 == 0 { "\n" } else { "\r\n" });
        want.push(line);
        if i == 1000 {
            input.push_str(&"y".repeat(500));
            input.push('\n');
        }
    }
    input.push_str("the last line, without newline");
    want.push("the last line, without newline".into());

    let file = temp_topology(TOPOLOGY);
    let out = Command::cargo_bin("topo")
        .expect("the topo binary")
        .env_remove("RUST_LOG")
        .args(["run", "--until-idle"])
        .arg(file.path())
        .write_stdin(input)
        .timeout(TIMEOUT)
        .output()
        .expect("topo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);

    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut got = Vec::new();
    let mut rejects = Vec::new();
    for l in stdout.lines() {
        if let Some(reject) = l.strip_prefix("lines:error ") {
            rejects.push(reject.to_string());
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        got.push(v["line"].as_str().expect("a line field").to_string());
    }
    got.sort();
    want.sort();
    assert_eq!(got.len(), N, "each line printed once");
    assert_eq!(got, want);
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(rejects[0].contains("max_line_bytes = 100"), "{rejects:?}");

    // The final status line: every line acked, none failed or pending.
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!(" acked {N} failed 0 timeout 0 pending 0")),
        "final status: {last}"
    );
}
