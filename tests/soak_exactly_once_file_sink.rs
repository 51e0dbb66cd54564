//! Exactly-once output across SIGKILLs: a `file` spout over a file of N distinct lines feeds a
//! `file` sink (2 tasks) with `guarantee = "exactly_once"`. The sink writes into `out/.pending/`
//! and publishes a file into `out/` only once a checkpoint covering it completes; a restore
//! publishes what the restored checkpoint covers and removes what was written after it. The run
//! is killed with SIGKILL at seeded points of the published output (each time only after it
//! completed a checkpoint of its own) and started again on the same state directory; a last run
//! reads to the end (`--until-idle`). The published files must hold every line exactly once:
//! none lost, none twice.
//!
//! Seed: printed; `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_exactly_once_file_sink`
//! reproduces the kill points.

use std::path::Path;
use std::time::Duration;

use topo_test_support::soak::{SinkOutput, Soak, published_files, write_lines};

/// Distinct lines in the input file.
const N: usize = 40_000;
/// SIGKILLs during the run.
const KILLS: usize = 12;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(50);

fn topology(dir: &Path) -> String {
    format!(
        r#"
name = "soak-eo-file"

[config]
guarantee = "exactly_once"
checkpoint_interval = "50ms"

[spouts.lines]
kind = "file"
paths = ["{dir}/in.txt"]
poll_interval = "10ms"
checkpoint_interval = "50ms"

[bolts.out]
kind = "file"
dir = "{dir}/out"
prefix = "lines"
parallelism = 2
batch = {{ max_records = 200, interval = "10ms" }}
rotate = {{ max_bytes = 65536 }}
inputs = [{{ from = "lines" }}]
"#,
        dir = dir.display()
    )
}

#[test]
fn published_files_hold_each_record_exactly_once_after_kills() {
    let test = "soak_exactly_once_file_sink";
    let mut soak = Soak::new(
        test,
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        topology,
    )
    .env(
        "RUST_LOG",
        &std::env::var("TOPO_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let input: Vec<String> = (0..N).map(|i| format!("record-{i:06}")).collect();
    write_lines(&soak.dir().join("in.txt"), &input);
    println!("kill points (records published): {:?}", soak.kill_points());
    let mut output = SinkOutput::new(&soak.out(), "line");
    soak.kill_after_own_checkpoints(
        "soak-eo-file",
        |_| Vec::new(),
        || output.poll(),
        |_, _, _| {},
    );
    soak.run_to_end(&["--until-idle", "--set", "spouts.lines.until_eof=true"]);
    output.poll();
    let files = published_files(&soak.out());
    assert!(
        files.iter().all(|f| !f.ends_with(".part")),
        "exactly-once writes no `.part` file into the published directory: {files:?}"
    );
    let tally = output.tally(&input);
    soak.summary(
        format_args!("exactly-once file sink, {} files", files.len()),
        &tally,
        "none allowed",
        output.torn_tails(),
    );
    let context = soak.context("exactly-once file sink");
    assert_eq!(soak.killed(), KILLS, "{context}");
    tally.assert_nothing_lost(&context);
    tally.assert_duplicates_within(0, "(exactly once)", &context);
    assert_eq!(
        output.torn_tails(),
        0,
        "published files are whole\n{context}"
    );
}
