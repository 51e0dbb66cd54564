//! Soak of the `kinesis` spout: nothing lost, ever. Against kinesalite (`TOPO_KINESIS_ENDPOINT`,
//! default `http://127.0.0.1:4567`, started by `scripts/services start`), the test puts N records
//! into a 2-shard stream with its own client while `topo run` (kinesis spout with 2 tasks ->
//! durable `file` sink) reads them, splits one shard halfway through (SplitShard: the parent is
//! read to its end, then both children), and kills the process with SIGKILL at seeded random
//! points of its progress (distinct records output), restarting it on the same state directory
//! each time; a last run reads to the end (`--until-idle`, `stop_at_end`). The sink's files, read
//! by the test, must hold every record at least once; the duplicates must stay within the records
//! output beyond the shard checkpoints read back after each kill (what a restart reads again).
//!
//! Seed: printed; `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_kinesis` reproduces the
//! kill points and the shard split.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use topo_test_support::kinesis::{
    client, create_stream, delete_stream, endpoint, put_batched, shards, wait_active,
};
use topo_test_support::soak::{SinkOutput, Soak};
use topo_test_support::unique;

/// Records put: far past max_spout_pending (300), the spout's channel (2048 records), its 64
/// records per call, `max_records` per GetRecords (500), the sink's batches (200) and many
/// checkpoint intervals.
const N: usize = 20_000;
/// SIGKILLs during the run.
const KILLS: usize = 10;
/// Records put per PutRecords call.
const PUT_CHUNK: usize = 500;
/// Records put at most ahead of the output (the test keeps pace with the topology).
const AHEAD: usize = 2_500;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(100);

fn topology(stream: &str, out: &Path) -> String {
    format!(
        r#"
name = "soak-kinesis"

[config]
max_spout_pending = 300
message_timeout = "300s"

[spouts.in]
kind = "kinesis"
parallelism = 2
stream = "{stream}"
endpoint = "{endpoint}"
region = "us-east-1"
poll_interval = "200ms"
max_records = 500
checkpoint_interval = "100ms"
shard_refresh = "200ms"
retry = {{ backoff = "20ms", max_backoff = "500ms" }}

[bolts.out]
kind = "file"
dir = "{out}"
prefix = "soak"
fields = ["shard", "sequence", "data"]
batch = {{ max_records = 200, interval = "10ms" }}
inputs = [{{ from = "in" }}]
"#,
        endpoint = endpoint(),
        out = out.display()
    )
}

/// Whether sequence number `a` comes after `b` (decimal strings of any length).
fn after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// The checkpoint of each shard, as the next run will read it: `Err(())` = ended, `Ok(None)` =
/// nothing acked, `Ok(Some(seq))` = acked up to `seq`.
fn checkpoints(state: &Path) -> HashMap<String, Result<Option<String>, ()>> {
    let dir = state.join("soak-kinesis/in");
    let mut out = HashMap::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("shard-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("read a checkpoint");
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON checkpoint");
        let shard = v["shard"].as_str().expect("shard").to_string();
        let state = if v["ended"].as_bool() == Some(true) {
            Err(())
        } else {
            Ok(v["sequence"].as_str().map(str::to_string))
        };
        out.insert(shard, state);
    }
    out
}

/// Splits `shard` at the middle of its hash key range.
async fn split(c: &Client, stream: &str, shard: &str) {
    let shards = shards(c, stream).await;
    let s = shards
        .iter()
        .find(|s| s.shard_id() == shard)
        .expect("the shard to split");
    let range = s.hash_key_range().expect("a hash key range");
    let lo: u128 = range.starting_hash_key().parse().expect("a hash key");
    let hi: u128 = range.ending_hash_key().parse().expect("a hash key");
    c.split_shard()
        .stream_name(stream)
        .shard_to_split(shard)
        .new_starting_hash_key((lo + (hi - lo) / 2 + 1).to_string())
        .send()
        .await
        .expect("split the shard");
}

// The soak: N records, a shard split and SIGKILLs during the run, a last run to the end; every
// record comes out at least once, duplicates only from what the checkpoints left to read again.
#[test]
fn kinesis_spout_loses_nothing_across_a_split_and_kills() {
    let stream = unique("soak");
    let mut soak = Soak::new(
        "soak_kinesis",
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        |dir| topology(&stream, &dir.join("out")),
    )
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let c = rt.block_on(client());
    rt.block_on(create_stream(&c, &stream, 2));
    // The split comes after a random whole number of PutRecords calls in the middle third.
    let split_at = PUT_CHUNK * (N / 3 / PUT_CHUNK + soak.rng.usize(..=N / 3 / PUT_CHUNK));
    let to_split = format!("shardId-00000000000{}", soak.rng.usize(..2));
    println!(
        "kill points (records output): {:?}; split of {to_split} after {split_at} records put",
        soak.kill_points()
    );

    let input: Vec<String> = (0..N).map(|i| format!("record-{i:05}")).collect();
    let keyed: Vec<(String, String)> = input
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("key-{i}"), d.clone()))
        .collect();
    let mut output = SinkOutput::new(&soak.out(), "data");
    let mut put = 0;
    let mut may_repeat = 0;
    soak.start();
    while soak.killing() || put < N {
        let produced = output.poll();
        soak.check_budget(format_args!("{produced} records output, {put} put"));
        if put < N && (put < produced + AHEAD || !soak.killing()) {
            let end = (put + PUT_CHUNK).min(N);
            rt.block_on(put_batched(&c, &stream, &keyed[put..end]));
            put = end;
            if put == split_at {
                rt.block_on(async {
                    split(&c, &stream, &to_split).await;
                    wait_active(&c, &stream).await;
                });
            }
        }
        if soak.kill_if_due(produced, 50) {
            output.poll();
            let cp = checkpoints(&soak.state());
            let mut seen = HashSet::new();
            may_repeat += output
                .records()
                .iter()
                .filter(|r| seen.insert(output.key_of(r)))
                .filter(|r| {
                    let shard = r["shard"].as_str().expect("a shard field");
                    let seq = r["sequence"].as_str().expect("a sequence field");
                    match cp.get(shard) {
                        None | Some(Ok(None)) => true,
                        Some(Ok(Some(acked))) => after(seq, acked),
                        Some(Err(())) => false,
                    }
                })
                .count();
            if soak.killing() {
                soak.start();
            }
            continue;
        }
        soak.pause();
    }
    soak.run_to_end(&["--until-idle", "--set", "spouts.in.stop_at_end=true"]);
    output.poll();

    let shards: HashSet<&str> = output
        .records()
        .iter()
        .filter_map(|r| r["shard"].as_str())
        .collect();
    let tally = output.tally(&input);
    let context = soak.context(format_args!("{tally:?}"));
    tally.assert_nothing_lost(&context);
    assert_eq!(
        shards.len(),
        4,
        "records from the 2 shards and the 2 children of the split: {shards:?}"
    );
    tally.assert_duplicates_within(
        may_repeat,
        "records output beyond the checkpoints at the kills",
        &context,
    );
    soak.summary(
        format_args!("kinesis: records {N}, kills {}", soak.killed()),
        &tally,
        format_args!("bound {may_repeat}"),
        output.torn_tails(),
    );
    rt.block_on(delete_stream(&c, &stream));
}
