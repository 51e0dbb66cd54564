//! Exactly-once objects in an S3-compatible store across SIGKILLs: a `file` spout over a file of
//! N distinct lines feeds the `s3` sink with `guarantee = "exactly_once"` (uncompressed JSON
//! lines). Each batch's objects are staged as multipart uploads and completed when the checkpoint
//! covering them completes. The run is killed with SIGKILL at seeded points of the records
//! visible (each time only after it completed a checkpoint of its own), started again on the same
//! state directory with another sink parallelism (2, 3, 1, ...), and a last run reads to the end
//! (`--until-idle`). The bucket, read back with boto3, must hold every line exactly once.
//!
//! Needs moto on `TOPO_S3_ENDPOINT` (`scripts/services start`). Seed: printed;
//! `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_exactly_once_s3` reproduces the kill
//! points.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use topo_test_support::s3::{create_bucket, endpoint, objects, unique_bucket};
use topo_test_support::soak::{Soak, Tally, write_lines};

/// Distinct lines in the input file.
const N: usize = 20_000;
/// SIGKILLs during the run.
const KILLS: usize = 10;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(120);

fn topology(dir: &Path, bucket: &str) -> String {
    format!(
        r#"
name = "soak-eo-s3"

[config]
guarantee = "exactly_once"
checkpoint_interval = "50ms"

[spouts.lines]
kind = "file"
paths = ["{dir}/in.txt"]
poll_interval = "10ms"

[bolts.out]
kind = "s3"
url = "s3://{bucket}/soak"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
compression = "none"
fields = ["line"]
parallelism = 2
batch = {{ max_records = 50, interval = "10ms" }}
inputs = [{{ from = "lines" }}]
"#,
        dir = dir.display(),
        endpoint = endpoint()
    )
}

/// Counts the records visible in the bucket as the soak goes: each object is read once (objects
/// are immutable), by the same client library the sink uses, for speed; the final tally reads
/// everything again with boto3.
struct Visible {
    rt: tokio::runtime::Runtime,
    store: object_store::aws::AmazonS3,
    counted: HashMap<String, usize>,
}

impl Visible {
    fn new(bucket: &str) -> Visible {
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(endpoint())
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Visible {
            rt,
            store,
            counted: HashMap::new(),
        }
    }

    fn records(&mut self) -> usize {
        use futures_util::TryStreamExt;
        let Visible { rt, store, counted } = self;
        rt.block_on(async {
            let prefix = object_store::path::Path::from("soak");
            let listed: Vec<_> = store
                .list(Some(&prefix))
                .try_collect()
                .await
                .expect("list the bucket");
            for meta in listed {
                let key = meta.location.to_string();
                if counted.contains_key(&key) {
                    continue;
                }
                let bytes = store
                    .get(&meta.location)
                    .await
                    .expect("get an object")
                    .bytes()
                    .await
                    .expect("read an object");
                counted.insert(key, bytes.iter().filter(|&&b| b == b'\n').count());
            }
        });
        counted.values().sum()
    }
}

#[test]
fn the_bucket_holds_each_record_exactly_once_after_kills_and_rescaling() {
    let test = "soak_exactly_once_s3";
    let bucket = unique_bucket("soak-eo");
    create_bucket(&bucket);
    let mut soak = Soak::new(
        test,
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        |dir| topology(dir, &bucket),
    )
    .env(
        "RUST_LOG",
        &std::env::var("TOPO_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let input: Vec<String> = (0..N).map(|i| format!("record-{i:06}")).collect();
    write_lines(&soak.dir().join("in.txt"), &input);
    println!("kill points (records visible): {:?}", soak.kill_points());
    let parallelism = ["2", "3", "1"];
    let set = |run: usize| format!("bolts.out.parallelism={}", parallelism[run % 3]);
    let mut visible = Visible::new(&bucket);
    let run = soak.kill_after_own_checkpoints(
        "soak-eo-s3",
        |run| vec!["--set".into(), set(run)],
        || visible.records(),
        |_, _, _| {},
    );
    soak.run_to_end(&[
        "--until-idle",
        "--set",
        "spouts.lines.until_eof=true",
        "--set",
        &set(run),
    ]);
    let stored = objects(&bucket, "soak/");
    let output = stored.iter().flat_map(|o| {
        String::from_utf8(o.data.clone())
            .expect("utf-8")
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["line"]
                    .as_str()
                    .expect("line")
                    .to_string()
            })
            .collect::<Vec<_>>()
    });
    let tally = Tally::of(&input, output);
    soak.summary(
        format_args!("exactly-once s3 sink, {} objects", stored.len()),
        &tally,
        "none allowed",
        0,
    );
    let context = soak.context("exactly-once s3 sink");
    assert_eq!(soak.killed(), KILLS, "{context}");
    tally.assert_nothing_lost(&context);
    tally.assert_duplicates_within(0, "(exactly once)", &context);
    assert!(
        tally.unexpected.is_empty(),
        "{:?}\n{context}",
        tally.unexpected
    );
}
