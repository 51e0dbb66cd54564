//! The `redis` sink against the Redis server on 127.0.0.1:6379. Each test writes under its own
//! key prefix (`topo-test:<pid>:<n>:`) and deletes its keys at the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{BoltTester, Executed};
use topo_runtime::{Config, Value, values};
use topo_spouts::{RedisOptions, RedisSink};

const URL: &str = "redis://127.0.0.1:6379/0";
const START: &str = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log";

mod common;
use common::{Gate, WAIT, run_words_until_idle, runtime, wait_until, word_spout};

// The longest a test waits for something that should take a moment.

/// A connection of the test's own, with a key prefix of this test; deletes its keys on drop.
struct Redis {
    rt: tokio::runtime::Runtime,
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl Redis {
    fn connect() -> Redis {
        static N: AtomicUsize = AtomicUsize::new(0);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let conn = rt.block_on(async {
            let client = redis::Client::open(URL).expect("a Redis URL");
            let connecting = client.get_multiplexed_async_connection();
            match tokio::time::timeout(Duration::from_secs(10), connecting).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    panic!("Redis at 127.0.0.1:6379 is not reachable: {e}; start it with `{START}`")
                }
                Err(_) => {
                    panic!("Redis at 127.0.0.1:6379 does not answer; start it with `{START}`")
                }
            }
        });
        let prefix = format!(
            "topo-test:{}:{}:",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Redis { rt, conn, prefix }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut c = self.conn.clone();
        self.rt
            .block_on(cmd.query_async(&mut c))
            .unwrap_or_else(|e| panic!("redis command failed: {e}"))
    }

    fn zscores(&self, key: &str) -> BTreeMap<String, f64> {
        let v: Vec<(String, f64)> = self.run(
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
        );
        v.into_iter().collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let mut c = self.conn.clone();
        let pattern = format!("{}*", self.prefix);
        let _ = self.rt.block_on(async {
            let keys: Vec<String> = c.keys(&pattern).await?;
            if !keys.is_empty() {
                c.del::<_, ()>(keys).await?;
            }
            Ok::<_, redis::RedisError>(())
        });
    }
}

fn options(toml_text: &str) -> RedisOptions {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("options: {e}"))
}

fn sink(toml_text: &str) -> RedisSink {
    RedisSink::new(options(toml_text)).unwrap_or_else(|e| panic!("options: {e}"))
}

