//! The `postgres` sink against the PostgreSQL server on 127.0.0.1:5432 (trust auth, database
//! `test`). Each test works in its own table (named with the process id and a counter) and drops
//! it at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_postgres::{Client, NoTls, Row};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::BoltTester;
use topo_runtime::value::Values;
use topo_runtime::{Config, Value, values};
use topo_spouts::{PostgresOptions, PostgresSink};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

mod common;
use common::{Gate, WAIT, run_words_until_idle, runtime, wait_until, word_spout};

// The longest a test waits for something that should take a moment.

/// A connection of the test's own, on a runtime of its own (so it can be used from plain tests
/// and from inside a topology's runtime alike).
struct Db {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Db {
    fn connect() -> Db {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let client = rt.block_on(async {
            let connecting = tokio_postgres::connect(URL, NoTls);
            match tokio::time::timeout(Duration::from_secs(10), connecting).await {
                Ok(Ok((client, connection))) => {
                    tokio::spawn(connection);
                    client
                }
                Ok(Err(e)) => panic!(
                    "PostgreSQL at 127.0.0.1:5432 (database `test`) is not reachable: {e}; start it with `{START}`"
                ),
                Err(_) => panic!(
                    "PostgreSQL at 127.0.0.1:5432 does not answer; start it with `{START}`"
                ),
            }
        });
        Db { rt, client }
    }

    fn exec(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn query(&self, sql: &str) -> Vec<Row> {
        self.rt
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn count(&self, table: &str) -> i64 {
        self.query(&format!("SELECT count(*) FROM {table}"))[0].get(0)
    }
}

/// A table of this test run, dropped at the end (also when the test fails).
struct Table<'a> {
    db: &'a Db,
    name: String,
}

impl<'a> Table<'a> {
    /// Creates `topo_test_<pid>_<n>` with these column definitions.
    fn create(db: &'a Db, columns: &str) -> Table<'a> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "topo_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        db.exec(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({columns})"
        ));
        Table { db, name }
    }
}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        let _ = self.db.rt.block_on(
            self.db
                .client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.name)),
        );
    }
}

fn options(toml_text: &str) -> PostgresOptions {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("options: {e}"))
}

fn sink(toml_text: &str) -> PostgresSink {
    PostgresSink::new(options(toml_text)).unwrap_or_else(|e| panic!("options: {e}"))
}

fn tester(sink: &PostgresSink, fields: &[&'static str]) -> BoltTester {
    let sink = sink.clone();
    BoltTester::full(move || sink.bolt(), fields.iter().copied())
}

fn error_reasons(run: &topo_runtime::testing::Executed) -> Vec<String> {
    run.emitted
        .iter()
        .filter(|e| e.stream == "error")
        .map(|e| e.values[0].as_str().unwrap_or_default().to_string())
        .collect()
}

// Guards: insert writes exactly the records, and inputs are acked only once their batch is
// committed — not while they wait in a batch.
#[test]
fn insert_writes_exact_rows_and_acks_only_after_the_commit() {
    let db = Db::connect();
    let t = Table::create(&db, "word text NOT NULL, n bigint NOT NULL");
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\nbatch = {{ max_records = 3, interval = \"1h\" }}",
        t.name
    ));
    let mut tester = tester(&sink, &["word", "n"]);
    let a = tester.execute(values!["apple", 1]);
    let b = tester.execute(values!["pear", 2]);
    assert!(a.acked_inputs.is_empty() && b.acked_inputs.is_empty());
    assert_eq!(
        db.count(&t.name),
        0,
        "nothing is written before the batch is full"
    );
    let c = tester.execute(values!["apple", 3]);
    assert_eq!(c.acked_inputs, vec![0, 1, 2]);
    assert_eq!(c.errors, 0);
    let rows: Vec<(String, i64)> = db
        .query(&format!("SELECT word, n FROM {} ORDER BY n", t.name))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![("apple".into(), 1), ("pear".into(), 2), ("apple".into(), 3)]
    );
    let d = tester.execute(values!["plum", 4]);
    assert!(d.acked_inputs.is_empty());
    let end = tester.finish();
    assert_eq!(
        end.acked_inputs,
        vec![3],
        "finish writes the rest, then acks it"
    );
    assert_eq!(db.count(&t.name), 4);
}

