//! The `file` spout through the real `topo` binary across a process crash: a run is killed with
//! SIGKILL mid-stream, a second run resumes from the checkpoint the first left behind. Every
//! line comes out at least once, the lines acked before the kill are not read again, and the
//! duplicates stay within the un-acked window.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// The longest a run, or a wait, may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Lines in the input file: far more than the pipe between `topo` and this test holds.
const N: usize = 20_000;

/// `max_spout_pending` of the topology: the most lines in flight, hence the bound on lines
/// printed but not yet acked when the process is killed.
const MAX_PENDING: usize = 50;

fn topology(input: &Path) -> String {
    format!(
        r#"
name = "file-restart"

[config]
max_spout_pending = {MAX_PENDING}
worker_threads = 4

[spouts.lines]
kind = "file"
paths = ["{}"]
include_path = true
poll_interval = "20ms"
checkpoint_interval = "20ms"

[bolts.print]
kind = "stdout"
inputs = [{{ from = "lines" }}]
"#,
        input.display()
    )
}

/// The checkpointed offset of the one input file, if written yet.
fn checkpoint(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state.join("file-restart/lines/task-0.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).expect("checkpoint is JSON");
    v["files"][0]["offset"].as_u64()
}

/// (offset, line) of every printed JSON line.
fn printed(stdout: &[u8]) -> Vec<(u64, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            (
                v["offset"].as_u64().expect("an offset field"),
                v["line"].as_str().expect("a line field").to_string(),
            )
        })
        .collect()
}

// Guards resumption after a crash: `topo run` is killed (SIGKILL) while its output pipe is full
// (lines in flight, not acked); a second run reads exactly the lines from the checkpoint on, and
// together the two runs print every line.
#[test]
fn a_killed_run_resumes_at_the_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.log");
    let state = dir.path().join("state");
    let mut text = String::new();
    let mut lines = BTreeMap::new();
    for i in 0..N {
        lines.insert(text.len() as u64, format!("line {i}"));
        text.push_str(&format!("line {i}\n"));
    }
    std::fs::write(&input, &text).expect("write input");
    let topo_file = dir.path().join("t.toml");
    std::fs::write(&topo_file, topology(&input)).expect("write topology");
    let topo = assert_cmd::cargo::cargo_bin("topo");

    // Run 1: nobody reads its standard output, so the pipe fills and the stdout bolt blocks
    // with lines in flight; the checkpoint stops where the acked lines end.
    let stderr = std::fs::File::create(dir.path().join("run1.stderr")).expect("stderr file");
    let mut child = StdCommand::new(&topo)
        .args(["run"])
        .arg(&topo_file)
        .env("TOPO_STATE_DIR", &state)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("topo starts");
    let start = Instant::now();
    let mut last = None;
    let mut stable_since = Instant::now();
    loop {
        assert!(
            start.elapsed() < TIMEOUT,
            "the checkpoint did not settle: {last:?}"
        );
        let now = checkpoint(&state);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if now.is_some_and(|o| o > 0) && stable_since.elapsed() > Duration::from_millis(500)
        {
            break;
        }
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "topo ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let mut out1 = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out1)
        .expect("read the pipe");
    let run1 = printed(&out1);
    let cp = checkpoint(&state).expect("a checkpoint survives the kill");
    assert!(
        cp > 0 && cp < text.len() as u64,
        "killed mid-stream: checkpoint {cp} of {}",
        text.len()
    );
    assert!(lines.contains_key(&cp), "the checkpoint is a line start");

    // Run 2: the same state; reads what is there and ends.
    let out = Command::new(&topo)
        .args([
            "run",
            "--until-idle",
            "--set",
            "spouts.lines.until_eof=true",
        ])
        .arg(&topo_file)
        .env("TOPO_STATE_DIR", &state)
        .env_remove("RUST_LOG")
        .timeout(TIMEOUT)
        .output()
        .expect("topo runs");
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let run2 = printed(&out.stdout);

    // Every printed line is the line at its offset.
    for (offset, line) in run1.iter().chain(&run2) {
        assert_eq!(lines.get(offset), Some(line), "line at offset {offset}");
    }
    // The acked prefix was printed by run 1 and is not read again by run 2.
    let first: BTreeSet<u64> = run1.iter().map(|(o, _)| *o).collect();
    let before: Vec<u64> = lines.range(..cp).map(|(o, _)| *o).collect();
    assert!(
        before.iter().all(|o| first.contains(o)),
        "every acked line was printed before the kill"
    );
    let second: Vec<u64> = run2.iter().map(|(o, _)| *o).collect();
    let after: Vec<u64> = lines.range(cp..).map(|(o, _)| *o).collect();
    let mut second_sorted = second.clone();
    second_sorted.sort();
    assert_eq!(
        second_sorted, after,
        "run 2 reads each line from the checkpoint on exactly once, none before"
    );
    // Together: every line at least once; duplicates only from the un-acked window.
    let dups = run1.iter().filter(|(o, _)| *o >= cp).count();
    assert!(
        dups <= MAX_PENDING,
        "{dups} lines printed twice; at most max_spout_pending = {MAX_PENDING} were in flight"
    );
    println!(
        "killed at checkpoint {cp} ({} lines acked), run 1 printed {}, run 2 printed {}, {dups} printed twice",
        before.len(),
        run1.len(),
        run2.len()
    );
}

// Guards that a bad option of the file spout is reported when the topology file loads, with its
// place and what was expected (exit code 2).
#[test]
fn a_bad_glob_is_reported_with_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"name = "bad"
[spouts.lines]
kind = "file"
paths = ["/var/log/[a-"]
[bolts.print]
kind = "stdout"
inputs = [{ from = "lines" }]
"#,
    )
    .expect("write topology");
    let out = Command::cargo_bin("topo")
        .expect("the topo binary")
        .arg("validate")
        .arg(&file)
        .timeout(TIMEOUT)
        .output()
        .expect("topo runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "bad.toml:2:1: spouts.lines: option `paths[0]` = \"/var/log/[a-\": not a glob pattern"
        ),
        "{stderr}"
    );
}