fn tester(sink: &RedisSink, fields: &[&'static str]) -> BoltTester {
    let sink = sink.clone();
    BoltTester::full(move || sink.bolt(), fields.iter().copied())
}

fn error_reasons(run: &Executed) -> Vec<String> {
    run.emitted
        .iter()
        .filter(|e| e.stream == "error")
        .map(|e| e.values[0].as_str().unwrap_or_default().to_string())
        .collect()
}

// Guards: zadd sets absolute scores (last wins), zincrby adds; a template key per record; inputs
// acked only once the batch's EXEC has been answered.
#[test]
fn zadd_and_zincrby_write_sorted_sets_under_templated_keys() {
    let r = Redis::connect();
    let board = sink(&format!(
        "url = \"{URL}\"\ncommand = \"zadd\"\nkey = \"{}board:{{region}}\"\nmember = \"word\"\nvalue = \"count\"\nbatch = {{ max_records = 4, interval = \"1h\" }}",
        r.prefix
    ));
    let mut t = tester(&board, &["region", "word", "count"]);
    let first = t.execute_all([
        values!["eu", "apple", 3],
        values!["us", "apple", 1],
        values!["eu", "pear", 2.5],
    ]);
    assert!(first.iter().all(|e| e.acked_inputs.is_empty()));
    assert!(
        r.zscores(&r.key("board:eu")).is_empty(),
        "nothing written before the batch is full"
    );
    let last = t.execute(values!["eu", "apple", 7]);
    assert_eq!(last.acked_inputs, vec![0, 1, 2, 3]);
    assert_eq!(
        r.zscores(&r.key("board:eu")),
        BTreeMap::from([("apple".into(), 7.0), ("pear".into(), 2.5)])
    );
    assert_eq!(
        r.zscores(&r.key("board:us")),
        BTreeMap::from([("apple".into(), 1.0)])
    );

    let incr = sink(&format!(
        "url = \"{URL}\"\ncommand = \"zincrby\"\nkey = \"{}hits\"\nmember = \"word\"\nvalue = \"n\"\nbatch = {{ max_records = 3 }}",
        r.prefix
    ));
    let mut t = tester(&incr, &["word", "n"]);
    let runs = t.execute_all([values!["a", 1], values!["a", 2], values!["b", 0.5]]);
    assert_eq!(runs[2].acked_inputs, vec![0, 1, 2]);
    assert_eq!(
        r.zscores(&r.key("hits")),
        BTreeMap::from([("a".into(), 3.0), ("b".into(), 0.5)])
    );
}

// Guards: hset writes hash fields (lists as JSON), hincrby adds to them.
#[test]
fn hset_and_hincrby_write_hash_fields() {
    let r = Redis::connect();
    let hset = sink(&format!(
        "url = \"{URL}\"\ncommand = \"hset\"\nkey = \"{}user:{{id}}\"\nmember = \"attr\"\nvalue = \"v\"\nbatch = {{ max_records = 3 }}",
        r.prefix
    ));
    let mut t = tester(&hset, &["id", "attr", "v"]);
    let list = Value::List(Arc::new(vec![Value::Int(1), Value::Str("x".into())]));
    let runs = t.execute_all([
        values![7, "name", "ann"],
        values![7, "age", 41],
        values![7, "tags", list],
    ]);
    assert_eq!(runs[2].acked_inputs, vec![0, 1, 2]);
    let h: BTreeMap<String, String> = r.run(redis::cmd("HGETALL").arg(r.key("user:7")));
    assert_eq!(
        h,
        BTreeMap::from([
            ("name".into(), "ann".into()),
            ("age".into(), "41".into()),
            ("tags".into(), "[1,\"x\"]".into()),
        ])
    );

    let hincr = sink(&format!(
        "url = \"{URL}\"\ncommand = \"hincrby\"\nkey = \"{}counts\"\nmember = \"word\"\nvalue = \"n\"\nbatch = {{ max_records = 3 }}",
        r.prefix
    ));
    let mut t = tester(&hincr, &["word", "n"]);
    t.execute_all([values!["a", 1], values!["a", 5], values!["b", -2]]);
    let h: BTreeMap<String, i64> = r.run(redis::cmd("HGETALL").arg(r.key("counts")));
    assert_eq!(h, BTreeMap::from([("a".into(), 6), ("b".into(), -2)]));
}

// Guards: set writes values, incrby adds, rpush appends each whole record as a JSON object.
#[test]
fn set_incrby_and_rpush_write_strings_counters_and_lists() {
    let r = Redis::connect();
    let set = sink(&format!(
        "url = \"{URL}\"\ncommand = \"set\"\nkey = \"{}last:{{k}}\"\nvalue = \"v\"\nbatch = {{ max_records = 2 }}",
        r.prefix
    ));
    let mut t = tester(&set, &["k", "v"]);
    t.execute_all([values!["x", "one"], values!["x", 2.5]]);
    let v: String = r.run(redis::cmd("GET").arg(r.key("last:x")));
    assert_eq!(v, "2.5");

    let incr = sink(&format!(
        "url = \"{URL}\"\ncommand = \"incrby\"\nkey = \"{}total\"\nvalue = \"n\"\nbatch = {{ max_records = 3 }}",
        r.prefix
    ));
    let mut t = tester(&incr, &["n"]);
    t.execute_all([values![5], values![10], values![-1]]);
    let v: i64 = r.run(redis::cmd("GET").arg(r.key("total")));
    assert_eq!(v, 14);

    let push = sink(&format!(
        "url = \"{URL}\"\ncommand = \"rpush\"\nkey = \"{}events\"\nbatch = {{ max_records = 2 }}",
        r.prefix
    ));
    let mut t = tester(&push, &["id", "what"]);
    t.execute_all([values![1, "login"], values![2, Value::Null]]);
    let items: Vec<String> = r.run(redis::cmd("LRANGE").arg(r.key("events")).arg(0).arg(-1));
    assert_eq!(
        items,
        vec![
            "{\"id\":1,\"what\":\"login\"}".to_string(),
            "{\"id\":2,\"what\":null}".to_string()
        ]
    );
}

// Guards: with `ttl`, every key written gets that time to live.
#[test]
fn ttl_expires_every_key_written() {
    let r = Redis::connect();
    let s = sink(&format!(
        "url = \"{URL}\"\ncommand = \"zincrby\"\nkey = \"{}day:{{d}}\"\nmember = \"w\"\nvalue = \"n\"\nttl = \"1h\"\nbatch = {{ max_records = 3 }}",
        r.prefix
    ));
    let mut t = tester(&s, &["d", "w", "n"]);
    let runs = t.execute_all([
        values!["mon", "a", 1],
        values!["tue", "a", 1],
        values!["mon", "b", 1],
    ]);
    assert_eq!(runs[2].acked_inputs, vec![0, 1, 2]);
    for day in ["mon", "tue"] {
        let ttl: i64 = r.run(redis::cmd("PTTL").arg(r.key(&format!("day:{day}"))));
        assert!(
            ttl > 3_500_000 && ttl <= 3_600_000,
            "day:{day} expires in an hour, PTTL {ttl}"
        );
    }
}

// Guards: a record missing a field (or with a value of the wrong type) goes to `error` at once,
// acked, and the batch goes on without it.
#[test]
fn a_missing_or_mistyped_field_goes_to_error_at_once() {
    let r = Redis::connect();
    let s = sink(&format!(
        "url = \"{URL}\"\ncommand = \"zadd\"\nkey = \"{}board:{{region}}\"\nmember = \"word\"\nvalue = \"count\"\nbatch = {{ max_records = 1 }}",
        r.prefix
    ));
    let mut t = tester(&s, &["word", "count"]);
    let missing = t.execute(values!["apple", 1]);
    assert!(missing.acked);
    assert_eq!(
        error_reasons(&missing),
        vec!["the record has no field `region` (key template)".to_string()]
    );
    let mut t = tester(&s, &["region", "word", "count"]);
    let mistyped = t.execute(values!["eu", "apple", "lots"]);
    assert!(mistyped.acked);
    let reasons = error_reasons(&mistyped);
    assert!(
        reasons[0].contains("field `count` (score) must be a finite number"),
        "{reasons:?}"
    );
    let null_member = t.execute(values!["eu", Value::Null, 1]);
    assert_eq!(
        error_reasons(&null_member),
        vec!["field `word` (member) is null".to_string()]
    );
    let ok = t.execute(values!["eu", "pear", 2]);
    assert_eq!(ok.acked_inputs, vec![2]);
    assert_eq!(
        r.zscores(&r.key("board:eu")),
        BTreeMap::from([("pear".into(), 2.0)])
    );
}

// Guards: a command the server refuses inside the transaction (WRONGTYPE) sends only its record
// to `error` with the server's message; the others of the batch take effect; all are acked.
#[test]
fn a_wrongtype_reply_sends_only_that_record_to_error() {
    let r = Redis::connect();
    r.run::<()>(redis::cmd("SET").arg(r.key("board:bad")).arg("a string"));
    let s = sink(&format!(
        "url = \"{URL}\"\ncommand = \"zadd\"\nkey = \"{}board:{{region}}\"\nmember = \"word\"\nvalue = \"count\"\nbatch = {{ max_records = 3 }}",
        r.prefix
    ));
    let mut t = tester(&s, &["region", "word", "count"]);
    let runs = t.execute_all([
        values!["good", "a", 1],
        values!["bad", "a", 1],
        values!["good", "b", 2],
    ]);
    let last = &runs[2];
    assert_eq!(last.acked_inputs, vec![0, 1, 2]);
    let reasons = error_reasons(last);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("redis: WRONGTYPE"), "{reasons:?}");
    let record = last.emitted[0].values[1].as_map().expect("the record");
    assert_eq!(record.get("region").and_then(Value::as_str), Some("bad"));
    assert_eq!(
        r.zscores(&r.key("board:good")),
        BTreeMap::from([("a".into(), 1.0), ("b".into(), 2.0)])
    );
}