// Guards: upsert updates rows already in the table, and several records with one key in one
// batch leave the last one (no "cannot affect row a second time").
#[test]
fn upsert_updates_existing_rows_and_keeps_the_last_record_per_key_in_a_batch() {
    let db = Db::connect();
    let t = Table::create(&db, "word text PRIMARY KEY, n bigint NOT NULL, seen text");
    db.exec(&format!(
        "INSERT INTO {} VALUES ('apple', 100, 'old'), ('kiwi', 9, 'old')",
        t.name
    ));
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"public.{}\"\ncolumns = {{ word = \"w\", n = \"count\", seen = \"tag\" }}\nmode = \"upsert\"\nkey = [\"word\"]\nbatch = {{ max_records = 5, interval = \"1h\" }}",
        t.name
    ));
    let mut tester = tester(&sink, &["w", "count", "tag"]);
    let runs = tester.execute_all([
        values!["apple", 5, "a1"],
        values!["pear", 1, "p1"],
        values!["apple", 7, "a2"],
        values!["pear", 2, "p2"],
        values!["fig", 3, "f1"],
    ]);
    assert_eq!(runs[4].acked_inputs, vec![0, 1, 2, 3, 4]);
    assert!(runs.iter().all(|r| r.errors == 0 && r.emitted.is_empty()));
    let rows: Vec<(String, i64, String)> = db
        .query(&format!(
            "SELECT word, n, seen FROM {} ORDER BY word",
            t.name
        ))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("apple".into(), 7, "a2".into()),
            ("fig".into(), 3, "f1".into()),
            ("kiwi".into(), 9, "old".into()),
            ("pear".into(), 2, "p2".into()),
        ]
    );
}

// Guards: each value type reaches its column type intact (ints to int4/int8, floats, text,
// bools, nulls, bytes, lists/maps to jsonb, a string cast by the server to numeric).
#[test]
fn values_of_every_type_are_written_to_matching_columns() {
    let db = Db::connect();
    let t = Table::create(
        &db,
        "i4 integer, i8 bigint, f8 double precision, f4 real, s text, v varchar(10), b boolean, \
         raw bytea, doc jsonb, num numeric, maybe text",
    );
    let cols = [
        "i4", "i8", "f8", "f4", "s", "v", "b", "raw", "doc", "num", "maybe",
    ];
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = {cols:?}\nbatch = {{ max_records = 2 }}",
        t.name
    ));
    let mut tester = tester(&sink, &cols);
    let list = Value::List(Arc::new(vec![Value::Int(1), Value::Str("x".into())]));
    let bytes = Value::Bytes(Box::new(bytes::Bytes::from_static(&[
        0, 159, 146, 150, 255,
    ])));
    tester.execute(Values::from_vec(vec![
        Value::Int(-7),
        Value::Int(1 << 40),
        Value::Float(2.5),
        Value::Int(3),
        Value::Str("héllo".into()),
        Value::Int(42),
        Value::Bool(true),
        bytes,
        list,
        Value::Str("12.345".into()),
        Value::Null,
    ]));
    let run = tester.execute(Values::from_vec(vec![Value::Null; 11]));
    assert_eq!(run.acked_inputs, vec![0, 1]);
    assert_eq!(run.errors, 0);
    let rows = db.query(&format!(
        "SELECT i4, i8, f8, f4, s, v, b, raw, doc::text, num::text, maybe FROM {} ORDER BY i4 NULLS LAST",
        t.name
    ));
    let r = &rows[0];
    assert_eq!(r.get::<_, i32>(0), -7);
    assert_eq!(r.get::<_, i64>(1), 1 << 40);
    assert_eq!(r.get::<_, f64>(2), 2.5);
    assert_eq!(r.get::<_, f32>(3), 3.0);
    assert_eq!(r.get::<_, &str>(4), "héllo");
    assert_eq!(r.get::<_, &str>(5), "42");
    assert!(r.get::<_, bool>(6));
    assert_eq!(r.get::<_, Vec<u8>>(7), vec![0, 159, 146, 150, 255]);
    assert_eq!(r.get::<_, &str>(8), "[1, \"x\"]");
    assert_eq!(r.get::<_, &str>(9), "12.345");
    assert_eq!(r.get::<_, Option<&str>>(10), None);
    let nulls = &rows[1];
    for i in 0..11 {
        assert!(
            nulls
                .try_get::<_, Option<String>>(i)
                .map(|v| v.is_none())
                .unwrap_or(true),
            "column {i} of the all-null record is NULL"
        );
    }
    assert_eq!(
        db.query(&format!("SELECT count(*) FROM {} WHERE i4 IS NULL AND i8 IS NULL AND b IS NULL AND raw IS NULL AND doc IS NULL", t.name))[0]
            .get::<_, i64>(0),
        1
    );
}

