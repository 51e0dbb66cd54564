//! The `parse` bolt against fixtures: one file per format under `tests/fixtures/parse/`, each
//! with the bolt's options and cases — an input line and either the values expected on the
//! `default` stream or the reason expected on the `error` stream.

use chrono::Datelike;
use serde::Deserialize;
use topo_bolts::{Format, Parse, ParseOptions};
use topo_runtime::testing::{BoltTester, Executed};
use topo_runtime::{Value, values};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    options: ParseOptions,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    input: String,
    /// Values expected on `default`; absent with `error`, empty when nothing is emitted.
    #[serde(default)]
    default: Option<Vec<Value>>,
    /// The reason expected on `error`.
    #[serde(default)]
    error: Option<String>,
}

fn tester(opts: ParseOptions) -> BoltTester {
    let bolt = Parse::new(opts).expect("valid options");
    BoltTester::basic(move || bolt.clone(), ["line"])
}

fn check_one(name: &str, case: &Case, run: &Executed) {
    let ctx = format!("{name}: input {:?}", case.input);
    assert!(run.acked && !run.failed, "{ctx}: not acked");
    assert!(run.emitted.iter().all(|e| e.anchored), "{ctx}: unanchored");
    match (&case.default, &case.error) {
        (Some(expected), None) => {
            if expected.is_empty() {
                assert!(run.emitted.is_empty(), "{ctx}: emitted {:?}", run.emitted);
                return;
            }
            assert_eq!(run.emitted.len(), 1, "{ctx}: emitted {:?}", run.emitted);
            let e = &run.emitted[0];
            assert_eq!(e.stream, "default", "{ctx}: {:?}", e.values);
            assert_eq!(e.values.to_vec(), *expected, "{ctx}");
        }
        (None, Some(reason)) => {
            assert_eq!(run.emitted.len(), 1, "{ctx}: emitted {:?}", run.emitted);
            let e = &run.emitted[0];
            assert_eq!(e.stream, "error", "{ctx}: {:?}", e.values);
            assert_eq!(
                e.values.to_vec(),
                vec![
                    Value::from(reason.as_str()),
                    Value::from(case.input.as_str())
                ],
                "{ctx}"
            );
        }
        _ => panic!("{ctx}: a case needs exactly one of `default` and `error`"),
    }
}

fn run_fixture(name: &str) {
    let path = format!(
        "{}/tests/fixtures/parse/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    // RFC 3164 timestamps carry no year: the bolt assumes the current one.
    let text = text.replace("$YEAR", &chrono::Utc::now().year().to_string());
    let fixture: Fixture = serde_json::from_str(&text).expect("fixture JSON");
    let mut t = tester(fixture.options);
    for case in &fixture.cases {
        let run = t.execute(values![case.input.as_str()]);
        check_one(name, case, &run);
    }
}

#[test]
fn json() {
    run_fixture("json");
}

#[test]
fn csv() {
    run_fixture("csv");
}

#[test]
fn csv_with_header() {
    run_fixture("csv_header");
}

#[test]
fn tsv() {
    run_fixture("tsv");
}

#[test]
fn clf() {
    run_fixture("clf");
}

#[test]
fn combined() {
    run_fixture("combined");
}

#[test]
fn syslog() {
    run_fixture("syslog");
}

#[test]
fn kv() {
    run_fixture("kv");
}

#[test]
fn kv_custom_delimiter_and_separator() {
    run_fixture("kv_custom");
}

#[test]
fn bytes_input_is_parsed_and_bad_input_fields_go_to_error() {
    let mut opts = ParseOptions::new(Format::Kv);
    opts.fields = vec!["a".into()];
    let mut t = tester(opts);
    let run = t.execute(values![b"a=1".to_vec()]);
    assert_eq!(run.emitted[0].stream, "default");
    assert_eq!(run.emitted[0].values.to_vec(), vec![Value::from("1")]);

    let run = t.execute(values![vec![0xffu8, 0xfe]]);
    assert!(run.acked);
    assert_eq!(run.emitted[0].stream, "error");
    let reason = run.emitted[0].values[0].as_str().unwrap();
    assert!(
        reason.starts_with("field `line` is not valid UTF-8"),
        "{reason}"
    );
    assert_eq!(run.emitted[0].values[1], Value::from(vec![0xffu8, 0xfe]));

    let run = t.execute(values![42]);
    assert!(run.acked && !run.failed);
    assert_eq!(run.emitted[0].stream, "error");
    assert_eq!(
        run.emitted[0].values.to_vec(),
        vec![
            Value::from("field `line` is an int, expected a string or bytes"),
            Value::from(42)
        ]
    );
}

#[test]
fn missing_input_field_goes_to_error() {
    let mut opts = ParseOptions::new(Format::Json);
    opts.field = "body".into();
    opts.fields = vec!["a".into()];
    let mut t = tester(opts);
    let run = t.execute(values!["{}"]);
    assert!(run.acked && !run.failed);
    assert_eq!(run.emitted.len(), 1);
    assert_eq!(run.emitted[0].stream, "error");
    let reason = run.emitted[0].values[0].as_str().unwrap();
    assert!(reason.contains("no field `body`"), "{reason}");
    assert_eq!(run.emitted[0].values[1], Value::Null);
}

#[test]
fn invalid_options_are_reported_with_the_option() {
    let err = |toml: &str| -> String {
        let opts: ParseOptions = serde_json::from_str(toml).expect("options");
        Parse::new(opts).expect_err("invalid")
    };
    assert_eq!(
        err(r#"{"format": "csv"}"#),
        "format `csv` needs option `fields` (the column names) or `header = true` with \
         `fields` naming the columns to output"
    );
    assert!(err(r#"{"format": "json"}"#).contains("option `fields`"));
    assert!(err(r#"{"format": "kv"}"#).contains("option `fields`"));
    assert!(
        err(r#"{"format": "clf", "fields": ["a"]}"#).contains("option `fields` is not allowed")
    );
    assert!(err(r#"{"format": "json", "fields": ["a"], "header": true}"#).contains("`header`"));
    assert!(err(r#"{"format": "csv", "fields": ["a", "a"]}"#).contains("`a` twice"));
    assert!(
        err(r#"{"format": "json", "fields": ["a"], "delimiter": ","}"#).contains("`delimiter`")
    );
    assert!(err(r#"{"format": "kv", "fields": ["a"], "separator": ""}"#).contains("`separator`"));
    let unknown = serde_json::from_str::<ParseOptions>(r#"{"format": "csv", "colums": []}"#);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `colums`")
    );
    let bad_format = serde_json::from_str::<ParseOptions>(r#"{"format": "xml"}"#);
    assert!(
        bad_format
            .unwrap_err()
            .to_string()
            .contains("unknown variant `xml`")
    );
}

#[test]
fn declares_default_and_error_streams() {
    let bolt = Parse::new(ParseOptions::new(Format::Clf)).unwrap();
    assert_eq!(
        bolt.output_fields(),
        [
            "host",
            "ident",
            "user",
            "timestamp",
            "method",
            "path",
            "protocol",
            "status",
            "bytes"
        ]
    );
    let mut t = BoltTester::basic(move || bolt.clone(), ["line"]);
    let run = t.execute(values!["garbage"]);
    assert_eq!(run.emitted[0].stream, "error");
}

#[test]
fn header_without_a_requested_column_rejects_every_record() {
    run_fixture("csv_header_missing");
}