// Guards: options are checked when the sink is built, each error naming the option.
#[test]
fn bad_options_are_refused_naming_the_option() {
    let cases = [
        (
            "key = \"k\"\nmember = \"m\"\nvalue = \"v\"",
            "option `url` is required",
        ),
        (
            "url = \"http://x\"\nkey = \"k\"\nmember = \"m\"\nvalue = \"v\"",
            "option `url`",
        ),
        (
            "url = \"redis://h\"\nmember = \"m\"\nvalue = \"v\"",
            "option `key` is required",
        ),
        (
            "url = \"redis://h\"\nkey = \"k\"\nvalue = \"v\"",
            "option `member` is required",
        ),
        (
            "url = \"redis://h\"\nkey = \"k\"\nmember = \"m\"",
            "option `value` is required",
        ),
        (
            "url = \"redis://h\"\ncommand = \"set\"\nkey = \"k\"\nmember = \"m\"\nvalue = \"v\"",
            "option `member` = \"m\" is not used by command = \"set\"",
        ),
        (
            "url = \"redis://h\"\ncommand = \"rpush\"\nkey = \"k\"\nvalue = \"v\"",
            "option `value` = \"v\" is not used by command = \"rpush\"",
        ),
        (
            "url = \"redis://h\"\nkey = \"a:{b\"\nmember = \"m\"\nvalue = \"v\"",
            "is not closed",
        ),
        (
            "url = \"redis://h\"\nkey = \"a:{}\"\nmember = \"m\"\nvalue = \"v\"",
            "names no field",
        ),
        (
            "url = \"redis://h\"\nkey = \"k\"\nmember = \"m\"\nvalue = \"v\"\nttl = \"0s\"",
            "option `ttl`",
        ),
    ];
    for (text, expected) in cases {
        let e = RedisSink::new(options(text)).expect_err(text);
        assert!(e.contains(expected), "{text}: {e}");
    }
    assert!(toml::from_str::<RedisOptions>("command = \"lpush\"").is_err());
}