// Guards: a missing table or column is reported at open, naming it.
#[test]
fn a_missing_table_or_column_is_named_when_the_sink_opens() {
    let db = Db::connect();
    let t = Table::create(&db, "word text, n bigint");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let missing = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}_nope\"\ncolumns = [\"word\"]",
        t.name
    ));
    let e = rt
        .block_on(missing.check())
        .expect_err("no such table")
        .to_string();
    assert!(
        e.contains(&format!("table `{}_nope` does not exist", t.name)),
        "{e}"
    );
    let column = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"count\"]",
        t.name
    ));
    let e = rt
        .block_on(column.check())
        .expect_err("no such column")
        .to_string();
    assert!(
        e.contains(&format!(
            "table `{}` has no column `count` (its columns: word, n)",
            t.name
        )),
        "{e}"
    );
    let no_unique = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\nmode = \"upsert\"\nkey = [\"word\"]",
        t.name
    ));
    let e = rt
        .block_on(no_unique.check())
        .expect_err("no unique key")
        .to_string();
    assert!(e.contains("ON CONFLICT"), "{e}");
    let ok = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"n\", \"word\"]",
        t.name
    ));
    rt.block_on(ok.check()).expect("table and columns exist");
}

// Guards: rows the server refuses (check and not-null violations, a value out of range) go to
// the `error` stream with the server's message and SQLSTATE; the other rows of the batch are
// committed; every input is acked.
#[test]
fn refused_rows_go_to_the_error_stream_with_their_sqlstate() {
    let db = Db::connect();
    let t = Table::create(
        &db,
        "word text NOT NULL, n bigint CHECK (n >= 0), small smallint",
    );
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\", \"small\"]\nbatch = {{ max_records = 5, interval = \"1h\" }}",
        t.name
    ));
    let mut tester = tester(&sink, &["word", "n", "small"]);
    let runs = tester.execute_all([
        values!["ok1", 1, 1],
        values!["negative", -5, 1],
        values![Value::Null, 2, 1],
        values!["too big", 3, 100000],
        values!["ok2", 4, 2],
    ]);
    let last = &runs[4];
    assert_eq!(last.acked_inputs, vec![0, 1, 2, 3, 4]);
    let reasons = error_reasons(last);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("SQLSTATE 23514") && reasons[0].contains("check constraint"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("SQLSTATE 23502"), "{reasons:?}");
    assert!(
        reasons[2].contains("SQLSTATE 22003") && reasons[2].contains("out of range"),
        "{reasons:?}"
    );
    let records: Vec<&Value> = last.emitted.iter().map(|e| &e.values[1]).collect();
    assert_eq!(
        records[0]
            .as_map()
            .and_then(|m| m.get("word"))
            .and_then(Value::as_str),
        Some("negative")
    );
    let words: Vec<String> = db
        .query(&format!("SELECT word FROM {} ORDER BY n", t.name))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(words, vec!["ok1", "ok2"]);
}

// Guards: a value its column cannot take (text for a bigint, a missing field) is refused at
// encode time — to `error` and acked at once, without touching the batch.
#[test]
fn a_value_the_column_cannot_take_goes_to_error_at_once() {
    let db = Db::connect();
    let t = Table::create(&db, "word text, n bigint");
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\nbatch = {{ max_records = 2, interval = \"1h\" }}",
        t.name
    ));
    let mut tester = tester(&sink, &["word", "n"]);
    let bad = tester.execute(values!["x", "seven"]);
    assert!(bad.acked);
    let reasons = error_reasons(&bad);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("column `n` (int8) cannot take a string value"),
        "{reasons:?}"
    );
    let ok = tester.execute_all([values!["a", 1], values!["b", 2]]);
    assert_eq!(ok[1].acked_inputs, vec![1, 2]);
    assert_eq!(db.count(&t.name), 2);

    let mut other = BoltTester::full(
        {
            let sink = sink.clone();
            move || sink.bolt()
        },
        ["word"],
    );
    let missing = other.execute(values!["a"]);
    assert!(missing.acked);
    assert_eq!(
        error_reasons(&missing),
        vec!["the record has no field `n`".to_string()]
    );
}

