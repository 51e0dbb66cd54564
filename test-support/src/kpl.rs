//! The KPL aggregation format as an independent implementation writes and reads it: the Python
//! package `aws-kinesis-agg` (AWS Labs), installed by `scripts/services start` in a virtual
//! environment under `$TOPO_TOOLS` (default `~/.cache/topo/tools`). The tests check that what
//! it aggregates topo takes apart, and that what topo aggregates it takes apart.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The version `scripts/services` installs.
const VERSION: &str = "1.2.3";

/// The Python interpreter of the virtual environment holding `aws-kinesis-agg`.
pub fn python() -> PathBuf {
    let python = crate::tools_dir()
        .join(format!("kinesis-agg-{VERSION}"))
        .join("bin")
        .join("python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/services start (it installs aws-kinesis-agg {VERSION})",
        python.display()
    );
    python
}

/// Runs a Python program with `aws-kinesis-agg` on `input` (lines); its output lines.
fn run(program: &str, args: &[&str], input: &str) -> Vec<String> {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    // A program that fails at once closes its input: its error output says why, below.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An aggregated record as `aws-kinesis-agg` makes it: what to put.
#[derive(Clone, Debug)]
pub struct Aggregated {
    /// The partition key to put it with.
    pub partition_key: String,
    /// The explicit hash key to put it with.
    pub explicit_hash_key: Option<String>,
    /// The record's data (magic bytes, protobuf, MD5).
    pub data: Vec<u8>,
}

const AGGREGATE: &str = r#"
import sys, json
import aws_kinesis_agg.aggregator as agg
a = agg.RecordAggregator(max_size=int(sys.argv[1]))
def emit(r):
    pk, ehk, data = r.get_contents()
    print(json.dumps({"pk": pk, "ehk": ehk, "data": data.hex()}))
for line in sys.stdin:
    rec = json.loads(line)
    full = a.add_user_record(rec["pk"], bytes.fromhex(rec["data"]))
    if full is not None:
        emit(full)
last = a.clear_and_get()
if last is not None:
    emit(last)
"#;

/// `records` (partition key, data) aggregated by `aws-kinesis-agg` into records of at most
/// `max_size` bytes, in order.
pub fn aggregate(records: &[(String, Vec<u8>)], max_size: usize) -> Vec<Aggregated> {
    let input: String = records
        .iter()
        .map(|(pk, data)| format!("{}\n", serde_json::json!({"pk": pk, "data": hex(data)})))
        .collect();
    run(AGGREGATE, &[&max_size.to_string()], &input)
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            Aggregated {
                partition_key: v["pk"].as_str().expect("pk").to_string(),
                explicit_hash_key: v["ehk"].as_str().map(str::to_string),
                data: unhex(v["data"].as_str().expect("data")),
            }
        })
        .collect()
}

const DEAGGREGATE: &str = r#"
import sys, json, base64
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
records = []
for line in sys.stdin:
    rec = json.loads(line)
    records.append({"SequenceNumber": rec["seq"], "PartitionKey": rec["pk"],
                    "ApproximateArrivalTimestamp": 0, "Data": bytes.fromhex(rec["data"])})
for r in iter_deaggregate_records(records, data_format="Boto3"):
    k = r["kinesis"]
    data = k["data"]
    data = base64.b64decode(data) if k.get("aggregated") else data
    print(json.dumps({"seq": k["sequenceNumber"], "sub": k.get("subSequenceNumber"),
                      "pk": k["partitionKey"], "data": data.hex(),
                      "aggregated": bool(k.get("aggregated"))}))
"#;

/// A user record as `aws-kinesis-agg` takes it out of a Kinesis record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// The Kinesis record's sequence number.
    pub sequence: String,
    /// Its index in the aggregate (`None`: the record was not an aggregate).
    pub sub_sequence: Option<u64>,
    /// Its partition key.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
}

/// The user records `aws-kinesis-agg` takes out of Kinesis records (sequence number,
/// partition key, data), in order.
pub fn deaggregate(records: &[(String, String, Vec<u8>)]) -> Vec<UserRecord> {
    let input: String = records
        .iter()
        .map(|(seq, pk, data)| {
            format!(
                "{}\n",
                serde_json::json!({"seq": seq, "pk": pk, "data": hex(data)})
            )
        })
        .collect();
    run(DEAGGREGATE, &[], &input)
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            UserRecord {
                sequence: v["seq"].as_str().expect("seq").to_string(),
                sub_sequence: (v["aggregated"] == true).then(|| v["sub"].as_u64().expect("sub")),
                partition_key: v["pk"].as_str().expect("pk").to_string(),
                data: unhex(v["data"].as_str().expect("data")),
            }
        })
        .collect()
}
