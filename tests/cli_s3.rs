//! The `s3` sink end to end, against a real S3-compatible server (moto, `TOPO_S3_ENDPOINT`,
//! default `http://127.0.0.1:9010`): `examples/sensors_archive.toml` run with `topo run
//! --until-idle` archives every reading of the generator, each once, into gzip JSON-lines objects
//! under the hour partition of its own timestamp, while the alerts go to standard output.

use std::io::Read;
use std::time::Duration;

use topo_test_support::s3::{create_bucket, endpoint, objects, unique_bucket};

#[test]
fn the_example_archives_every_reading_once_under_its_hour() {
    const COUNT: usize = 20_000;
    let bucket = unique_bucket("example");
    create_bucket(&bucket);
    let state = tempfile::tempdir().expect("temp dir");
    let out = assert_cmd::Command::cargo_bin("topo")
        .expect("the topo binary")
        .env_remove("RUST_LOG")
        .env("S3_URL", format!("s3://{bucket}/raw"))
        .env("S3_ENDPOINT", endpoint())
        .env("COUNT", COUNT.to_string())
        .env("RATE", "20000")
        .env("TOPO_STATE_DIR", state.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .args(["run", "--quiet", "--until-idle"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/sensors_archive.toml"
        ))
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run topo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "topo failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Alerts: windows of an overheating device, printed as JSON lines.
    let alerts = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["avg_temperature"].as_f64().is_some_and(|t| t > 30.0))
        .count();
    assert!(alerts > 0, "no alert printed:\n{stdout}");

    let stored = objects(&bucket, "raw/");
    assert!(!stored.is_empty(), "no object stored");
    let mut readings = 0;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for o in &stored {
        assert!(o.key.ends_with(".jsonl.gz"), "{}", o.key);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&o.data[..])
            .read_to_string(&mut text)
            .expect("gzip");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let ts = v["timestamp"].as_i64().expect("timestamp");
            let hour = chrono_hour(ts);
            assert!(
                o.key.contains(&hour),
                "reading at {ts} ({hour}) stored in {}",
                o.key
            );
            *seen.entry(line.to_string()).or_default() += 1;
            readings += 1;
        }
    }
    assert_eq!(readings, COUNT, "every reading archived, none twice");
    assert!(seen.values().all(|&n| n == 1), "a reading stored twice");
}

/// `dt=YYYY-MM-DD/hour=HH` of a time in ms since the epoch (UTC).
fn chrono_hour(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .format("dt=%Y-%m-%d/hour=%H")
        .to_string()
}