/// An ACL user of this test (so its connections can be killed and refused without touching
/// anyone else's); deleted on drop.
struct AclUser<'a> {
    r: &'a Redis,
    name: String,
}

impl Drop for AclUser<'_> {
    fn drop(&mut self) {
        let mut c = self.r.conn.clone();
        let _ = self.r.rt.block_on(
            redis::cmd("ACL")
                .arg("DELUSER")
                .arg(&self.name)
                .query_async::<()>(&mut c),
        );
    }
}

// Guards (at-least-once, end to end): with the sink's connections killed and its logins refused
// for longer than its retries while records are in flight, its batches fail, the spout replays
// them, and at the end the leaderboard holds every record's score, every spout message acked
// exactly once.
#[test]
fn records_survive_killed_connections_and_refused_logins_through_replay() {
    let r = Redis::connect();
    let user = AclUser {
        r: &r,
        name: format!("topo-test-{}", r.prefix.replace(':', "-")),
    };
    r.run::<()>(
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user.name)
            .arg("reset")
            .arg("on")
            .arg(">secret")
            .arg(format!("~{}*", r.prefix))
            .arg("+@all"),
    );
    let total = 3000usize;
    let first = 100usize;
    let key = r.key("board");
    let s = sink(&format!(
        "url = \"redis://{}:secret@127.0.0.1:6379/0\"\ncommand = \"zadd\"\nkey = \"{key}\"\nmember = \"word\"\nvalue = \"n\"\n\
         timeout = \"300ms\"\n\
         batch = {{ max_records = 50, interval = \"20ms\" }}\n\
         retry = {{ attempts = 3, backoff = \"20ms\", max_backoff = \"100ms\" }}",
        user.name
    ));
    let spout = word_spout(total);
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let free = Arc::new(AtomicUsize::new(first));
    let mut b = TopologyBuilder::new("redis-kill");
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
    let sink = s.clone();
    b.set_bolt("board", move || sink.bolt(), 2)
        .shuffle_grouping("gate");
    let topology = b.build().expect("a valid topology");

    let rt = runtime();
    let mut c = r.conn.clone();
    rt.block_on(async {
        let handle = topo_runtime::submit(topology);
        wait_until("the first records are written", async || {
            let n: usize = c.zcard(&key).await.expect("zcard");
            n >= 50
        })
        .await;

        // The destination goes away for the sink: its logins are refused and its connections
        // killed.
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user.name)
            .arg("off")
            .query_async::<()>(&mut c)
            .await
            .expect("acl off");
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&user.name)
            .query_async(&mut c)
            .await
            .expect("client kill");
        assert!(killed >= 1, "the sink's connections were found by user");
        open_gate.send(true).expect("the gate is there");
        wait_until("batches fail and are replayed", async || {
            spout.failed().iter().sum::<u32>() > 0
        })
        .await;
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user.name)
            .arg("on")
            .query_async::<()>(&mut c)
            .await
            .expect("acl on");

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
    let board = r.zscores(&key);
    let expected: BTreeMap<String, f64> = (0..total).map(|i| (format!("w{i}"), i as f64)).collect();
    assert_eq!(board.len(), total);
    assert!(board == expected, "the leaderboard holds every record");
    eprintln!(
        "{total} records, {failed} failed deliveries replayed, {} emitted",
        spout.emitted()
    );
}

