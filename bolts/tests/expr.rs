//! The `filter` and `map` bolts: CEL expressions over tuple fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use smol_str::SmolStr;
use topo_bolts::{Filter, FilterOptions, Map, MapOptions};
use topo_runtime::testing::{BoltTester, Executed};
use topo_runtime::{Value, Values, values};

fn filter(expr: &str, fields: &[&str]) -> BoltTester {
    let opts = FilterOptions::new(expr, fields.iter().copied());
    let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    BoltTester::basic(move || Filter::new(opts.clone()).unwrap(), fields)
}

fn map_opts(fields: &[(&str, &str)]) -> MapOptions {
    MapOptions {
        fields: fields
            .iter()
            .map(|(n, e)| (n.to_string(), e.to_string()))
            .collect(),
    }
}

fn map(fields: &[(&str, &str)], input: &[&str]) -> BoltTester {
    let bolt = Map::new(map_opts(fields)).expect("valid options");
    let input: Vec<String> = input.iter().map(|f| f.to_string()).collect();
    BoltTester::basic(move || bolt.clone(), input)
}

fn record(pairs: &[(&str, Value)]) -> Value {
    let m: BTreeMap<SmolStr, Value> = pairs
        .iter()
        .map(|(k, v)| (SmolStr::new(k), v.clone()))
        .collect();
    Value::Map(Arc::new(m))
}

/// The one tuple emitted on `default`, checking it was acked and anchored.
fn emitted_default(run: &Executed) -> Values {
    assert!(run.acked && !run.failed, "{run:?}");
    assert_eq!(run.emitted.len(), 1, "{run:?}");
    let e = &run.emitted[0];
    assert_eq!(e.stream, "default", "{run:?}");
    assert!(e.anchored);
    e.values.clone()
}

/// The one tuple emitted on `error`: (reason, record).
fn emitted_error(run: &Executed) -> (String, Value) {
    assert!(run.acked && !run.failed, "{run:?}");
    assert_eq!(run.emitted.len(), 1, "{run:?}");
    let e = &run.emitted[0];
    assert_eq!(e.stream, "error", "{run:?}");
    (
        e.values[0].as_str().expect("a reason").to_string(),
        e.values[1].clone(),
    )
}

#[test]
fn filter_keeps_true_and_drops_false() {
    let mut t = filter(
        r#"status >= 500 && path.startsWith("/api")"#,
        &["status", "path"],
    );
    let kept = t.execute(values![503, "/api/users"]);
    assert_eq!(emitted_default(&kept), values![503, "/api/users"]);
    for v in [values![200, "/api/users"], values![500, "/web"]] {
        let run = t.execute(v);
        assert!(run.acked && !run.failed);
        assert!(run.emitted.is_empty(), "{run:?}");
    }
}

#[test]
fn filter_non_bool_goes_to_error() {
    let mut t = filter("status + 1", &["status", "path"]);
    let (reason, rec) = emitted_error(&t.execute(values![200, "/"]));
    assert_eq!(reason, "`status + 1` returned int, expected a bool");
    assert_eq!(
        rec,
        record(&[("status", Value::Int(200)), ("path", Value::from("/"))])
    );
}

#[test]
fn filter_missing_field_and_type_error_go_to_error() {
    let mut t = filter("method == 'GET'", &["status", "path"]);
    let (reason, _) = emitted_error(&t.execute(values![200, "/"]));
    assert!(reason.contains("method"), "{reason}");
    assert!(reason.starts_with("`method == 'GET'` failed:"), "{reason}");

    let mut t = filter("status > 'a'", &["status", "path"]);
    let (reason, rec) = emitted_error(&t.execute(values![200, "/"]));
    assert!(reason.starts_with("`status > 'a'` failed:"), "{reason}");
    assert_eq!(
        rec,
        record(&[("status", Value::Int(200)), ("path", Value::from("/"))])
    );

    // Null arithmetic is an error; a null test is not.
    let mut t = filter("status + 1 > 0", &["status", "path"]);
    emitted_error(&t.execute(values![Value::Null, "/"]));
    let mut t = filter("status == null", &["status", "path"]);
    assert_eq!(
        emitted_default(&t.execute(values![Value::Null, "/"])),
        values![Value::Null, "/"]
    );
}

#[test]
fn filter_passes_declared_fields_by_name() {
    // The expression may use fields not passed through; passed fields are picked by name.
    let opts = FilterOptions::new("status >= 500", ["path"]);
    let mut t = BoltTester::basic(
        move || Filter::new(opts.clone()).unwrap(),
        ["status", "path"],
    );
    assert_eq!(
        emitted_default(&t.execute(values![500, "/x"])),
        values!["/x"]
    );
}

