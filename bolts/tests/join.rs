//! The `join` bolt: compared with a naive nested-loop join (inner, left, several joined sources,
//! many-to-many and composite keys, null keys, shuffled arrival orders) through real topologies;
//! window boundaries, hold and receipt acking through the bolt tester with paused time; option
//! errors.

use std::time::Duration;

use proptest::prelude::*;
use topo_bolts::{Join, JoinOptions};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{BoltTester, CaptureBolt, VecSpout};
use topo_runtime::{Config, LocalCluster, Value, Values, values};

fn options(toml_text: &str) -> JoinOptions {
    toml::from_str(toml_text).expect("valid join options")
}

fn join(toml_text: &str) -> Join {
    Join::new(options(toml_text)).expect("valid join")
}

fn join_err(toml_text: &str) -> String {
    match Join::new(options(toml_text)) {
        Ok(_) => panic!("options accepted: {toml_text}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// The naive reference join.

/// One side of the reference join: its rows, key positions and whether it is left-joined.
struct RefSide<'a> {
    rows: &'a [Values],
    key: Vec<usize>,
    left: bool,
}

/// Nested loops over every row of every side: for each `from` row (side 0), the rows of each
/// joined side whose keys equal its key (nulls equal nothing), nulls for an unmatched left side,
/// no output for an unmatched inner side, the cross product of the matches; `select` is
/// (side, column).
fn reference_join(sides: &[RefSide<'_>], select: &[(usize, usize)]) -> Vec<Values> {
    let mut out = Vec::new();
    for f in sides[0].rows {
        let mut per_side: Vec<Vec<Option<&Values>>> = Vec::new();
        let mut dropped = false;
        for s in &sides[1..] {
            let mut m = Vec::new();
            for r in s.rows {
                let equal = sides[0]
                    .key
                    .iter()
                    .zip(&s.key)
                    .all(|(&a, &b)| !f[a].is_null() && !r[b].is_null() && f[a] == r[b]);
                if equal {
                    m.push(Some(r));
                }
            }
            if m.is_empty() {
                if s.left {
                    m.push(None);
                } else {
                    dropped = true;
                }
            }
            per_side.push(m);
        }
        if dropped {
            continue;
        }
        let mut combos: Vec<Vec<Option<&Values>>> = vec![Vec::new()];
        for m in &per_side {
            let mut next = Vec::new();
            for c in &combos {
                for r in m {
                    let mut c = c.clone();
                    c.push(*r);
                    next.push(c);
                }
            }
            combos = next;
        }
        for c in combos {
            let row: Values = select
                .iter()
                .map(|&(side, col)| {
                    if side == 0 {
                        f[col].clone()
                    } else {
                        c[side - 1].map_or(Value::Null, |r| r[col].clone())
                    }
                })
                .collect();
            out.push(row);
        }
    }
    out
}

/// Rows as sorted JSON lines, to compare multisets of rows.
fn sorted(rows: &[Values]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(r.as_slice()).expect("json"))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Running the bolt in a real topology.

/// One input of a test topology: its component id, fields and rows.
struct Input {
    id: &'static str,
    fields: Vec<&'static str>,
    rows: Vec<Values>,
}

/// What a topology run gave.
struct Run {
    output: Vec<Values>,
    errors: Vec<Values>,
    acked: Vec<Vec<u32>>,
    failed: Vec<Vec<u32>>,
}

/// Runs inputs (one `VecSpout` each, acking on) -> join (from the options) -> capture, until idle,
/// then stops (which joins the open window).
fn run_topology(inputs: Vec<Input>, join_toml: &str, config: Config) -> Run {
    let bolt = join(join_toml);
    let capture = CaptureBolt::new();
    let mut b = TopologyBuilder::new("join-test");
    b.config(config);
    let spouts: Vec<VecSpout> = inputs
        .iter()
        .map(|i| VecSpout::new(i.fields.clone(), i.rows.clone()).without_replay())
        .collect();
    for (i, s) in inputs.iter().zip(&spouts) {
        b.set_spout(i.id, s.factory(), 1);
    }
    {
        let mut d = b.set_bolt("join", move || bolt.clone(), 1);
        for i in &inputs {
            d.shuffle_grouping(i.id);
        }
    }
    b.set_bolt("capture", capture.factory(), 1)
        .shuffle_grouping("join")
        .shuffle_grouping_stream("join", "error");
    let topology = b.build().expect("valid topology");
    let cluster = LocalCluster::new(2).expect("runtime");
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(20)))
        .expect("idle in time");
    let report = cluster.block_on(handle.stop(Duration::from_secs(5)));
    assert!(report.drained, "{report:#?}");
    let mut output = Vec::new();
    let mut errors = Vec::new();
    for t in capture.tuples() {
        if t.stream == "error" {
            errors.push(t.values);
        } else {
            output.push(t.values);
        }
    }
    Run {
        output,
        errors,
        acked: spouts.iter().map(VecSpout::acked).collect(),
        failed: spouts.iter().map(VecSpout::failed).collect(),
    }
}

fn topo_config() -> Config {
    Config {
        checkpoint_dir: Some(fresh_checkpoint_dir()),
        worker_threads: 2,
        ..Config::default()
    }
}

fn assert_each_acked_once(run: &Run) {
    for (i, acked) in run.acked.iter().enumerate() {
        assert!(acked.iter().all(|&n| n == 1), "input {i} acks: {acked:?}");
    }
    for (i, failed) in run.failed.iter().enumerate() {
        assert!(
            failed.iter().all(|&n| n == 0),
            "input {i} fails: {failed:?}"
        );
    }
}

fn key_value(k: Option<i64>) -> Value {
    k.map_or(Value::Null, Value::Int)
}

// ---------------------------------------------------------------------------------------------
// Correctness against the reference, through real topologies.

const ORDERS_USERS: &str = r#"
window = "1h"
anchoring = "receipt"
from = { source = "orders", key = ["user_id"] }
join = [ { source = "users", key = ["id"], type = "TYPE" } ]
select = ["orders.order_id", "orders.amount", "users.name as customer"]
"#;

fn orders_users(orders: &[(i64, Option<i64>, i64)], users: &[(Option<i64>, &str)]) -> Vec<Input> {
    vec![
        Input {
            id: "orders",
            fields: vec!["order_id", "user_id", "amount"],
            rows: orders
                .iter()
                .map(|&(o, u, a)| values![o, key_value(u), a])
                .collect(),
        },
        Input {
            id: "users",
            fields: vec!["id", "name"],
            rows: users
                .iter()
                .map(|&(u, n)| values![key_value(u), n])
                .collect(),
        },
    ]
}

fn check_orders_users(
    orders: &[(i64, Option<i64>, i64)],
    users: &[(Option<i64>, &str)],
    kind: &str,
) {
    let inputs = orders_users(orders, users);
    let expected = reference_join(
        &[
            RefSide {
                rows: &inputs[0].rows,
                key: vec![1],
                left: false,
            },
            RefSide {
                rows: &inputs[1].rows,
                key: vec![0],
                left: kind == "left",
            },
        ],
        &[(0, 0), (0, 2), (1, 1)],
    );
    let run = run_topology(inputs, &ORDERS_USERS.replace("TYPE", kind), topo_config());
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_each_acked_once(&run);
    assert_eq!(sorted(&run.output), sorted(&expected));
}

// Guards: an inner join emits exactly the matching pairs, many-to-many keys give their cross
// product, and null keys match nothing.
#[test]
fn inner_join_equals_the_reference() {
    let orders = [
        (1, Some(10), 5),
        (2, Some(10), 7),
        (3, Some(11), 1),
        (4, Some(12), 9),
        (5, None, 3),
    ];
    let users = [
        (Some(10), "ann"),
        (Some(10), "ann-2"),
        (Some(11), "bob"),
        (None, "nobody"),
    ];
    check_orders_users(&orders, &users, "inner");
}

// Guards: a left join keeps every `from` tuple, with nulls where nothing matches (a null key
// included).
#[test]
fn left_join_equals_the_reference() {
    let orders = [(1, Some(10), 5), (2, Some(13), 7), (3, None, 1)];
    let users = [(Some(10), "ann"), (None, "nobody")];
    check_orders_users(&orders, &users, "left");
}

// Guards: two joined sources, one inner and one left, over a composite key; tuples from a
// source not in the join go to the error stream and are acked.
#[test]
fn several_sources_composite_keys_and_unknown_sources() {
    let orders: Vec<Values> = (0..30)
        .map(|i| values![i, i % 4, ["eu", "us"][(i % 3 % 2) as usize], i * 10])
        .collect();
    let users: Vec<Values> = (0..4)
        .flat_map(|u| {
            ["eu", "us"]
                .into_iter()
                .filter(move |r| u != 3 || *r == "eu")
                .map(move |r| values![u, r, format!("user{u}{r}")])
        })
        .collect();
    let regions: Vec<Values> = vec![
        values![1, "eu", "Paris"],
        values![1, "eu", "Lyon"],
        values![2, "us", "Austin"],
    ];
    let strays: Vec<Values> = vec![values!["stray"]];
    let expected = reference_join(
        &[
            RefSide {
                rows: &orders,
                key: vec![1, 2],
                left: false,
            },
            RefSide {
                rows: &users,
                key: vec![0, 1],
                left: false,
            },
            RefSide {
                rows: &regions,
                key: vec![0, 1],
                left: true,
            },
        ],
        &[(0, 0), (1, 2), (2, 2), (0, 3)],
    );
    let inputs = vec![
        Input {
            id: "orders",
            fields: vec!["id", "user", "region", "amount"],
            rows: orders,
        },
        Input {
            id: "users",
            fields: vec!["uid", "ureg", "name"],
            rows: users,
        },
        Input {
            id: "regions",
            fields: vec!["user", "region", "city"],
            rows: regions,
        },
        Input {
            id: "strays",
            fields: vec!["x"],
            rows: strays,
        },
    ];
    let run = run_topology(
        inputs,
        r#"
        window = "1h"
        anchoring = "receipt"
        from = { source = "orders", key = ["user", "region"] }
        join = [
            { source = "users", key = ["uid", "ureg"] },
            { source = "regions", key = ["user", "region"], type = "left" },
        ]
        select = ["orders.id", "users.name", "regions.city", "orders.amount"]
        "#,
        topo_config(),
    );
    assert_each_acked_once(&run);
    assert_eq!(sorted(&run.output), sorted(&expected));
    assert!(!expected.is_empty());
    assert_eq!(run.errors.len(), 1, "{:?}", run.errors);
    let reason = run.errors[0][0].as_str().expect("reason");
    assert!(reason.contains("`strays`"), "{reason}");
    assert!(reason.contains("not a source of this join"), "{reason}");
}

// Guards: a source written `component:stream` takes only that stream of the component; a
// tuple of another stream of it goes to the error stream.
#[test]
fn sources_may_name_a_stream() {
    let inputs = orders_users(&[(1, Some(10), 5), (2, Some(11), 6)], &[(Some(10), "ann")]);
    let run = run_topology(
        inputs,
        r#"
        window = "1h"
        anchoring = "receipt"
        from = { source = "orders:default", key = ["user_id"] }
        join = [ { source = "users:default", key = ["id"] } ]
        select = ["orders:default.order_id", "users:default.name"]
        "#,
        topo_config(),
    );
    assert_each_acked_once(&run);
    assert_eq!(run.output, vec![values![1, "ann"]]);
    assert!(run.errors.is_empty());
    let inputs = orders_users(&[(1, Some(10), 5)], &[(Some(10), "ann")]);
    let run = run_topology(
        inputs,
        r#"
        window = "1h"
        anchoring = "receipt"
        from = { source = "orders", key = ["user_id"] }
        join = [ { source = "users:updates", key = ["id"], type = "left" } ]
        select = ["orders.order_id", "users:updates.name"]
        "#,
        topo_config(),
    );
    assert_each_acked_once(&run);
    assert_eq!(run.output, vec![values![1, Value::Null]]);
    assert_eq!(run.errors.len(), 1, "users' default stream is not a source");
}

// Guards: with anchoring = "hold" through a real topology every input is acked once, after its
// window was joined, and every output is a row of the reference join (windows of 50ms split the
// input, so some pairs may fall into different windows).
#[test]
fn hold_through_a_topology_acks_every_input_once() {
    let orders: Vec<(i64, Option<i64>, i64)> = (0..200).map(|i| (i, Some(i % 50), i)).collect();
    let users: Vec<(Option<i64>, String)> = (0..50).map(|u| (Some(u), format!("u{u}"))).collect();
    let users_ref: Vec<(Option<i64>, &str)> = users.iter().map(|(u, n)| (*u, n.as_str())).collect();
    let inputs = orders_users(&orders, &users_ref);
    let expected = sorted(&reference_join(
        &[
            RefSide {
                rows: &inputs[0].rows,
                key: vec![1],
                left: false,
            },
            RefSide {
                rows: &inputs[1].rows,
                key: vec![0],
                left: false,
            },
        ],
        &[(0, 0), (0, 2), (1, 1)],
    ));
    let run = run_topology(
        inputs,
        &ORDERS_USERS
            .replace("TYPE", "inner")
            .replace("\"1h\"", "\"50ms\"")
            .replace("receipt", "hold"),
        topo_config(),
    );
    assert_each_acked_once(&run);
    let got = sorted(&run.output);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), got.len(), "an output was emitted twice");
    for row in &got {
        assert!(expected.binary_search(row).is_ok(), "not a join row: {row}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    // Guards: whatever the arrival order (shuffled inputs, and the two spouts interleave as the
    // runtime schedules them), the inner and the left join equal the reference.
    #[test]
    fn any_arrival_order_gives_the_reference(
        orders in prop::collection::vec(
            (0i64..1000, prop::option::weighted(0.9, 0i64..6), 0i64..100), 0..25,
        ).prop_shuffle(),
        users in prop::collection::vec(
            (prop::option::weighted(0.9, 0i64..8), "[a-c]{1,2}"), 0..12,
        ).prop_shuffle(),
        left in any::<bool>(),
    ) {
        let users: Vec<(Option<i64>, &str)> = users.iter().map(|(u, n)| (*u, n.as_str())).collect();
        check_orders_users(&orders, &users, if left { "left" } else { "inner" });
    }
}

// ---------------------------------------------------------------------------------------------
// Windows, acking and run-time errors through the bolt tester (its inputs come from the
// component `__input`), with paused time.

/// A tester whose `from` side is the tester's input, left-joined to a source that sends nothing:
/// each input gives one output per window holding it.
fn tester(window: &str, slide: Option<&str>, anchoring: &str) -> BoltTester {
    let slide = slide.map_or(String::new(), |s| format!("slide = \"{s}\""));
    let bolt = join(&format!(
        r#"
        window = "{window}"
        {slide}
        anchoring = "{anchoring}"
        from = {{ source = "__input", key = ["k"] }}
        join = [ {{ source = "other", key = ["id"], type = "left" }} ]
        select = ["__input.k", "__input.v", "other.name"]
        "#
    ));
    let mut t = BoltTester::full(move || bolt.clone(), ["k", "v"]);
    t.pause_time();
    t
}

/// Advances the paused clock to `offset_ms` past the next multiple of `period_ms`.
fn align(t: &mut BoltTester, period_ms: i64, offset_ms: i64) {
    let now = t.now_millis();
    let next = (now.div_euclid(period_ms) + 1) * period_ms + offset_ms;
    t.advance(Duration::from_millis((next - now) as u64));
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn outputs(e: &topo_runtime::testing::Executed) -> Vec<i64> {
    e.emitted
        .iter()
        .filter(|t| t.stream == "default")
        .map(|t| t.values[1].as_i64().expect("v"))
        .collect()
}

// Guards: in hold mode no input is acked before its window ends; at the first tick after the
// end every output is emitted anchored and exactly that window's inputs are acked.
#[test]
fn hold_acks_exactly_at_window_end() {
    let mut t = tester("1s", None, "hold");
    align(&mut t, 1000, 100);
    for v in 0..3 {
        let r = t.execute(values![v % 2, v]);
        assert!(!r.acked && !r.failed && r.emitted.is_empty(), "{r:?}");
    }
    t.advance(ms(800)); // 900ms into the window
    let r = t.tick();
    assert!(r.emitted.is_empty() && r.acked_inputs.is_empty(), "{r:?}");
    t.advance(ms(150)); // 50ms into the next window: input 3 belongs to it
    let late = t.execute(values![7, 3]);
    assert!(!late.acked);
    let r = t.tick();
    assert_eq!(outputs(&r), vec![0, 1, 2]);
    assert!(r.emitted.iter().all(|e| e.anchored));
    assert_eq!(r.emitted[0].values[2], Value::Null, "left join gives null");
    assert_eq!(r.acked_inputs, vec![0, 1, 2]);
    t.advance(ms(1000));
    let r = t.tick();
    assert_eq!(outputs(&r), vec![3]);
    assert_eq!(r.acked_inputs, vec![3]);
}

// Guards: in receipt mode each input is acked as it arrives and outputs are unanchored.
#[test]
fn receipt_acks_on_arrival() {
    let mut t = tester("1s", None, "receipt");
    align(&mut t, 1000, 0);
    let r = t.execute(values![1, 10]);
    assert!(r.acked && r.emitted.is_empty(), "{r:?}");
    t.advance(ms(1000));
    let r = t.tick();
    assert_eq!(outputs(&r), vec![10]);
    assert!(r.emitted.iter().all(|e| !e.anchored));
    assert!(r.acked_inputs.is_empty());
}

// Guards: "auto" holds when window + slide is at most half the message timeout (30s by
// default), and acks on receipt otherwise.
#[test]
fn auto_picks_hold_or_receipt_from_the_message_timeout() {
    let mut t = tester("5s", None, "auto");
    assert!(!t.execute(values![1, 1]).acked, "10s <= 15s: hold");
    let mut t = tester("10s", None, "auto");
    assert!(t.execute(values![1, 1]).acked, "20s > 15s: receipt");
}

// Guards: tumbling windows are aligned to multiples of the window, each joined once, and a tick
// before a window ends emits nothing.
#[test]
fn tumbling_window_boundaries() {
    let mut t = tester("1s", None, "hold");
    align(&mut t, 1000, 0);
    t.execute(values![1, 0]); // exactly at a window start
    t.advance(ms(999));
    t.execute(values![1, 1]); // last millisecond of the window
    assert!(t.tick().emitted.is_empty());
    t.advance(ms(1));
    t.execute(values![1, 2]); // first millisecond of the next window
    assert_eq!(outputs(&t.tick()), vec![0, 1]);
    t.advance(ms(3500)); // several ticks missed: the pending window is joined once
    assert_eq!(outputs(&t.tick()), vec![2]);
    assert!(t.tick().emitted.is_empty());
}

// Guards: a sliding window joins each input once per window holding it, and holds it until the
// last of them.
#[test]
fn sliding_window_joins_each_input_in_every_window_holding_it() {
    let mut t = tester("2s", Some("1s"), "hold");
    align(&mut t, 1000, 500);
    t.execute(values![1, 0]);
    t.advance(ms(600)); // 100ms past the end of the first window holding input 0
    let r = t.tick();
    assert_eq!(outputs(&r), vec![0]);
    assert!(
        r.acked_inputs.is_empty(),
        "input 0 is in the next window too"
    );
    t.execute(values![1, 1]);
    t.advance(ms(1000));
    let r = t.tick();
    assert_eq!(outputs(&r), vec![0, 1]);
    assert_eq!(r.acked_inputs, vec![0]);
    t.advance(ms(1000));
    let r = t.tick();
    assert_eq!(outputs(&r), vec![1]);
    assert_eq!(r.acked_inputs, vec![1]);
}

// Guards: finish (end of input) joins the open window and acks its held inputs.
#[test]
fn finish_joins_the_open_window() {
    let mut t = tester("1s", None, "hold");
    align(&mut t, 1000, 100);
    t.execute(values![1, 5]);
    let r = t.finish();
    assert_eq!(outputs(&r), vec![5]);
    assert_eq!(r.acked_inputs, vec![0]);
    assert!(r.failed_inputs.is_empty());
}

// Guards: a tuple lacking a selected field goes to the error stream with the reason, and is
// acked at once, even in hold mode.
#[test]
fn a_missing_select_field_goes_to_the_error_stream() {
    let bolt = join(
        r#"
        window = "1s"
        anchoring = "hold"
        from = { source = "__input", key = ["k"] }
        join = [ { source = "other", key = ["id"], type = "left" } ]
        select = ["__input.k", "__input.missing"]
        "#,
    );
    let mut t = BoltTester::full(move || bolt.clone(), ["k", "v"]);
    let r = t.execute(values![1, 2]);
    assert!(r.acked);
    assert_eq!(r.emitted.len(), 1);
    assert_eq!(r.emitted[0].stream, "error");
    let reason = r.emitted[0].values[0].as_str().expect("reason");
    assert!(reason.contains("`missing`"), "{reason}");
    assert!(r.emitted[0].values[1].as_map().is_some(), "record");
    assert!(t.finish().emitted.is_empty());
}

// Guards: "hold" with window + slide over half the message timeout is refused, naming both
// values and the fixes; "auto" then acks on receipt, "receipt" never holds.
#[test]
fn hold_needs_window_plus_slide_well_under_the_message_timeout() {
    let make = |anchoring: &str| {
        join(&format!(
            "window = \"10s\"\nslide = \"5s\"\nanchoring = \"{anchoring}\"\n{BASE}select = [\"orders.id\"]"
        ))
    };
    let e = make("hold")
        .holds_inputs(Duration::from_secs(20))
        .expect_err("15s is over half of 20s");
    assert!(
        e.contains("15s") && e.contains("20s") && e.contains("30s"),
        "{e}"
    );
    assert!(
        e.contains("message_timeout") && e.contains("receipt"),
        "{e}"
    );
    assert_eq!(make("hold").holds_inputs(Duration::from_secs(30)), Ok(true));
    assert_eq!(
        make("auto").holds_inputs(Duration::from_secs(20)),
        Ok(false)
    );
    assert_eq!(make("auto").holds_inputs(Duration::from_secs(30)), Ok(true));
    assert_eq!(
        make("receipt").holds_inputs(Duration::from_secs(300)),
        Ok(false)
    );
}

// ---------------------------------------------------------------------------------------------
// Option errors.

const BASE: &str = r#"
from = { source = "orders", key = ["user_id"] }
join = [ { source = "users", key = ["id"] } ]
"#;

// Guards: a select item naming no source of the join is refused, naming the item and the
// sources.
#[test]
fn unknown_select_source_is_an_error() {
    let e = join_err(&format!(
        "{BASE}select = [\"orders.id\", \"customers.name\"]"
    ));
    assert!(
        e.contains("customers.name") && e.contains("orders, users"),
        "{e}"
    );
}

// Guards: a malformed `as` is refused.
#[test]
fn bad_as_is_an_error() {
    for item in [
        "users.name as",
        "users.name customer",
        "users.name as a b",
        "users.name AS x.y",
    ] {
        let e = join_err(&format!("{BASE}select = [\"{item}\"]"));
        assert!(e.contains("select") && e.contains(item), "{item}: {e}");
    }
    // `AS` in upper case is accepted.
    assert_eq!(
        join(&format!("{BASE}select = [\"users.name AS customer\"]")).output_fields(),
        ["customer"]
    );
}

// Guards: key lists of different lengths are refused, naming both.
#[test]
fn key_length_mismatch_is_an_error() {
    let e = join_err(
        r#"
        from = { source = "orders", key = ["user_id", "region"] }
        join = [ { source = "users", key = ["id"] } ]
        select = ["orders.id"]
        "#,
    );
    assert!(
        e.contains("join[0]") && e.contains("\"user_id\", \"region\""),
        "{e}"
    );
}

// Guards: duplicate output names, a slide that does not divide the window, a missing `join` and
// an unknown option are refused.
#[test]
fn other_option_errors() {
    let e = join_err(&format!("{BASE}select = [\"orders.id\", \"users.id\"]"));
    assert!(e.contains("`id`") && e.contains("twice"), "{e}");
    let e = join_err(&format!(
        "window = \"10s\"\nslide = \"3s\"\n{BASE}select = [\"orders.id\"]"
    ));
    assert!(
        e.contains("slide") && e.contains("3s") && e.contains("10s"),
        "{e}"
    );
    let e = join_err("from = { source = \"orders\", key = [\"id\"] }\nselect = [\"orders.id\"]");
    assert!(e.contains("`join`"), "{e}");
    let bad: Result<JoinOptions, _> = toml::from_str(&format!("{BASE}selct = []"));
    assert!(bad.is_err());
}

// Guards: both sides through the bolt tester (`execute_from`): an inner join holds the inputs of
// both sides, emits each match anchored to them at the window's end, and acks every input then.
#[test]
fn both_sides_through_the_tester_in_any_order() {
    let bolt = join(
        r#"
        window = "1s"
        anchoring = "hold"
        from = { source = "orders", key = ["user"] }
        join = [ { source = "users", key = ["id"] } ]
        select = ["orders.order", "users.name"]
        "#,
    );
    let mut t = BoltTester::full(move || bolt.clone(), ["unused"]);
    t.pause_time();
    align(&mut t, 1000, 100);
    let users = ["id", "name"];
    let orders = ["order", "user"];
    assert!(
        t.execute_from("users", "default", users, values![2, "bob"])
            .emitted
            .is_empty()
    );
    t.execute_from("orders", "default", orders, values!["o1", 1]);
    t.execute_from("orders", "default", orders, values!["o2", 2]);
    t.execute_from("users", "default", users, values![1, "ann"]);
    t.execute_from("orders", "default", orders, values!["o3", 3]); // no user: inner drops it
    t.advance(Duration::from_millis(950));
    let r = t.tick();
    let mut rows: Vec<(String, String)> = r
        .emitted
        .iter()
        .map(|e| (e.values[0].to_string(), e.values[1].to_string()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [("o1".into(), "ann".into()), ("o2".into(), "bob".into())]
    );
    assert!(r.emitted.iter().all(|e| e.anchored));
    let mut acked = r.acked_inputs.clone();
    acked.sort();
    assert_eq!(acked, [0, 1, 2, 3, 4]);
}

/// A fresh checkpoint directory of this test process (the bolt is stateful: its topology takes
/// checkpoints, and a run must not resume from another test's or another run's).
fn fresh_checkpoint_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "topo-bolts-{}-{}-{n}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: a crash after a checkpoint, a fresh instance restored from it and the inputs
// since replayed give exactly the outputs of an uninterrupted run (see `support`).

mod support;

use support::{Step, check_resume};

const ORDER: &[&str] = &["order_id", "user_id", "amount"];
const USER: &[&str] = &["id", "name"];

fn order(at: i64, id: i64, user: i64, amount: i64) -> [Step; 2] {
    [
        Step::At(at),
        Step::From("orders", ORDER, values![id, user, amount]),
    ]
}

fn user(at: i64, id: i64, name: &str) -> [Step; 2] {
    [Step::At(at), Step::From("users", USER, values![id, name])]
}

fn tick(at: i64) -> [Step; 2] {
    [Step::At(at), Step::Tick]
}

fn resume_join(anchoring: &str, steps: &[Step], lost: usize) {
    let bolt = join(&format!(
        r#"
        window = "10s"
        slide = "5s"
        anchoring = "{anchoring}"
        from = {{ source = "orders", key = ["user_id"] }}
        join = [ {{ source = "users", key = ["id"], type = "left" }} ]
        select = ["orders.order_id", "orders.amount", "users.name"]
        "#
    ));
    let again = bolt.clone();
    check_resume(
        move || {
            let b = bolt.clone();
            BoltTester::full(move || b.clone(), ["unused"])
        },
        move |c| {
            let b = again.clone();
            BoltTester::restore_full(move || b.clone(), ["unused"], c)
        },
        steps,
        lost,
    );
}

fn join_steps(second_checkpoint: bool) -> Vec<Step> {
    let mut s = Vec::new();
    s.extend(user(500, 1, "ann"));
    s.extend(order(1_000, 100, 1, 10));
    s.extend(order(2_000, 101, 2, 20));
    s.extend(user(4_000, 2, "bob"));
    s.extend(tick(5_000)); // [-5s, 5s) joined
    s.extend(order(6_000, 102, 1, 30));
    s.extend(user(7_000, 3, "cy"));
    s.push(Step::Checkpoint);
    s.extend(order(8_000, 103, 3, 40));
    s.extend(tick(10_000)); // [0s, 10s) joined; panes before 5s dropped
    s.extend(user(11_000, 1, "ann2"));
    if second_checkpoint {
        s.push(Step::Checkpoint);
    }
    s.extend(order(12_000, 104, 1, 50));
    s.extend(order(13_000, 105, 4, 60));
    s.extend(tick(15_000));
    s.extend(user(16_000, 4, "dee"));
    s.extend(tick(20_000));
    s.extend(order(21_000, 106, 2, 70));
    s
}

// Guards: a resumed join holds the inputs it held at the checkpoint (pane, side, key and
// selected values) and the last window joined, in both anchoring modes.
#[test]
fn join_resumes_from_a_checkpoint() {
    for anchoring in ["receipt", "hold"] {
        resume_join(anchoring, &join_steps(false), 4);
    }
}

#[test]
fn join_second_checkpoint_restores_the_second() {
    resume_join("receipt", &join_steps(true), 3);
}

/// Moves a paused tester's clock to exactly `ms`.
fn clock_to(t: &mut BoltTester, ms: i64) {
    for _ in 0..3 {
        let now = t.now_millis();
        assert!(now <= ms, "the clock is at {now}, past {ms}");
        if now == ms {
            return;
        }
        t.advance(Duration::from_millis((ms - now) as u64));
    }
    assert_eq!(
        t.now_millis(),
        ms,
        "the paused clock does not follow advances"
    );
}

// Guards: a task restored on a clock behind the checkpoint's (another host) still joins its
// inputs: one arriving before the end of the last window joined goes to the next window.
#[test]
fn restore_on_a_clock_behind_joins_every_input() {
    let bolt = join(
        r#"
        window = "1s"
        anchoring = "receipt"
        from = { source = "orders", key = ["user_id"] }
        join = [ { source = "users", key = ["id"] } ]
        select = ["orders.order_id", "users.name"]
        "#,
    );
    let b = bolt.clone();
    let mut t = BoltTester::full(move || b.clone(), ["unused"]);
    t.pause_time();
    let base = (t.now_millis() / 3_600_000 + 2) * 3_600_000;
    clock_to(&mut t, base + 5_100);
    t.execute_from(
        "orders",
        "default",
        ORDER.iter().copied(),
        values![1, 7, 10],
    );
    clock_to(&mut t, base + 6_000);
    assert!(t.tick().emitted.is_empty(), "no user 7");
    let (c, _) = t.checkpoint().expect("a checkpoint");
    drop(t);
    let mut back = BoltTester::restore_full(move || bolt.clone(), ["unused"], &c);
    back.pause_time();
    clock_to(&mut back, base + 3_500);
    back.execute_from(
        "orders",
        "default",
        ORDER.iter().copied(),
        values![2, 8, 20],
    );
    back.execute_from("users", "default", USER.iter().copied(), values![8, "eve"]);
    clock_to(&mut back, base + 7_000); // the end of the window after the last one joined
    let r = back.tick();
    let rows: Vec<_> = r.emitted.iter().map(|e| e.values.to_vec()).collect();
    assert_eq!(rows, vec![vec![Value::Int(2), Value::from("eve")]]);
}