// Guards: with acking on and few trees pending, a batch of 20,000 with an interval of an hour
// never fills; it is applied each time the sink's input runs dry, so every record is on the
// board and acked within the bound (the old behaviour waited out the hour).
#[test]
fn a_big_batch_with_a_long_interval_is_written_when_the_input_runs_dry() {
    let r = Redis::connect();
    let key = r.key("board");
    let total = 1000usize;
    let s = sink(&format!(
        "url = \"{URL}\"\ncommand = \"zadd\"\nkey = \"{key}\"\nmember = \"word\"\nvalue = \"n\"\n\
         batch = {{ max_records = 20000, interval = \"1h\" }}"
    ));
    run_words_until_idle("redis-dry", "board", total, move || s.bolt());
    let expected: BTreeMap<String, f64> = (0..total).map(|i| (format!("w{i}"), i as f64)).collect();
    assert!(r.zscores(&key) == expected, "the board holds every record");
}

/// `GET key` on the TLS-only server through `redis-cli` (an independent client), with the test
/// CA and the `topo` user.
fn tls_get(key: &str) -> String {
    use topo_test_support::tls;
    let out = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &tls::redis_port().to_string(),
            "--tls",
        ])
        .arg("--cacert")
        .arg(tls::file("ca.crt"))
        .args([
            "--user",
            tls::USER,
            "--pass",
            tls::PASSWORD,
            "--no-auth-warning",
        ])
        .args(["GET", key])
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What `check` (a connection, as each task makes at start) says of a sink that must be refused.
fn check_error(s: &RedisSink) -> String {
    common::refused_quickly(s.check())
}

