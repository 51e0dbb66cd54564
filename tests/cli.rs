//! End-to-end tests of the `topo` binary: `run`, `validate`, `graph` and `components`, with the
//! topologies in `tests/cli/` and temporary files.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use topo::registry::Role;
use topo_test_support::temp_topology;

/// An upper bound for any single invocation; every test finishes far below it.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The folder of the fixture topologies.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli")
}

/// A state directory of its own for one run (`TOPO_STATE_DIR`): a run resumes from the
/// checkpoints of the last run of the same topology, and each test wants a run from the start.
fn fresh_state_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("topo-cli-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `topo` run in the fixture folder (so diagnostics name files relatively), with the variables
/// the fixtures read removed, a state directory of its own and a bounded run time.
fn topo() -> Command {
    let mut cmd = Command::cargo_bin("topo").expect("the topo binary");
    cmd.current_dir(fixtures())
        .env("TOPO_STATE_DIR", fresh_state_dir())
        .env_remove("TOPO_CLI_COUNT")
        .env_remove("TOPO_CLI_UNSET")
        .env_remove("RUST_LOG")
        .timeout(TIMEOUT);
    cmd
}

/// The counts a status line shows for the spout `spout`: `acked`, `failed`, `timeout`, `pending`.
#[derive(Debug, PartialEq, Eq)]
struct SpoutStatus {
    acked: String,
    failed: String,
    timeout: String,
    pending: String,
}

/// The spout part of a status line such as
/// `0s sentences 78.6k/s acked 2000 failed 0 timeout 0 pending 0 | split 78.6k/s q 0% | ...`.
fn spout_status(line: &str, spout: &str) -> Option<SpoutStatus> {
    let (_uptime, rest) = line.split_once(' ')?;
    let part = rest
        .split(" | ")
        .find(|p| p.split(' ').next() == Some(spout))?;
    let words: Vec<&str> = part.split(' ').collect();
    let value = |key: &str| {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .map(|w| w[1].to_string())
    };
    Some(SpoutStatus {
        acked: value("acked")?,
        failed: value("failed")?,
        timeout: value("timeout")?,
        pending: value("pending")?,
    })
}

/// The last line of `stderr`, which `run` makes the final status line.
fn final_status(stderr: &[u8], spout: &str) -> SpoutStatus {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().last().unwrap_or_default();
    spout_status(last, spout)
        .unwrap_or_else(|| panic!("no status of {spout:?} in the last line of:\n{text}"))
}

/// Counts as the status line prints them when they are exact (below 10k).
fn done(acked: u64) -> SpoutStatus {
    SpoutStatus {
        acked: acked.to_string(),
        failed: "0".into(),
        timeout: "0".into(),
        pending: "0".into(),
    }
}

// Guards that a finite topology runs to completion and every spout tuple is acked exactly once.
#[test]
fn run_until_idle_acks_the_whole_count() {
    let out = topo()
        .args(["run", "word_count.toml", "--until-idle"])
        .assert()
        .success();
    assert_eq!(
        final_status(&out.get_output().stderr, "sentences"),
        done(3000)
    );
}

// Guards that `--for` stops an endless topology on time, cleanly drained.
#[test]
fn run_for_a_duration_stops_an_endless_topology() {
    let start = Instant::now();
    let out = topo()
        .args(["run", "endless.toml", "--for", "300ms"])
        .timeout(Duration::from_secs(20))
        .assert()
        .success();
    assert!(start.elapsed() >= Duration::from_millis(300));
    let status = final_status(&out.get_output().stderr, "sentences");
    assert_eq!(
        (
            status.failed.as_str(),
            status.timeout.as_str(),
            status.pending.as_str()
        ),
        ("0", "0", "0"),
        "{status:?}"
    );
}

// Guards that `validate` accepts a good file with "ok" on stdout and exit 0.
#[test]
fn validate_good_file_prints_ok() {
    topo()
        .args(["validate", "word_count.toml"])
        .assert()
        .success()
        .stdout("word_count.toml: ok\n")
        .stderr("");
}

/// The diagnostics of `bad.toml`, as `validate` prints them.
const BAD_TOML_ERRORS: &str = "\
bad.toml:6:1: spouts.sentences.cont: unknown field `cont`, expected one of `mode`, `sentences`, `text_file`, `words`, `words_per_sentence`, `count`, `rate`, `seed`, `field`, `devices`, `anomaly_rate`, `anomaly_length`, `start_time`; did you mean \"count\"?
bad.toml:10:15: bolts.split.parallelism: must be at least 1, got 0
bad.toml:15:52: bolts.count.inputs[0].grouping.fields: field \"wrd\" is not declared by split's stream \"default\" (it declares: word); did you mean \"word\"?
";

/// The diagnostics of `bad_kind.toml`, as `validate` prints them.
fn bad_kind_errors() -> String {
    format!(
        "\
bad_kind.toml:8:8: bolts.split.kind: unknown bolt kind \"splitter\" (known bolt kinds: {}); did you mean \"split\"?
bad_kind.toml:9:20: bolts.split.inputs[0].from: unknown component \"sentencs\"; did you mean \"sentences\"?
",
        known_kinds(Role::Bolt)
    )
}

/// The built-in kinds of a role in registration order, as error messages list them.
fn known_kinds(role: Role) -> String {
    let registry = topo::builtin_registry();
    let names: Vec<&str> = registry
        .kinds()
        .filter(|k| k.role() == role)
        .map(|k| k.name())
        .collect();
    names.join(", ")
}

// Guards that `validate` reports every problem of a bad file at its exact file:line:col, exit 2.
#[test]
fn validate_bad_file_reports_every_problem_with_position() {
    topo()
        .args(["validate", "bad.toml"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(BAD_TOML_ERRORS);
}

// Guards that `validate` checks every file given: oks on stdout, all problems on stderr, exit 2.
#[test]
fn validate_several_files_reports_all() {
    topo()
        .args(["validate", "bad.toml", "word_count.toml", "bad_kind.toml"])
        .assert()
        .code(2)
        .stdout("word_count.toml: ok\n")
        .stderr(format!("{BAD_TOML_ERRORS}{}", bad_kind_errors()));
}

// Guards the machine-readable report: one JSON array of {file, line, column, path, message}.
#[test]
fn validate_json_lists_problems_of_all_files() {
    let out = topo()
        .args([
            "validate",
            "--format",
            "json",
            "bad.toml",
            "word_count.toml",
            "bad_kind.toml",
        ])
        .assert()
        .code(2);
    let json: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("stdout is JSON");
    let items = json.as_array().expect("a JSON array");
    let got: Vec<(String, u64, u64, String, String)> = items
        .iter()
        .map(|d| {
            (
                d["file"].as_str().expect("file").to_string(),
                d["line"].as_u64().expect("line"),
                d["column"].as_u64().expect("column"),
                d["path"].as_str().expect("path").to_string(),
                d["message"].as_str().expect("message").to_string(),
            )
        })
        .collect();
    let pos: Vec<(&str, u64, u64, &str)> = got
        .iter()
        .map(|(f, l, c, p, _)| (f.as_str(), *l, *c, p.as_str()))
        .collect();
    assert_eq!(
        pos,
        [
            ("bad.toml", 6, 1, "spouts.sentences.cont"),
            ("bad.toml", 10, 15, "bolts.split.parallelism"),
            ("bad.toml", 15, 52, "bolts.count.inputs[0].grouping.fields"),
            ("bad_kind.toml", 8, 8, "bolts.split.kind"),
            ("bad_kind.toml", 9, 20, "bolts.split.inputs[0].from"),
        ]
    );
    assert_eq!(got[1].4, "must be at least 1, got 0");
    assert!(got[0].4.contains("did you mean \"count\"?"), "{:?}", got[0]);
}

// Guards that `validate --format json` on good files prints an empty array and exits 0.
#[test]
fn validate_json_of_good_file_is_empty_array() {
    topo()
        .args(["validate", "--format", "json", "word_count.toml"])
        .assert()
        .success()
        .stdout("[]\n");
}

// Guards the default Graphviz output: nodes with role and parallelism, edges with groupings.
#[test]
fn graph_dot_output() {
    topo()
        .args(["graph", "word_count.toml"])
        .assert()
        .success()
        .stdout(
            "digraph \"cli-word-count\" {
  rankdir=LR;
  \"sentences\" [shape=box, label=\"sentences\\nspout ×1\"];
  \"split\" [shape=ellipse, label=\"split\\nbolt ×2\"];
  \"count\" [shape=ellipse, label=\"count\\nbolt ×1\"];
  \"sentences\" -> \"split\" [label=\"shuffle\"];
  \"split\" -> \"count\" [label=\"fields(word)\"];
}
",
        );
}

// Guards the Mermaid output, and that `--set` applies to `graph` too.
#[test]
fn graph_mermaid_output() {
    topo()
        .args([
            "graph",
            "word_count.toml",
            "--format",
            "mermaid",
            "--set",
            "bolts.count.parallelism=3",
        ])
        .assert()
        .success()
        .stdout(
            "flowchart LR
  c0[[\"sentences (spout ×1)\"]]
  c1([\"split (bolt ×2)\"])
  c2([\"count (bolt ×3)\"])
  c0 -->|\"shuffle\"| c1
  c1 -->|\"fields(word)\"| c2
",
        );
}

// Guards that `components` lists every built-in kind with its role.
#[test]
fn components_lists_kinds_with_roles() {
    let out = topo().arg("components").assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let rows: Vec<(&str, &str)> = text
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap_or(""), w.next().unwrap_or(""))
        })
        .collect();
    let registry = topo::builtin_registry();
    let expected: Vec<(&str, &str)> = registry
        .kinds()
        .map(|k| (k.name(), k.role().as_str()))
        .collect();
    assert_eq!(rows, expected, "{text}");
    for kind in [
        "generator",
        "split",
        "count",
        "parse",
        "filter",
        "map",
        "stdout",
        "join",
    ] {
        assert!(
            rows.iter().any(|(k, _)| *k == kind),
            "{kind} missing:\n{text}"
        );
    }
}

// Guards that `components KIND` shows the kind's options with types and defaults, and an example.
#[test]
fn components_describes_one_kind() {
    topo()
        .args(["components", "count"])
        .assert()
        .success()
        .stdout(
            "count (bolt): running count per key; emits (key, count) on every update, every tick for the changed keys, or at the end of input
  field : string = \"word\"
      the field counted; also the first output field
  emit : \"update\" | \"tick\" | \"finish\" = \"update\"
      when counts are emitted: `update` (every input), `tick` (the keys counted since the last
      tick, every `emit_every`) or `finish` (every key once, at the end of input)
  emit_every : duration = \"1s\"
      how often `emit = \"tick\"` emits

example:
  [bolts.counts]
  kind = \"count\"
  field = \"word\"
  emit = \"update\"           # per input; \"tick\": changed words every emit_every; \"finish\": at the end
  parallelism = 2
  inputs = [{ from = \"words\", grouping = { fields = [\"word\"] } }]
",
        );
}

// Guards that an unknown kind exits 2 with the known kinds and a suggestion.
#[test]
fn components_unknown_kind_suggests() {
    topo()
        .args(["components", "splt"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(format!(
            "unknown component kind \"splt\" (spouts: {}; bolts: {}); did you mean \"split\"?\n",
            known_kinds(Role::Spout),
            known_kinds(Role::Bolt)
        ));
}

// Guards that `--set` changes what runs: the spout emits and acks exactly the overridden count.
#[test]
fn run_set_overrides_the_count() {
    let out = topo()
        .args([
            "run",
            "word_count.toml",
            "--until-idle",
            "--set",
            "spouts.sentences.count=50",
        ])
        .assert()
        .success();
    assert_eq!(
        final_status(&out.get_output().stderr, "sentences"),
        done(50)
    );
}

// Guards that a bad `--set` path is rejected before running, exit 2, naming the override.
#[test]
fn run_bad_set_path_exits_2() {
    topo()
        .args([
            "run",
            "word_count.toml",
            "--until-idle",
            "--set",
            "spouts.sentences.cnt=50",
        ])
        .assert()
        .code(2)
        .stderr(
            "--set:1:1: spouts.sentences.cnt: unknown field `cnt`, expected one of `mode`, `sentences`, `text_file`, `words`, `words_per_sentence`, `count`, `rate`, `seed`, `field`, `devices`, `anomaly_rate`, `anomaly_length`, `start_time`\n",
        );
    topo()
        .args(["run", "word_count.toml", "--set", "bolts..count=1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--set:1:1: bolts..count: invalid --set path \"bolts..count\"",
        ));
    topo()
        .args(["run", "word_count.toml", "--set", "no-equals-sign"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected KEY.PATH=VALUE"));
}

// Guards that `--set config.ackers=0` runs with acking off: each emit counts as acked at once.
#[test]
fn run_with_acking_off() {
    let out = topo()
        .args([
            "run",
            "word_count.toml",
            "--until-idle",
            "--set",
            "config.ackers=0",
            "--set",
            "spouts.sentences.count=200",
        ])
        .assert()
        .success();
    assert_eq!(
        final_status(&out.get_output().stderr, "sentences"),
        done(200)
    );
}

// Guards `${VAR:-default}` substitution: the environment's value wins over the default.
#[test]
fn run_reads_count_from_environment() {
    let out = topo()
        .args(["run", "word_count.toml", "--until-idle"])
        .env("TOPO_CLI_COUNT", "25")
        .assert()
        .success();
    assert_eq!(
        final_status(&out.get_output().stderr, "sentences"),
        done(25)
    );
}

// Guards that `${VAR}` without a default and unset is an error naming the variable, exit 2.
#[test]
fn run_unset_variable_exits_2() {
    let file = temp_topology(
        "name = \"env\"\n[spouts.sentences]\nkind = \"generator\"\ncount = ${TOPO_CLI_UNSET}\n",
    );
    let name = file.path().display().to_string();
    topo()
        .arg("run")
        .arg(file.path())
        .arg("--until-idle")
        .assert()
        .code(2)
        .stderr(format!(
            "{name}:4:9: environment variable \"TOPO_CLI_UNSET\" is not set (use ${{TOPO_CLI_UNSET:-default}} for a default)\n"
        ));
}

// Guards that a missing file is reported clearly with exit 2.
#[test]
fn run_missing_file_exits_2() {
    topo()
        .args(["run", "does-not-exist.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "does-not-exist.toml:1:1: cannot read the file:",
        ));
}

// Guards that `run` refuses an invalid topology with the same diagnostics as `validate`, exit 2.
#[test]
fn run_invalid_topology_exits_2() {
    topo()
        .args(["run", "bad.toml", "--until-idle"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(BAD_TOML_ERRORS);
    let file = temp_topology("name = \"broken\"\n[spouts.sentences\nkind = \"generator\"\n");
    topo()
        .arg("run")
        .arg(file.path())
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(format!(
            "{}:",
            file.path().display()
        )));
}

/// Sends SIGINT to the process `pid`.
fn interrupt(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

// Guards the Ctrl-C drain: SIGINT stops an endless run with every in-flight tuple acked, exit 0.
#[test]
fn run_ctrl_c_drains_in_flight_tuples() {
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("topo"))
        .current_dir(fixtures())
        .env("TOPO_STATE_DIR", fresh_state_dir())
        .env_remove("RUST_LOG")
        .args(["run", "endless.toml", "--status-interval", "20ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn topo");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Wait, with a deadline, for a status line showing acked progress.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let progress = spout_status(&line, "sentences").is_some_and(|s| s.acked != "0");
                seen.push(line);
                if progress {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no progress before the deadline ({e}); stderr so far:\n{seen:#?}");
            }
        }
    }

    interrupt(child.id());

    // The process must exit on its own within a bounded time.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("topo did not exit within 20s of SIGINT; stderr so far:\n{seen:#?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    reader.join().expect("reader thread");
    seen.extend(rx.try_iter());
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("draining in-flight tuples")),
        "{seen:#?}"
    );
    let last = seen.last().expect("a final line");
    let fin = spout_status(last, "sentences")
        .unwrap_or_else(|| panic!("the last line is not a status line:\n{seen:#?}"));
    assert_eq!(
        (
            fin.failed.as_str(),
            fin.timeout.as_str(),
            fin.pending.as_str()
        ),
        ("0", "0", "0"),
        "{fin:?}"
    );
    assert_ne!(fin.acked, "0", "{fin:?}");
}

// Guards that a zero `--status-interval` is a command-line error (exit 2), not a panic.
#[test]
fn run_zero_status_interval_exits_2() {
    topo()
        .args([
            "run",
            "word_count.toml",
            "--until-idle",
            "--status-interval",
            "0s",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid value '0s' for '--status-interval <DURATION>': must be greater than zero",
        ));
}

// Guards `-q`: a successful run prints nothing at all.
#[test]
fn run_quiet_prints_nothing() {
    topo()
        .args(["-q", "run", "word_count.toml", "--until-idle"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

// Guards that `graph` refuses an invalid topology with its diagnostics, exit 2.
#[test]
fn graph_invalid_topology_exits_2() {
    topo()
        .args(["graph", "bad.toml"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(BAD_TOML_ERRORS);
}

// Guards the exit-code convention for the command line itself: help 0, usage errors 2.
#[test]
fn command_line_errors_exit_2_and_help_exits_0() {
    topo()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("validate"));
    topo()
        .arg("validate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("<FILES>"));
    topo()
        .args(["run", "word_count.toml", "--for", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected a duration"));
    topo().arg("frobnicate").assert().code(2);
}

// Guards the parse and stdout kinds end to end: parsed records and malformed ones (on the
// `error` stream, with the reason) all reach standard output, nothing is dropped.
#[test]
fn parse_and_stdout_print_records_and_errors() {
    let file = temp_topology(
        r#"name = "logs"
[spouts.lines]
kind = "generator"
count = 4
field = "line"
sentences = ['{"user": "ann", "n": 1}', 'not json']
[bolts.parse]
kind = "parse"
format = "json"
fields = ["user", "n"]
inputs = [{ from = "lines" }]
[bolts.out]
kind = "stdout"
format = "pretty"
show_source = true
inputs = [{ from = "parse" }, { from = "parse", stream = "error" }]
"#,
    );
    let out = topo()
        .args(["run", "--until-idle", "-q"])
        .arg(file.path())
        .timeout(Duration::from_secs(20))
        .output()
        .expect("topo runs");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    let good = lines
        .iter()
        .filter(|l| **l == "parse:default user=ann n=1")
        .count();
    let bad = lines
        .iter()
        .filter(|l| {
            **l == "parse:error reason=invalid JSON at line 1 column 2: expected ident raw=not json"
        })
        .count();
    assert_eq!((good + bad, lines.len()), (4, 4), "{lines:#?}");
    assert!(good > 0 && bad > 0, "{lines:#?}");
}

/// Examples run by the connector tests instead, each against a stream or topic of its own.
const CONNECTOR_EXAMPLES: &[&str] = &[
    "kafka_word_count.toml",
    "kinesis_sensors.toml",
    "sensors_archive.toml",
];

// Guards that every example topology in `examples/` runs to the end with the built-in kinds:
// each is run with `COUNT` set small (examples read their message counts as `${COUNT:-...}`).
#[test]
fn every_example_topology_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // These need a stream, topic or bucket of their own: their own tests run them
        // (tests/cli_kafka.rs, tests/cli_kinesis.rs, tests/cli_s3.rs).
        .filter(|p| !CONNECTOR_EXAMPLES.iter().any(|name| p.ends_with(name)))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for name in CONNECTOR_EXAMPLES {
        assert!(
            dir.join(name).is_file(),
            "{name} is listed but not in examples/"
        );
    }
    let out = tempfile::tempdir().expect("a temporary directory");
    // leaderboard.toml writes to PostgreSQL and Redis (running here and in CI): a table and a
    // key of this run's own, removed at the end.
    let table = format!("topo_example_counts_{}", std::process::id());
    let key = format!("topo:example:{}", std::process::id());
    psql(&format!(
        "CREATE TABLE {table} (word text PRIMARY KEY, count bigint NOT NULL)"
    ));
    // logs_to_http.toml posts NDJSON batches: a collector of this run's own counts the lines.
    let collector = Collector::start();
    // error_monitor.toml reads lines from a socket: a server of this run's own serves one
    // connection (300 lines, 120 with ERROR) and then refuses, so the spout gives up and ends.
    let lines: Vec<String> = (0..300)
        .map(|i| match i % 5 {
            0 | 3 => format!("2026-11-24T10:00:{:02} ERROR request {i} failed", i % 60),
            _ => format!("2026-11-24T10:00:{:02} INFO request {i} ok", i % 60),
        })
        .collect();
    let line_server = serve_lines_once(lines);
    // worldnews.toml polls a Reddit-compatible listing: a local one whose feed never runs dry.
    let feed = FeedServer::start();
    for file in &files {
        let run = topo()
            .current_dir(out.path())
            .env("COUNT", "2000")
            .env("SENTENCES", "2000")
            .env("PG_TABLE", &table)
            .env("REDIS_KEY", &key)
            .env("INGEST_URL", &collector.url)
            .env("ADDRESS", &line_server)
            .env("CONNECT_ATTEMPTS", "1")
            .env("FEED_BASE", &feed.url)
            .args(["run", "--until-idle", "--quiet"])
            .arg(file)
            .output()
            .expect("topo runs");
        assert!(
            run.status.success(),
            "{} failed ({}):\n{}",
            file.display(),
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        if file.ends_with("error_monitor.toml") {
            // One count per 10 s window that saw errors: 120 in all.
            let stdout = String::from_utf8_lossy(&run.stdout);
            let errors: u64 = stdout
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["errors"].as_u64())
                .sum();
            assert_eq!(errors, 120, "error_monitor.toml printed:\n{stdout}");
        }
    }
    // 2000 lines drawn from four, one of them not an access log (to `rejects`): about 1500
    // reach the collector.
    assert!(
        (1000..2000).contains(&collector.lines()),
        "logs_to_http.toml posted {} lines",
        collector.lines()
    );
    let words = psql(&format!("SELECT count(*) FROM {table}"));
    psql(&format!("DROP TABLE {table}"));
    let _ = StdCommand::new("redis-cli").args(["DEL", &key]).output();
    assert!(
        words.trim().parse::<u64>().is_ok_and(|n| n > 0),
        "leaderboard.toml upserted no word counts: {words}"
    );
}

/// A line server on a free loopback port that writes `lines` to its first client, closes the
/// connection and stops listening; its address.
fn serve_lines_once(lines: Vec<String>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("the address").to_string();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            for line in &lines {
                if writeln!(conn, "{line}").is_err() {
                    return;
                }
            }
        }
    });
    address
}

/// An HTTP server on a free loopback port that answers every POST with 200 and counts the NDJSON
/// lines it received.
struct Collector {
    url: String,
    lines: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    fn start() -> Collector {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let lines = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = lines.clone();
        let app = axum::Router::new().route(
            "/ingest",
            axum::routing::post(move |body: String| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(body.lines().count(), Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free port");
        let url = format!(
            "http://{}/ingest",
            listener.local_addr().expect("the address")
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Collector {
            url,
            lines,
            _runtime: runtime,
        }
    }

    fn lines(&self) -> usize {
        self.lines.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A Reddit-compatible listing server on a free loopback port (`/r/{sub}/new.json`, Reddit's
/// JSON shape and `before`/`after` slicing) whose subreddit gains 150 submissions at each
/// request, so a feed spout always finds new ones.
struct FeedServer {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

impl FeedServer {
    /// Headlines the submissions' titles cycle through.
    const TITLES: [&str; 4] = [
        "Peace deal brings hope as aid convoys reach the border",
        "Central bank raises rates as inflation stays high",
        "Deadly floods displace thousands as rivers burst their banks",
        "Leaders meet for climate talks as emissions hit a record",
    ];

    fn start() -> FeedServer {
        use std::sync::atomic::{AtomicU64, Ordering};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let published = std::sync::Arc::new(AtomicU64::new(0));
        let app = axum::Router::new().route(
            "/r/{sub}/new.json",
            axum::routing::get(move |query: axum::extract::RawQuery| {
                let newest = published.fetch_add(150, Ordering::SeqCst) + 150;
                async move { FeedServer::listing(newest, query.0.unwrap_or_default()) }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("the address"));
        runtime.spawn(async move { axum::serve(listener, app).await });
        FeedServer {
            url,
            _runtime: runtime,
        }
    }

    /// Submissions 1..=newest, newest first, sliced as Reddit slices by `before`/`after`.
    fn listing(newest: u64, query: String) -> String {
        let param = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        let limit: u64 = param("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
        let number = |fullname: String| {
            fullname
                .strip_prefix("t3_")
                .and_then(|id| u64::from_str_radix(id, 36).ok())
                .map(|n| n.saturating_sub(1_000_000))
        };
        let numbers: Vec<u64> = match (param("before").map(number), param("after").map(number)) {
            (Some(Some(b)), _) => (b + 1..=(b + limit).min(newest)).rev().collect(),
            (_, Some(Some(a))) => (a.saturating_sub(limit).max(1)..a).rev().collect(),
            (Some(None), _) | (_, Some(None)) => Vec::new(),
            (None, None) => (newest.saturating_sub(limit) + 1..=newest).rev().collect(),
        };
        let fullname = |n: u64| {
            let mut v = 1_000_000 + n;
            let mut digits = Vec::new();
            while v > 0 {
                digits.push(std::char::from_digit((v % 36) as u32, 36).expect("a digit"));
                v /= 36;
            }
            let id: String = digits.iter().rev().collect();
            (format!("t3_{id}"), id)
        };
        let children: Vec<serde_json::Value> = numbers
            .iter()
            .map(|&n| {
                let (name, id) = fullname(n);
                serde_json::json!({"kind": "t3", "data": {
                    "subreddit": "worldnews", "selftext": "", "title": Self::TITLES[n as usize % 4],
                    "name": name, "id": id, "author": format!("reporter{}", n % 17),
                    "score": n % 500, "num_comments": n % 40, "created_utc": 1_700_000_000.0 + n as f64,
                    "url": format!("https://example.com/{n}"),
                    "permalink": format!("/r/worldnews/comments/{id}/story/"), "is_self": false
                }})
            })
            .collect();
        let after = numbers.last().filter(|&&n| n > 1).map(|&n| fullname(n).0);
        serde_json::json!({"kind": "Listing", "data": {
            "after": after, "dist": children.len(), "modhash": "", "children": children, "before": null
        }})
        .to_string()
    }
}

/// Runs one SQL statement on the local PostgreSQL `test` database; its output, unaligned.
fn psql(sql: &str) -> String {
    let out = StdCommand::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tA",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs (PostgreSQL client; see SERVICES.md)");
    assert!(
        out.status.success(),
        "psql {sql}: {} (is PostgreSQL running on 127.0.0.1:5432?)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