// Guards: a connection lost between batches costs a retry, not the inputs: the next batch
// reconnects (re-checking the table) and is committed, its inputs acked, none failed.
#[test]
fn a_terminated_session_is_replaced_on_the_next_write() {
    let db = Db::connect();
    let t = Table::create(&db, "word text, n bigint");
    let app = format!(
        "topo-test-{}-{}",
        std::process::id(),
        shared_counter().fetch_add(1, Ordering::Relaxed)
    );
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\napplication_name = \"{app}\"\n\
         batch = {{ max_records = 2, interval = \"1h\" }}\nretry = {{ attempts = 3, backoff = \"10ms\" }}",
        t.name
    ));
    let mut tester = tester(&sink, &["word", "n"]);
    let first = tester.execute_all([values!["a", 1], values!["b", 2]]);
    assert_eq!(first[1].acked_inputs, vec![0, 1]);
    let pid_sql = format!("SELECT pid FROM pg_stat_activity WHERE application_name = '{app}'");
    let before: Vec<i32> = db.query(&pid_sql).iter().map(|r| r.get(0)).collect();
    assert_eq!(before.len(), 1, "one session per sink task");
    let killed: Vec<bool> = db
        // With a timeout, it returns once the session has ended.
        .query(&format!(
            "SELECT pg_terminate_backend({}, 10000)",
            before[0]
        ))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(killed, vec![true]);
    let second = tester.execute_all([values!["c", 3], values!["d", 4]]);
    assert_eq!(second[1].acked_inputs, vec![2, 3]);
    assert!(
        second
            .iter()
            .all(|r| r.failed_inputs.is_empty() && r.errors == 0)
    );
    let after: Vec<i32> = db.query(&pid_sql).iter().map(|r| r.get(0)).collect();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new session");
    assert_eq!(db.count(&t.name), 4);
}

// Guards: options are checked when the sink is built, each error naming the option.
#[test]
fn bad_options_are_refused_naming_the_option() {
    let cases = [
        (
            "table = \"t\"\ncolumns = [\"a\"]",
            "option `url` is required",
        ),
        (
            "url = \"postgres://x@h/db\"\ncolumns = [\"a\"]",
            "option `table` is required",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \"t\"",
            "option `columns` must name",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \"t\"\ncolumns = [\"a\"]\nmode = \"upsert\"",
            "option `key` is required",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \"t\"\ncolumns = [\"a\"]\nmode = \"upsert\"\nkey = [\"b\"]",
            "option `key`: \"b\" is not one of the `columns` (a)",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \"t\"\ncolumns = [\"a\"]\nkey = [\"a\"]",
            "only used with mode = \"upsert\"",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \".t\"\ncolumns = [\"a\"]",
            "option `table`",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \"t\"\ncolumns = [\"a\"]\nbatch = { max_records = 0 }",
            "option `batch.max_records`",
        ),
        (
            "url = \"postgres://x@h/db\"\ntable = \"t\"\ncolumns = [\"a\", \"a\"]",
            "given twice",
        ),
    ];
    for (text, expected) in cases {
        let e = PostgresSink::new(options(text)).expect_err(text);
        assert!(e.contains(expected), "{text}: {e}");
    }
    assert!(toml::from_str::<PostgresOptions>("url = \"x\"\nmode = \"merge\"").is_err());
}

fn shared_counter() -> &'static AtomicUsize {
    static N: OnceLock<AtomicUsize> = OnceLock::new();
    N.get_or_init(|| AtomicUsize::new(0))
}