// Guards TLS (`rediss://`) against the TLS-only server of `scripts/services`: records are written
// with the test CA, with and without a client certificate (read back by `redis-cli --tls`); a
// server certificate from a CA not given, a plain connection to the TLS port and a wrong password
// are each refused quickly with an error naming Redis, the server and why.
#[test]
fn rediss_writes_over_tls_and_refuses_wrong_certificates_plain_text_and_wrong_passwords() {
    use topo_test_support::tls;
    let r = Redis::connect();
    let port = tls::redis_port();
    let ca = tls::file("ca.crt");
    let url = format!(
        "rediss://{}:{}@localhost:{port}/0",
        tls::USER,
        tls::PASSWORD
    );
    let set = |url: &str, tls_table: &str| {
        format!(
            "url = \"{url}\"\ncommand = \"set\"\nkey = \"{}tls:{{word}}\"\nvalue = \"n\"\ntimeout = \"2s\"\n\
             tls = {tls_table}\nbatch = {{ max_records = 2 }}\nretry = {{ attempts = 1 }}",
            r.prefix
        )
    };
    let plain_ca = format!("{{ ca = \"{}\" }}", ca.display());
    let with_client = format!(
        "{{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
        ca.display(),
        tls::file("client.crt").display(),
        tls::file("client.key").display()
    );
    for (table, word) in [(&plain_ca, "a"), (&with_client, "b")] {
        let s = sink(&set(&url, table));
        runtime()
            .block_on(s.check())
            .unwrap_or_else(|e| panic!("TLS with {table}: {e}"));
        let mut t = tester(&s, &["word", "n"]);
        let runs = t.execute_all([values![word, 1], values![format!("{word}2"), 2]]);
        assert_eq!(runs[1].acked_inputs, vec![0, 1], "with {table}");
        assert_eq!(tls_get(&format!("{}tls:{word}", r.prefix)), "1");
        assert_eq!(tls_get(&format!("{}tls:{word}2", r.prefix)), "2");
    }
    // Written over TLS only: the keys are not on the plain server of the other tests.
    let plain: Option<String> = r.run(redis::cmd("GET").arg(r.key("tls:a")));
    assert_eq!(plain, None);

    let other_ca = format!("{{ ca = \"{}\" }}", tls::file("other-ca.crt").display());
    let e = check_error(&sink(&set(&url, &other_ca)));
    assert!(
        e.contains("Redis")
            && e.contains(&format!("localhost:{port}"))
            && e.contains("certificate"),
        "a server certificate of an unknown CA: {e}"
    );
    let e = check_error(&sink(&set(&url, "{}")));
    assert!(
        e.contains("Redis") && e.contains("certificate"),
        "the system's roots do not know the test CA: {e}"
    );
    let plain_url = format!("redis://{}:{}@127.0.0.1:{port}/0", tls::USER, tls::PASSWORD);
    let e = check_error(&sink(&set(&plain_url, "{}")));
    assert!(
        e.contains("Redis") && e.contains(&format!("127.0.0.1:{port}")) && e.contains("rediss://"),
        "plain text to the TLS port: {e}"
    );
    let wrong = format!("rediss://{}:not-the-password@localhost:{port}/0", tls::USER);
    let e = check_error(&sink(&set(&wrong, &plain_ca)));
    assert!(
        e.contains("Redis") && e.to_lowercase().contains("password"),
        "a wrong password: {e}"
    );
    assert!(
        !e.contains("not-the-password"),
        "the password is shown: {e}"
    );
}

// Guards the TLS options' checks: each names the option, the file and what is wrong.
#[test]
fn tls_options_are_checked_naming_the_option_and_the_file() {
    use topo_test_support::tls;
    let dir = tempfile::tempdir().expect("a temp dir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("written");
    let base = "command = \"set\"\nkey = \"k\"\nvalue = \"v\"";
    let refused = |extra: &str| {
        RedisSink::new(options(&format!("{base}\n{extra}")))
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"))
    };
    let e = refused(&format!(
        "url = \"redis://127.0.0.1:6379/0\"\ntls = {{ ca = \"{}\" }}",
        tls::file("ca.crt").display()
    ));
    assert!(e.contains("`tls`") && e.contains("rediss://"), "{e}");
    let e = refused("url = \"rediss://127.0.0.1:6390/0\"\ntls = { ca = \"/no/such/ca.pem\" }");
    assert!(
        e.contains("`tls.ca`") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
    let e = refused(&format!(
        "url = \"rediss://127.0.0.1:6390/0\"\ntls = {{ ca = \"{}\" }}",
        not_pem.display()
    ));
    assert!(
        e.contains("`tls.ca`") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = refused(&format!(
        "url = \"rediss://127.0.0.1:6390/0\"\ntls = {{ cert = \"{}\" }}",
        tls::file("client.crt").display()
    ));
    assert!(e.contains("`tls.cert` needs `tls.key`"), "{e}");
    let e = refused(&format!(
        "url = \"rediss://127.0.0.1:6390/0\"\ntls = {{ cert = \"{}\", key = \"{}\" }}",
        tls::file("client.crt").display(),
        tls::file("other-client.key").display()
    ));
    assert!(e.contains("the key is not the certificate's"), "{e}");
}