#[test]
fn filter_on_nested_values_and_regex() {
    let mut t = filter(
        r#"tags.exists(t, t == "prod") && labels.region.matches("^eu-") && size(body) > 2"#,
        &["tags", "labels", "body"],
    );
    let tags = Value::from(vec![Value::from("prod"), Value::from("web")]);
    let labels = record(&[("region", Value::from("eu-west-1"))]);
    let body = Value::from(vec![1u8, 2, 3]);
    let run = t.execute(values![tags.clone(), labels, body.clone()]);
    emitted_default(&run);
    let run = t.execute(values![
        tags,
        record(&[("region", Value::from("us-east-1"))]),
        body
    ]);
    assert!(run.emitted.is_empty());
}

#[test]
fn compile_errors_name_the_expression() {
    let err = Filter::new(FilterOptions::new("status >=", ["status"])).unwrap_err();
    assert!(
        err.starts_with("option `expression` `status >=` does not parse: "),
        "{err}"
    );
    let err = Filter::new(FilterOptions::new("", ["status"])).unwrap_err();
    assert_eq!(err, "option `expression` is empty");
    let err = Filter::new(FilterOptions::new("true", ["a", "b", "a"])).unwrap_err();
    assert_eq!(err, "option `fields` names `a` twice");

    let err = Map::new(map_opts(&[("ok", "1"), ("bad", "a + (")])).unwrap_err();
    assert!(
        err.starts_with("field `bad`: expression `a + (` does not parse: "),
        "{err}"
    );
    let err = Map::new(map_opts(&[])).unwrap_err();
    assert_eq!(err, "option `fields` must name at least one output field");
}