// Guards (at-least-once, end to end): with the sink's connections terminated and its table
// locked for longer than its retries while records are in flight, its batches fail, the spout
// replays them, and at the end every record is in the table exactly as upserted, every spout
// message acked exactly once.
#[test]
fn records_survive_a_killed_connection_and_a_locked_table_through_replay() {
    let db = Db::connect();
    let t = Table::create(&db, "word text PRIMARY KEY, n bigint NOT NULL");
    let total = 3000usize;
    let first = 100usize;
    let app = format!(
        "topo-test-{}-{}",
        std::process::id(),
        shared_counter().fetch_add(1, Ordering::Relaxed)
    );
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\nmode = \"upsert\"\nkey = [\"word\"]\n\
         application_name = \"{app}\"\ntimeout = \"300ms\"\n\
         batch = {{ max_records = 50, interval = \"20ms\" }}\n\
         retry = {{ attempts = 3, backoff = \"20ms\", max_backoff = \"100ms\" }}",
        t.name
    ));
    let spout = word_spout(total);
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let free = Arc::new(AtomicUsize::new(first));
    let mut b = TopologyBuilder::new("pg-kill");
    b.config(Config {
        worker_threads: 2,
        // A task hands on its acks and fails once this many have gathered or its input runs
        // dry; with the sink's batches of 50 this passes each batch's on at once.
        batch_size: 50,
        ..Config::default()
    });
    b.set_spout("records", spout.factory(), 1);
    b.set_bolt(
        "gate",
        move || Gate {
            free: free.clone(),
            open: gate.clone(),
            fields: vec!["word", "n"],
            held: Vec::new(),
        },
        1,
    )
    .shuffle_grouping("records");
    let s = sink.clone();
    b.set_bolt("store", move || s.bolt(), 2)
        .fields_grouping("gate", ["word"]);
    let topology = b.build().expect("a valid topology");

    let rt = runtime();
    let client = &db.client;
    let table = t.name.clone();
    rt.block_on(async {
        let handle = topo_runtime::submit(topology);
        let count_sql = format!("SELECT count(*) FROM {table}");
        wait_until("the first records are written", async || {
            let n: i64 = client.query_one(&count_sql, &[]).await.expect("count").get(0);
            // (The gate's last outputs may still sit in its output buffer while it waits.)
            n >= 50
        })
        .await;

        // The destination goes away: the table is locked against writes (reads still work)
        // and the sink's sessions are terminated.
        client.batch_execute("BEGIN").await.expect("begin");
        client
            .batch_execute(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
            .await
            .expect("lock");
        let killed: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("terminate")
            .get(0);
        assert!(killed >= 1, "the sink's sessions were found by application_name");
        open_gate.send(true).expect("the gate is there");
        wait_until("batches fail and are replayed", async || {
            spout.failed().iter().sum::<u32>() > 0
        })
        .await;
        client.batch_execute("COMMIT").await.expect("unlock");

        match handle.wait_until_idle(WAIT).await {
            Ok(_) => {}
            Err(e) => panic!("not idle within {:?}: {:#?}", e.waited, e.metrics),
        }
        let report = handle.stop(Duration::from_secs(5)).await;
        assert!(report.drained, "{report:#?}");
    });

    assert_eq!(
        spout.acked(),
        vec![1; total],
        "every message acked exactly once"
    );
    let failed: u32 = spout.failed().iter().sum();
    assert!(failed > 0, "some batches failed and were replayed");
    assert!(spout.emitted() > total as u64, "replays happened");
    let rows: BTreeMap<String, i64> = db
        .query(&format!("SELECT word, n FROM {}", t.name))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: BTreeMap<String, i64> = (0..total).map(|i| (format!("w{i}"), i as i64)).collect();
    assert_eq!(rows.len(), total);
    assert!(rows == expected, "the table holds exactly the records");
    eprintln!(
        "{total} records, {failed} failed deliveries replayed, {} emitted",
        spout.emitted()
    );
}

// Guards: with acking on and few trees pending, a batch of 20,000 with an interval of an hour
// never fills; it is committed each time the sink's input runs dry, so every record is in the
// table and acked within the bound (the old behaviour waited out the hour).
#[test]
fn a_big_batch_with_a_long_interval_is_written_when_the_input_runs_dry() {
    let db = Db::connect();
    let t = Table::create(&db, "word text NOT NULL, n bigint NOT NULL");
    let total = 1000usize;
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\n\
         batch = {{ max_records = 20000, interval = \"1h\" }}",
        t.name
    ));
    let s = sink.clone();
    run_words_until_idle("pg-dry", "store", total, move || s.bolt());
    assert_eq!(db.count(&t.name), total as i64, "every record written once");
}

