//! An S3-compatible server for tests: moto at `TOPO_S3_ENDPOINT` (default
//! `http://127.0.0.1:9010`), started by `scripts/services start`. Buckets are made and objects
//! read with boto3 (AWS's Python SDK, in moto's virtual environment): a reader independent of
//! the `object_store` client topo writes with. Calls that fail panic with what went wrong.

use std::path::PathBuf;
use std::process::Command;

/// The version `scripts/services` installs.
const MOTO_VERSION: &str = "5.2.6";

/// The server's address.
pub fn endpoint() -> String {
    std::env::var("TOPO_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9010".into())
}

/// The Python of moto's virtual environment (it holds boto3).
fn python() -> PathBuf {
    let python = crate::tools_dir()
        .join(format!("moto-{MOTO_VERSION}"))
        .join("bin")
        .join("python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/services start (it installs moto {MOTO_VERSION})",
        python.display()
    );
    python
}

const CLIENT: &str = r#"
import sys, json, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
"#;

/// Runs a boto3 program (after `CLIENT`, with `args` after the endpoint); its output.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(format!("{CLIENT}{program}"))
        .arg(endpoint())
        .args(args)
        .output()
        .expect("start python");
    assert!(
        out.status.success(),
        "boto3 failed (is the server up? scripts/services start): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Creates a bucket.
pub fn create_bucket(bucket: &str) {
    run("s3.create_bucket(Bucket=sys.argv[2])", &[bucket]);
}

/// A bucket name no other test uses (3 to 63 characters of a-z, 0-9, `-`).
pub fn unique_bucket(what: &str) -> String {
    let name = crate::unique(what).to_lowercase().replace('_', "-");
    name.chars().take(63).collect()
}

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its ETag, without quotes (a multipart upload's ends in `-<parts>`).
    pub etag: String,
    /// Its bytes, as stored.
    pub data: Vec<u8>,
}

/// Every object of `bucket` under `prefix`, by key.
pub fn objects(bucket: &str, prefix: &str) -> Vec<Object> {
    let program = r#"
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])["Body"].read()
        print(json.dumps({"key": o["Key"], "etag": o["ETag"].strip('"'), "data": body.hex()}))
"#;
    let mut out: Vec<Object> = run(program, &[bucket, prefix])
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let hex = v["data"].as_str().expect("data");
            Object {
                key: v["key"].as_str().expect("key").to_string(),
                etag: v["etag"].as_str().expect("etag").to_string(),
                data: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}