#[test]
fn map_computes_renames_and_converts() {
    let mut t = map(
        &[
            ("level", "status >= 500 ? 'error' : 'ok'"),
            ("route", "path"),
            ("ms", "duration * 1000.0"),
            ("next", "status + 1"),
            (
                "api",
                r#"path.startsWith("/api") && path.endsWith("users")"#,
            ),
            ("len", "size(path)"),
            ("label", r#"string(status) + " " + path"#),
            (
                "id",
                r#"path.matches("^/api/v[0-9]+/") ? int(path.split("/")[2].size()) : 0"#,
            ),
        ],
        &["status", "path", "duration"],
    );
    // `split` is not in the CEL standard library: an unknown function is an evaluation error.
    let (reason, _) = emitted_error(&t.execute(values![200, "/api/v1/users", 0.25]));
    assert!(reason.starts_with("field `id`: "), "{reason}");

    let mut t = map(
        &[
            ("level", "status >= 500 ? 'error' : 'ok'"),
            ("route", "path"),
            ("ms", "duration * 1000.0"),
            ("next", "status + 1"),
            (
                "api",
                r#"path.startsWith("/api") && path.endsWith("users")"#,
            ),
            ("len", "size(path)"),
            ("label", r#"string(status) + " " + path"#),
            ("v1", r#"path.matches("^/api/v[0-9]+/")"#),
            ("both", "[status, double(status) / 2.0]"),
            ("obj", "{'s': status, 'p': path}"),
        ],
        &["status", "path", "duration"],
    );
    let out = emitted_default(&t.execute(values![503, "/api/v1/users", 0.25]));
    assert_eq!(
        out.to_vec(),
        vec![
            Value::from("error"),
            Value::from("/api/v1/users"),
            Value::Float(250.0),
            Value::Int(504),
            Value::Bool(true),
            Value::Int(13),
            Value::from("503 /api/v1/users"),
            Value::Bool(true),
            Value::from(vec![Value::Int(503), Value::Float(251.5)]),
            record(&[("p", Value::from("/api/v1/users")), ("s", Value::Int(503))]),
        ]
    );
}

#[test]
fn map_declares_outputs_in_order() {
    let bolt = Map::new(map_opts(&[("z", "1"), ("a", "2"), ("m", "3")])).unwrap();
    assert_eq!(bolt.output_fields(), ["z", "a", "m"]);
    let mut t = BoltTester::basic(move || bolt.clone(), ["x"]);
    assert_eq!(emitted_default(&t.execute(values![0])), values![1, 2, 3]);
}

#[test]
fn map_null_handling() {
    let mut t = map(
        &[
            ("user", "user != null ? user : 'anonymous'"),
            ("raw", "user"),
            ("missing", "user == null"),
        ],
        &["user"],
    );
    assert_eq!(
        emitted_default(&t.execute(values![Value::Null])),
        values!["anonymous", Value::Null, true]
    );
    assert_eq!(
        emitted_default(&t.execute(values!["ann"])),
        values!["ann", "ann", false]
    );

    let mut t = map(&[("n", "size(user)")], &["user"]);
    let (reason, rec) = emitted_error(&t.execute(values![Value::Null]));
    assert!(
        reason.starts_with("field `n`: `size(user)` failed:"),
        "{reason}"
    );
    assert_eq!(rec, record(&[("user", Value::Null)]));
}

#[test]
fn map_errors_go_to_error_stream() {
    let mut t = map(&[("a", "x + 1"), ("b", "y / 0")], &["x", "y"]);
    let (reason, _) = emitted_error(&t.execute(values!["s", 1]));
    assert!(reason.starts_with("field `a`: `x + 1` failed:"), "{reason}");
    let (reason, rec) = emitted_error(&t.execute(values![1, 1]));
    assert!(reason.starts_with("field `b`: `y / 0` failed:"), "{reason}");
    assert_eq!(rec, record(&[("x", Value::Int(1)), ("y", Value::Int(1))]));
    // int and double do not mix in CEL.
    let mut t = map(&[("ms", "d * 1000")], &["d"]);
    emitted_error(&t.execute(values![0.5]));
}

#[test]
fn map_timestamps_and_durations() {
    let mut t = map(
        &[
            ("hour", "timestamp(ts).getHours()"),
            ("later", "timestamp(ts) + duration('90m')"),
            ("secs", "duration('1.5s')"),
        ],
        &["ts"],
    );
    let out = emitted_default(&t.execute(values!["2024-01-02T03:04:05Z"]));
    assert_eq!(out[0], Value::Int(3));
    assert_eq!(out[1], Value::from("2024-01-02T04:34:05+00:00"));
    assert_eq!(out[2], Value::Float(1.5));
}

#[test]
fn options_from_toml() {
    #[derive(serde::Deserialize)]
    struct Bolts {
        f: FilterOptions,
        m: MapOptions,
    }
    let b: Bolts = toml::from_str(
        r#"
        [f]
        expression = 'status >= 500 && path.startsWith("/api")'
        fields = ["status", "path"]

        [m]
        fields = [
            { level = "status >= 500 ? 'error' : 'ok'" },
            { path = "path" },
            { ms = "duration * 1000.0" },
        ]
        "#,
    )
    .unwrap();
    assert_eq!(b.f.fields, ["status", "path"]);
    let names: Vec<&String> = b.m.fields.keys().collect();
    assert_eq!(names, ["level", "path", "ms"]);
    assert_eq!(b.m.fields["ms"], "duration * 1000.0");
    Map::new(b.m).unwrap();
    Filter::new(b.f).unwrap();

    // A single table is accepted (its order is the loader's).
    let m: MapOptions = toml::from_str("fields = { a = 'x', b = 'y' }").unwrap();
    assert_eq!(m.fields.len(), 2);
    // JSON keeps document order either way.
    let m: MapOptions = serde_json::from_str(r#"{"fields": {"z": "1", "a": "2"}}"#).unwrap();
    assert_eq!(m.fields.keys().collect::<Vec<_>>(), ["z", "a"]);
    let err = toml::from_str::<MapOptions>("fields = [{ a = 'x' }, { a = 'y' }]").unwrap_err();
    assert!(err.to_string().contains("`a` is given twice"), "{err}");
    let err = toml::from_str::<MapOptions>("fields = 3").unwrap_err();
    assert!(
        err.to_string().contains("expected `fields` as a list"),
        "{err}"
    );

    let err = toml::from_str::<FilterOptions>("expression = 'true'\nexpr = 'x'\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `expr`"), "{err}");
}

/// Evaluation cost: `cargo test -p topo-bolts --release --test expr -- --ignored --nocapture`.
#[test]
#[ignore]
fn evaluation_cost() {
    let n = 1_000_000;
    let mut t = filter(
        r#"status >= 500 && path.startsWith("/api")"#,
        &["status", "path"],
    );
    let start = std::time::Instant::now();
    for i in 0..n {
        t.execute(values![if i % 2 == 0 { 503 } else { 200 }, "/api/users"]);
    }
    let per = start.elapsed() / n;
    println!("filter via BoltTester (driver, collector, acking included): {per:?} per tuple");

    // The evaluation alone, as the bolts do it: one compiled program, one function registry, a
    // resolver converting the referenced fields.
    struct Vars(Vec<(&'static str, Value)>);
    impl cel::context::VariableResolver for Vars {
        fn resolve(&self, name: &str) -> Option<cel::Value> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| topo_bolts::expr::to_cel(v))
        }
    }
    let program = cel::Program::compile(r#"status >= 500 && path.startsWith("/api")"#).unwrap();
    let root = cel::Context::default();
    let vars = Vars(vec![
        ("status", Value::Int(503)),
        ("path", Value::from("/api/users")),
    ]);
    let start = std::time::Instant::now();
    for _ in 0..n {
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(&vars);
        assert_eq!(program.execute(&ctx).unwrap(), cel::Value::Bool(true));
    }
    let per = start.elapsed() / n;
    println!("evaluation only: {per:?} per tuple");
}

#[test]
fn map_macros_and_membership() {
    let mut t = map(
        &[
            ("has_region", "has(labels.region)"),
            ("doubled", "nums.map(n, n * 2)"),
            ("big", "nums.filter(n, n > 1)"),
            ("all_pos", "nums.all(n, n > 0)"),
            ("has_two", "2 in nums"),
            ("top", "max(nums[0], nums[1], nums[2])"),
            ("keyed", "'region' in labels"),
        ],
        &["labels", "nums"],
    );
    let nums = Value::from(vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
    let out = emitted_default(&t.execute(values![record(&[("zone", Value::from("a"))]), nums]));
    assert_eq!(
        out.to_vec(),
        vec![
            Value::Bool(false),
            Value::from(vec![Value::Int(2), Value::Int(4), Value::Int(6)]),
            Value::from(vec![Value::Int(2), Value::Int(3)]),
            Value::Bool(true),
            Value::Bool(true),
            Value::Int(3),
            Value::Bool(false),
        ]
    );
}

#[test]
fn error_reasons_read_well() {
    let mut t = filter("method == 'GET'", &["status"]);
    let (reason, _) = emitted_error(&t.execute(values![200]));
    assert_eq!(
        reason,
        "`method == 'GET'` failed: Undeclared reference to 'method'"
    );
    let mut t = map(&[("n", "x + 1")], &["x"]);
    let (reason, _) = emitted_error(&t.execute(values!["a"]));
    println!("{reason}");
    assert!(
        reason.starts_with("field `n`: `x + 1` failed: "),
        "{reason}"
    );
}

/// A filter without `fields` passes its input through: its output stream gets the input's
/// fields when the topology is validated, so a fields grouping downstream can name them.
#[test]
fn filter_without_fields_passes_input_through() {
    use topo_dsl::TopologyBuilder;
    use topo_runtime::testing::{CaptureBolt, VecSpout};

    let rows: Vec<Values> = (0..100i64)
        .map(|i| values![i, format!("k{}", i % 7)])
        .collect();
    let spout = VecSpout::new(["n", "key"], rows);
    let sink = CaptureBolt::new();
    let filter = Filter::new(FilterOptions::new("n % 2 == 0", Vec::<String>::new())).unwrap();
    let mut b = TopologyBuilder::new("pass-through");
    b.set_spout("numbers", spout.factory(), 1);
    b.set_bolt("even", move || filter.clone(), 2)
        .shuffle_grouping("numbers");
    b.set_bolt("sink", sink.factory(), 2)
        .fields_grouping("even", ["key"]);
    let topology = b
        .build()
        .expect("the filter's stream has the spout's fields");
    assert_eq!(
        topology.outputs("even").unwrap()[0].fields,
        [SmolStr::new("n"), SmolStr::new("key")]
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let handle = topo_runtime::submit(topology);
        handle
            .wait_until_idle(std::time::Duration::from_secs(20))
            .await
            .expect("idle");
        handle.stop(std::time::Duration::from_secs(5)).await;
    });
    let mut got: Vec<i64> = sink
        .tuples()
        .iter()
        .map(|c| c.values[0].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..100).step_by(2).collect::<Vec<_>>());
    assert!(spout.acked().iter().all(|&n| n == 1));

    // Inputs with different fields cannot share one pass-through stream.
    let other = VecSpout::new(["n"], vec![values![1]]);
    let filter = Filter::new(FilterOptions::new("true", Vec::<String>::new())).unwrap();
    let mut b = TopologyBuilder::new("mismatch");
    b.set_spout("numbers", VecSpout::new(["n", "key"], vec![]).factory(), 1);
    b.set_spout("other", other.factory(), 1);
    b.set_bolt("all", move || filter.clone(), 1)
        .shuffle_grouping("numbers")
        .shuffle_grouping("other");
    let Err(err) = b.build() else {
        panic!("inputs with different fields were accepted")
    };
    let err = err.to_string();
    assert!(
        err.contains("stream `default` passes its input through, so its inputs must have the same fields, but numbers:default has (n, key) and other:default has (n)"),
        "{err}"
    );
}