/// A topology config for an exactly-once run.
fn exactly_once() -> Config {
    Config {
        guarantee: topo_runtime::Guarantee::ExactlyOnce,
        ..Config::default()
    }
}

/// Words and counts of `table`, sorted.
fn words_of(db: &Db, table: &str) -> Vec<(String, i64)> {
    db.query(&format!("SELECT word, n FROM {table} ORDER BY word, n"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// (task, checkpoint id) of each row of a commits table, sorted.
fn commits_of(db: &Db, table: &str) -> Vec<(i32, i64)> {
    let mut rows: Vec<(i32, i64)> = db
        .query(&format!("SELECT task, checkpoint_id FROM {table}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.sort();
    rows
}

/// A sink writing (word, n) into `t` in batches of 2, with its own commits table (dropped at
/// the end): the setup of the exactly-once tests.
fn exactly_once_sink<'a>(t: &Table<'a>) -> (Table<'a>, PostgresSink) {
    let commits = Table {
        db: t.db,
        name: format!("{}_commits", t.name),
    };
    let sink = sink(&format!(
        "url = \"{URL}\"\ntable = \"{}\"\ncolumns = [\"word\", \"n\"]\ncommits_table = \"{}\"\nbatch = {{ max_records = 2, interval = \"1h\" }}",
        t.name, commits.name
    ));
    (commits, sink)
}

// Guards: under exactly-once a checkpoint's rows reach the table only when it completes, in one
// transaction with its row in the commits table (created by the sink); a task restored from a
// checkpoint whose rows were committed before the crash does not write them again, and one
// restored from a checkpoint whose commit the crash prevented commits them once.
#[test]
fn exactly_once_commits_each_checkpoint_once_across_crashes() {
    let db = Db::connect();
    let t = Table::create(&db, "word text NOT NULL, n bigint NOT NULL");
    let (commits, sink) = exactly_once_sink(&t);
    let make = {
        let sink = sink.clone();
        move || sink.bolt()
    };
    let mut first = BoltTester::full_with(make.clone(), ["word", "n"], exactly_once(), None);
    first.execute_all([values!["a", 1], values!["b", 2], values!["c", 3]]);
    assert_eq!(
        db.count(&t.name),
        0,
        "a full batch waits for its checkpoint"
    );
    let (one, _) = first.checkpoint().expect("checkpoint 1");
    assert_eq!(db.count(&t.name), 0, "and for the checkpoint to complete");
    first.execute_all([values!["d", 4]]);
    let done = first.checkpoint_complete(one.id());
    assert_eq!(done.errors, 0);
    assert_eq!(
        words_of(&db, &t.name),
        vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)],
        "checkpoint 1's rows, not the row after its barrier"
    );
    assert_eq!(commits_of(&db, &commits.name), vec![(0, 1)]);

    // A crash after checkpoint 1 was committed: the restored task finds its commit and skips it.
    let mut second = BoltTester::full_with(make.clone(), ["word", "n"], exactly_once(), Some(&one));
    let idle = second.tick();
    assert_eq!(idle.errors, 0);
    assert_eq!(db.count(&t.name), 3, "checkpoint 1 is not written twice");
    // The spout replays "d"; checkpoint 2 is taken, and the process dies before its commit.
    second.execute_all([values!["d", 4], values!["e", 5]]);
    let (two, _) = second.checkpoint().expect("checkpoint 2");
    assert_eq!(two.id(), 2);
    drop(second);
    assert_eq!(db.count(&t.name), 3);

    // Restored from checkpoint 2 (complete, not committed): its rows are committed at the
    // first idle moment, once — and again restored from it, they are not written again.
    let mut third = BoltTester::full_with(make.clone(), ["word", "n"], exactly_once(), Some(&two));
    third.tick();
    let mut fourth = BoltTester::full_with(make, ["word", "n"], exactly_once(), Some(&two));
    fourth.tick();
    assert_eq!(
        words_of(&db, &t.name),
        vec![
            ("a".into(), 1),
            ("b".into(), 2),
            ("c".into(), 3),
            ("d".into(), 4),
            ("e".into(), 5)
        ],
        "each record once"
    );
    assert_eq!(
        commits_of(&db, &commits.name),
        vec![(0, 1), (0, 2)],
        "one row per run: the first run's checkpoint 1, the second run's checkpoint 2"
    );
}

// Guards: a row the server refuses at an exactly-once commit is left out under a savepoint and
// goes to `error` with its SQLSTATE and its record; the checkpoint's other rows are committed.
#[test]
fn exactly_once_refused_rows_go_to_error_at_the_commit() {
    let db = Db::connect();
    let t = Table::create(&db, "word text NOT NULL, n bigint CHECK (n >= 0)");
    let (commits, sink) = exactly_once_sink(&t);
    let mut tester =
        BoltTester::full_with(move || sink.bolt(), ["word", "n"], exactly_once(), None);
    tester.execute_all([
        values!["ok1", 1],
        values!["negative", -1],
        values!["ok2", 2],
    ]);
    let (one, _) = tester.checkpoint().expect("checkpoint");
    let done = tester.checkpoint_complete(one.id());
    let reasons = error_reasons(&done);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("SQLSTATE 23514"), "{reasons:?}");
    assert_eq!(
        done.emitted[0].values[1]
            .as_map()
            .and_then(|m| m.get("word"))
            .and_then(Value::as_str),
        Some("negative")
    );
    assert_eq!(
        words_of(&db, &t.name),
        vec![("ok1".into(), 1), ("ok2".into(), 2)]
    );
    assert_eq!(commits_of(&db, &commits.name), vec![(0, 1)]);
}

/// Runs SQL on the `hostssl`-only server through `psql` (an independent client) as `topo`,
/// verifying the server with the test CA; its output, unaligned, without headers.
fn psql_tls(sql: &str) -> String {
    use topo_test_support::tls;
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=topo user={} sslmode=verify-full sslrootcert={}",
        tls::postgres_port(),
        tls::USER,
        tls::file("ca.crt").display()
    );
    let out = std::process::Command::new("psql")
        .args([conninfo.as_str(), "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .env("PGPASSWORD", tls::PASSWORD)
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What `check` (a connection, as each task makes at start) says of a sink that must be refused.
fn check_error(s: &PostgresSink) -> String {
    common::refused_quickly(s.check())
}

// Guards TLS against the `hostssl`-only server of `scripts/services`: rows are written with
// `verify-full` and the test CA (by password, and by client certificate alone), read back by
// `psql`; `verify-ca` accepts a certificate for another name where `verify-full` refuses it; a
// plain connection, a certificate of an unknown CA, a client certificate of an unknown CA and a
// wrong password are each refused quickly with an error naming PostgreSQL and why.
#[test]
fn sslmode_writes_over_tls_and_refuses_wrong_certificates_plain_text_and_wrong_passwords() {
    use topo_test_support::tls;
    let table = format!("topo_tls_{}", std::process::id());
    psql_tls(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (word text NOT NULL, n bigint NOT NULL); GRANT ALL ON {table} TO topo_cert"
    ));
    let port = tls::postgres_port();
    let ca = tls::file("ca.crt");
    let (client_crt, client_key) = (tls::file("client.crt"), tls::file("client.key"));
    let sink_of = |conninfo: &str, sslmode: &str, tls_table: &str| {
        let text = format!(
            "url = \"{conninfo} port={port} dbname=topo connect_timeout=3\"\n{sslmode}\ntls = {tls_table}\n\
             table = \"{table}\"\ncolumns = [\"word\", \"n\"]\ntimeout = \"3s\"\nbatch = {{ max_records = 2 }}",
        );
        sink(&text)
    };
    let by_password = format!(
        "host=localhost hostaddr=127.0.0.1 user=topo password={}",
        tls::PASSWORD
    );
    let ca_only = format!("{{ ca = \"{}\" }}", ca.display());
    let with_client = format!(
        "{{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
        ca.display(),
        client_crt.display(),
        client_key.display()
    );
    let cases = [
        (
            by_password.clone(),
            "sslmode = \"verify-full\"",
            ca_only.clone(),
            "full",
        ),
        (
            by_password.clone(),
            "sslmode = \"require\"",
            "{}".to_string(),
            "require",
        ),
        (
            "host=localhost hostaddr=127.0.0.1 user=topo_cert".to_string(),
            "sslmode = \"verify-full\"",
            with_client.clone(),
            "cert",
        ),
        (
            format!(
                "host=db.example hostaddr=127.0.0.1 user=topo password={}",
                tls::PASSWORD
            ),
            "sslmode = \"verify-ca\"",
            ca_only.clone(),
            "ca",
        ),
    ];
    for (conninfo, mode, tls_table, word) in &cases {
        let s = sink_of(conninfo, mode, tls_table);
        runtime()
            .block_on(s.check())
            .unwrap_or_else(|e| panic!("{mode} {conninfo}: {e}"));
        let mut t = tester(&s, &["word", "n"]);
        let runs = t.execute_all([values![*word, 1], values![*word, 2]]);
        assert_eq!(runs[1].acked_inputs, vec![0, 1], "{mode}");
    }
    assert_eq!(
        psql_tls(&format!(
            "SELECT word || ':' || sum(n) FROM {table} GROUP BY word ORDER BY word"
        )),
        "ca:3\ncert:3\nfull:3\nrequire:3"
    );
    // The session really was encrypted: the server says so of the sink's own connections.
    assert_eq!(
        psql_tls(
            "SELECT count(*) > 0 FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND usename = 'topo'"
        ),
        "t"
    );

    let wrong_name = format!(
        "host=db.example hostaddr=127.0.0.1 user=topo password={}",
        tls::PASSWORD
    );
    let e = check_error(&sink_of(&wrong_name, "sslmode = \"verify-full\"", &ca_only));
    assert!(
        e.contains("PostgreSQL") && e.contains("certificate"),
        "another name: {e}"
    );
    let other_ca = format!("{{ ca = \"{}\" }}", tls::file("other-ca.crt").display());
    let e = check_error(&sink_of(
        &by_password,
        "sslmode = \"verify-full\"",
        &other_ca,
    ));
    assert!(
        e.contains("PostgreSQL") && e.contains("certificate"),
        "an unknown CA: {e}"
    );
    let e = check_error(&sink_of(&by_password, "sslmode = \"disable\"", "{}"));
    assert!(
        e.contains("PostgreSQL") && e.contains("no encryption"),
        "plain text to a hostssl-only server: {e}"
    );
    let other_client = format!(
        "{{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
        ca.display(),
        tls::file("other-client.crt").display(),
        tls::file("other-client.key").display()
    );
    let e = check_error(&sink_of(
        "host=localhost hostaddr=127.0.0.1 user=topo_cert",
        "sslmode = \"verify-full\"",
        &other_client,
    ));
    assert!(
        e.contains("PostgreSQL"),
        "a client certificate of an unknown CA: {e}"
    );
    let wrong = "host=localhost hostaddr=127.0.0.1 user=topo password=not-the-password";
    let e = check_error(&sink_of(wrong, "sslmode = \"verify-full\"", &ca_only));
    assert!(
        e.contains("PostgreSQL") && e.contains("password authentication failed"),
        "a wrong password: {e}"
    );
    assert!(
        !e.contains("not-the-password"),
        "the password is shown: {e}"
    );
    psql_tls(&format!("DROP TABLE {table}"));
}

// Guards the `sslmode` options' checks: `verify-*` in the URL points to the option, and TLS files
// with TLS off are refused.
#[test]
fn sslmode_options_are_checked_naming_the_option() {
    let base = "table = \"t\"\ncolumns = [\"a\"]";
    let refused = |extra: &str| {
        PostgresSink::new(options(&format!("{base}\n{extra}")))
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"))
    };
    let e = refused("url = \"postgres://u@127.0.0.1/db?sslmode=verify-full\"");
    assert!(e.contains("option `sslmode`"), "{e}");
    let e = refused(&format!(
        "url = \"{URL}\"\nsslmode = \"disable\"\ntls = {{ ca = \"x.pem\" }}"
    ));
    assert!(e.contains("`tls`") && e.contains("disable"), "{e}");
    let e = refused(&format!(
        "url = \"{URL}\"\nsslmode = \"verify-full\"\ntls = {{ ca = \"/no/such.pem\" }}"
    ));
    assert!(e.contains("`tls.ca`") && e.contains("/no/such.pem"), "{e}");
}
