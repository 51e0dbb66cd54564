//! The `window` bolt against an independent, naive computation of the same windows.
//!
//! The reference below knows nothing of the bolt's state: for a list of records in arrival order
//! (with their arrival time or event timestamp) it enumerates every candidate window, filters the
//! records that belong to it and aggregates them with plain iterator code; for event time it
//! replays the watermark arrival by arrival to decide which tuples are late and which windows had
//! fired. Results are compared as sorted sets of rows.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use topo_bolts::window::{
    AggregateOptions, Anchoring, Extent, LATE_STREAM, TimeMode, Window, WindowOptions,
};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{BoltTester, CaptureBolt, Executed, VecSpout};
use topo_runtime::{Config, LocalCluster, Value, Values, values};

const FIELDS: [&str; 4] = ["key", "v", "user", "ts"];

/// One input record.
#[derive(Clone, Debug)]
struct Rec {
    key: String,
    v: Value,
    user: String,
    ts: i64,
}

impl Rec {
    fn values(&self) -> Values {
        values![self.key.clone(), self.v.clone(), self.user.clone(), self.ts]
    }
}

/// A small deterministic generator (64-bit LCG), so the tests need no seed plumbing.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `n` records over keys a, b, c; `v` an int, a float with an exact binary fraction, or null.
fn records(n: usize, seed: u64, ts_range: u64) -> Vec<Rec> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|_| Rec {
            key: ["a", "b", "c"][r.next(3) as usize].to_string(),
            v: match r.next(10) {
                0 => Value::Null,
                1 => Value::Float(r.next(40) as f64 / 2.0 - 5.0),
                _ => Value::Int(r.next(30) as i64 - 5),
            },
            user: format!("u{}", r.next(6)),
            ts: 1_700_000_000_000 + r.next(ts_range) as i64,
        })
        .collect()
}

/// Every aggregate: count, sum, min, max, avg of `v`; distinct counts and top 2 of `user`.
fn all_aggregates() -> Vec<AggregateOptions> {
    vec![
        AggregateOptions::new("count", None, "n"),
        AggregateOptions::new("sum", Some("v"), "sum"),
        AggregateOptions::new("min", Some("v"), "min"),
        AggregateOptions::new("max", Some("v"), "max"),
        AggregateOptions::new("avg", Some("v"), "avg"),
        AggregateOptions::new("count_distinct", Some("user"), "users"),
        AggregateOptions::new("approx_count_distinct", Some("user"), "users_est"),
        AggregateOptions {
            k: Some(2),
            ..AggregateOptions::new("top_k", Some("user"), "top")
        },
    ]
}

fn options(length: Extent, slide: Option<Extent>) -> WindowOptions {
    WindowOptions {
        length: Some(length),
        slide,
        group_by: vec!["key".into()],
        aggregates: all_aggregates(),
        ..Default::default()
    }
}

fn dur(ms: i64) -> Extent {
    Extent::Duration(format!("{ms}ms"))
}

/// The naive aggregates of `members` (in arrival order), in the order of [`all_aggregates`].
fn naive_aggregates(members: &[&Rec]) -> Vec<Value> {
    let nums: Vec<&Value> = members
        .iter()
        .map(|r| &r.v)
        .filter(|v| !v.is_null())
        .collect();
    let any_float = nums.iter().any(|v| matches!(v, Value::Float(_)));
    let as_f = |v: &&Value| match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => unreachable!(),
    };
    let as_i = |v: &&Value| match v {
        Value::Int(i) => *i,
        _ => unreachable!(),
    };
    let number = |f: f64| {
        if any_float {
            Value::Float(f)
        } else {
            Value::Int(f as i64)
        }
    };
    let (sum, min, max, avg) = if nums.is_empty() {
        (Value::Null, Value::Null, Value::Null, Value::Null)
    } else {
        let fsum: f64 = nums.iter().map(as_f).sum();
        let sum = if any_float {
            Value::Float(fsum)
        } else {
            Value::Int(nums.iter().map(as_i).sum())
        };
        let min = nums.iter().map(as_f).fold(f64::INFINITY, f64::min);
        let max = nums.iter().map(as_f).fold(f64::NEG_INFINITY, f64::max);
        (
            sum,
            number(min),
            number(max),
            Value::Float(fsum / nums.len() as f64),
        )
    };
    let users: HashSet<&str> = members.iter().map(|r| r.user.as_str()).collect();
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for r in members {
        *counts.entry(&r.user).or_default() += 1;
    }
    let mut ranked: Vec<(&str, i64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<Value> = ranked
        .iter()
        .take(2)
        .map(|(u, n)| {
            let mut m = std::collections::BTreeMap::new();
            m.insert("value".into(), Value::from(*u));
            m.insert("count".into(), Value::Int(*n));
            Value::Map(Arc::new(m))
        })
        .collect();
    vec![
        Value::Int(members.len() as i64),
        sum,
        min,
        max,
        avg,
        Value::Int(users.len() as i64),
        Value::Int(users.len() as i64),
        Value::List(Arc::new(top)),
    ]
}

fn row(start: i64, end: i64, key: &str, members: &[&Rec]) -> String {
    let mut v = vec![Value::Int(start), Value::Int(end), Value::from(key)];
    v.extend(naive_aggregates(members));
    format!("{v:?}")
}

/// A naive duration window: its end, and its row.
struct NaiveRow {
    end: i64,
    row: String,
}

/// Every window `[s, s + len)` (s a multiple of `slide`) and key with at least one member: a record
/// `i` whose `times[i]` lies in it and for which `admit(i, end)` holds.
fn naive_duration(
    recs: &[Rec],
    times: &[i64],
    len: i64,
    slide: i64,
    admit: impl Fn(usize, i64) -> bool,
) -> Vec<NaiveRow> {
    let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) else {
        return Vec::new();
    };
    let keys: BTreeSet<&str> = recs.iter().map(|r| r.key.as_str()).collect();
    let mut out = Vec::new();
    let mut s = (lo - len).div_euclid(slide) * slide;
    while s <= *hi {
        for key in &keys {
            let members: Vec<&Rec> = (0..recs.len())
                .filter(|&i| recs[i].key == *key && s <= times[i] && times[i] < s + len)
                .filter(|&i| admit(i, s + len))
                .map(|i| &recs[i])
                .collect();
            if !members.is_empty() {
                out.push(NaiveRow {
                    end: s + len,
                    row: row(s, s + len, key, &members),
                });
            }
        }
        s += slide;
    }
    out
}

fn rows(runs: &[&Executed]) -> Vec<String> {
    let mut out: Vec<String> = runs
        .iter()
        .flat_map(|r| &r.emitted)
        .filter(|e| e.stream == "default")
        .map(|e| format!("{:?}", e.values.to_vec()))
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Runs records through a processing-time duration window, advancing the paused clock by a
/// pseudo-random step before each and ticking every few tuples. Checks the results against the
/// naive windows over the arrival times, that each window is emitted by the first call after its
/// end, and the acks of the anchoring mode.
fn processing_time_case(len: i64, slide: Option<i64>, anchoring: Anchoring, seed: u64) {
    let recs = records(120, seed, 1);
    let mut opts = options(dur(len), slide.map(dur));
    opts.anchoring = anchoring;
    let window = Window::new(opts).expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), FIELDS);
    t.pause_time();
    let hold = anchoring != Anchoring::Receipt;
    let slide = slide.unwrap_or(len);
    let mut steps = Lcg(seed ^ 0xabcdef);
    let mut times = Vec::new();
    let mut before_finish: Vec<Executed> = Vec::new();
    let mut acked: Vec<bool> = Vec::new();
    // The end of the last window containing each input: when `hold` must ack it.
    let last_end = |time: i64| time.div_euclid(slide) * slide + len;
    // Inputs acked by a call at `now`: with hold, those whose last window has ended; otherwise
    // every input not yet acked (the one just executed).
    let check_acks = |run: &Executed, times: &[i64], acked: &mut [bool], now: i64| {
        let expected: Vec<usize> = (0..acked.len())
            .filter(|&i| !acked[i] && (!hold || last_end(times[i]) <= now))
            .collect();
        let mut got = run.acked_inputs.clone();
        got.sort();
        assert_eq!(got, expected, "acks at {now}");
        for i in got {
            acked[i] = true;
        }
    };
    for (i, rec) in recs.iter().enumerate() {
        t.advance(Duration::from_millis(steps.next(len as u64 / 4 + 1)));
        let now = t.now_millis();
        times.push(now);
        let run = t.execute(rec.values());
        // Windows whose end has passed fire before the new tuple is added.
        let fired: Vec<String> = naive_duration(&recs[..i], &times[..i], len, slide, |_, _| true)
            .into_iter()
            .filter(|w| w.end <= now)
            .map(|w| w.row)
            .collect();
        assert_eq!(
            sorted(rows(
                &before_finish.iter().chain([&run]).collect::<Vec<_>>()
            )),
            sorted(fired),
            "after input {i} at {now}"
        );
        acked.push(false);
        check_acks(&run, &times, &mut acked, now);
        assert_eq!(run.acked, !hold, "receipt acks at once, hold later");
        assert!(run.emitted.iter().all(|e| e.anchored == hold));
        before_finish.push(run);
        if i % 7 == 6 {
            t.advance(Duration::from_millis(steps.next(len as u64)));
            let now = t.now_millis();
            let run = t.tick();
            check_acks(&run, &times, &mut acked, now);
            before_finish.push(run);
        }
    }
    let now = t.now_millis();
    let naive = naive_duration(&recs, &times, len, slide, |_, _| true);
    let expect_fired: Vec<String> = naive
        .iter()
        .filter(|w| w.end <= now)
        .map(|w| w.row.clone())
        .collect();
    let refs: Vec<&Executed> = before_finish.iter().collect();
    assert_eq!(rows(&refs), sorted(expect_fired));
    // The end of input fires the windows still open, and a holding bolt acks the rest.
    let fin = t.finish();
    let expect_open: Vec<String> = naive
        .iter()
        .filter(|w| w.end > now)
        .map(|w| w.row.clone())
        .collect();
    assert!(
        !expect_open.is_empty(),
        "the last windows are open at the end"
    );
    assert_eq!(rows(&[&fin]), sorted(expect_open));
    let mut rest = fin.acked_inputs.clone();
    rest.sort();
    let unacked: Vec<usize> = (0..acked.len()).filter(|&i| !acked[i]).collect();
    assert_eq!(rest, unacked);
    assert!(fin.failed_inputs.is_empty());
}

#[test]
fn tumbling_duration_processing_time_hold() {
    processing_time_case(2000, None, Anchoring::Auto, 1);
}

#[test]
fn sliding_duration_processing_time_hold() {
    processing_time_case(2000, Some(500), Anchoring::Auto, 2);
}

#[test]
fn sliding_duration_length_not_a_multiple_of_slide() {
    processing_time_case(1500, Some(400), Anchoring::Hold, 3);
}

#[test]
fn sliding_duration_processing_time_receipt() {
    processing_time_case(2000, Some(1000), Anchoring::Receipt, 4);
}

/// Naive count windows per key, in arrival order: (row, emitted before the end of input).
fn naive_count(recs: &[Rec], times: &[i64], len: usize, slide: usize) -> Vec<(String, bool)> {
    let keys: BTreeSet<&str> = recs.iter().map(|r| r.key.as_str()).collect();
    let mut out = Vec::new();
    for key in keys {
        let idx: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].key == key).collect();
        // The window of the `count` tuples up to `upto`.
        let window = |upto: usize, count: usize| {
            let from = upto - count;
            let members: Vec<&Rec> = idx[from..upto].iter().map(|&i| &recs[i]).collect();
            row(times[idx[from]], times[idx[upto - 1]], key, &members)
        };
        for upto in 1..=idx.len() {
            if upto % slide == 0 {
                out.push((window(upto, upto.min(len)), true));
            }
        }
        // The end of input: a tumbling group's tuples since its last result; a sliding group's
        // last `len` tuples.
        let n = idx.len();
        if !n.is_multiple_of(slide) {
            let count = if slide == len { n % len } else { n.min(len) };
            out.push((window(n, count), false));
        }
    }
    out
}

fn count_case(len: i64, slide: Option<i64>, anchoring: Anchoring) {
    let recs = records(100, 7 + len as u64, 1);
    let mut opts = options(Extent::Count(len), slide.map(Extent::Count));
    opts.anchoring = anchoring;
    let window = Window::new(opts).expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), FIELDS);
    t.pause_time();
    let mut times = Vec::new();
    let mut runs = Vec::new();
    let mut acks = 0;
    for rec in &recs {
        t.advance(Duration::from_millis(37));
        times.push(t.now_millis());
        let run = t.execute(rec.values());
        if anchoring == Anchoring::Receipt || anchoring == Anchoring::Auto {
            assert!(run.acked && run.acked_inputs.len() == 1);
            assert!(run.emitted.iter().all(|e| !e.anchored));
        } else {
            assert!(run.emitted.iter().all(|e| e.anchored));
        }
        acks += run.acked_inputs.len();
        runs.push(run);
    }
    let naive = naive_count(&recs, &times, len as usize, slide.unwrap_or(len) as usize);
    let before: Vec<String> = naive.iter().filter(|r| r.1).map(|r| r.0.clone()).collect();
    let at_end: Vec<String> = naive.iter().filter(|r| !r.1).map(|r| r.0.clone()).collect();
    assert_eq!(rows(&runs.iter().collect::<Vec<_>>()), sorted(before));
    let fin = t.finish();
    assert_eq!(rows(&[&fin]), sorted(at_end));
    acks += fin.acked_inputs.len();
    assert_eq!(acks, recs.len(), "every input acked once");
    assert!(fin.failed_inputs.is_empty());
}

#[test]
fn tumbling_count_windows() {
    count_case(5, None, Anchoring::Auto);
}

#[test]
fn sliding_count_windows() {
    count_case(6, Some(4), Anchoring::Auto);
    count_case(3, Some(1), Anchoring::Receipt);
}

#[test]
fn count_windows_holding_inputs_ack_when_their_last_window_fires() {
    count_case(4, None, Anchoring::Hold);
    count_case(5, Some(2), Anchoring::Hold);
    // Tumbling by 3 over one key: inputs 0-2 are acked by the third execute, with the result.
    let opts = WindowOptions {
        anchoring: Anchoring::Hold,
        ..options(Extent::Count(3), None)
    };
    let window = Window::new(opts).expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), FIELDS);
    let rec = &records(1, 1, 1)[0];
    let runs = t.execute_all((0..4).map(|_| rec.values()));
    assert!(runs[0].acked_inputs.is_empty() && runs[1].acked_inputs.is_empty());
    assert_eq!(runs[2].acked_inputs, [0, 1, 2]);
    assert_eq!(runs[2].emitted.len(), 1);
    assert!(runs[2].emitted[0].anchored);
    assert_eq!(t.finish().acked_inputs, [3]);
}

/// The naive event-time run: rows fired before the end of input, rows fired by it, late
/// timestamps.
fn naive_event(
    recs: &[Rec],
    len: i64,
    slide: i64,
    lag: i64,
) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let mut wm = i64::MIN;
    let mut wm_before = vec![i64::MIN; recs.len()];
    let mut late = Vec::new();
    let mut admitted = vec![false; recs.len()];
    for (i, r) in recs.iter().enumerate() {
        let last_end = r.ts.div_euclid(slide) * slide + len;
        if last_end <= wm {
            late.push(r.ts);
            continue;
        }
        admitted[i] = true;
        wm_before[i] = wm;
        wm = wm.max(r.ts - lag);
    }
    let times: Vec<i64> = recs.iter().map(|r| r.ts).collect();
    // A tuple joins each of its windows that had not fired when it arrived.
    let all = naive_duration(recs, &times, len, slide, |i, end| {
        admitted[i] && end > wm_before[i]
    });
    let fired = all.iter().filter(|w| w.end <= wm).map(|w| w.row.clone());
    let open = all.iter().filter(|w| w.end > wm).map(|w| w.row.clone());
    (sorted(fired.collect()), sorted(open.collect()), late)
}

fn event_options(len: i64, slide: i64, lag: i64) -> WindowOptions {
    WindowOptions {
        time: TimeMode::Event,
        timestamp: Some("ts".into()),
        lag: Some(format!("{lag}ms")),
        ..options(dur(len), Some(dur(slide)))
    }
}

fn event_case(recs: &[Rec], len: i64, slide: i64, lag: i64) {
    let window = Window::new(event_options(len, slide, lag)).expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), FIELDS);
    let runs = t.execute_all(recs.iter().map(Rec::values));
    let (fired, open, late) = naive_event(recs, len, slide, lag);
    assert_eq!(rows(&runs.iter().collect::<Vec<_>>()), fired);
    let got_late: Vec<i64> = runs
        .iter()
        .flat_map(|r| &r.emitted)
        .filter(|e| e.stream == LATE_STREAM)
        .map(|e| e.values[0].as_i64().expect("an int timestamp"))
        .collect();
    assert_eq!(got_late, late);
    // Event time defaults to receipt: every input acked as it arrives, late ones too.
    assert!(runs.iter().all(|r| r.acked));
    let fin = t.finish();
    assert_eq!(rows(&[&fin]), open);
}

#[test]
fn event_time_out_of_order_within_lag_and_late_tuples() {
    // Timestamps 100 ms apart with up to 8 s of jitter: with 3 s of lag some are late, most not.
    let mut recs = records(200, 11, 8_000);
    for (i, r) in recs.iter_mut().enumerate() {
        r.ts += 100 * i as i64;
    }
    event_case(&recs, 2000, 1000, 3000);
    let (_, _, late) = naive_event(&recs, 2000, 1000, 3000);
    assert!(
        !late.is_empty() && late.len() < recs.len() / 2,
        "{} late",
        late.len()
    );
    event_case(&recs, 5000, 5000, 0);
    event_case(&recs, 3000, 700, 10_000);
}

#[test]
fn event_time_timestamps_in_rfc3339_text() {
    let window = Window::new(WindowOptions {
        time: TimeMode::Event,
        timestamp: Some("ts".into()),
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        length: Some(Extent::Duration("1s".into())),
        ..Default::default()
    })
    .expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), ["ts"]);
    t.execute(values!["2024-01-01T00:00:00.200Z"]);
    t.execute(values!["2024-01-01T00:00:00.900+00:00"]);
    let run = t.execute(values!["2024-01-01T00:00:01.000Z"]);
    let start = 1_704_067_200_000i64;
    assert_eq!(run.emitted.len(), 1);
    assert_eq!(
        run.emitted[0].values.to_vec(),
        values![start, start + 1000, 2].to_vec()
    );
    let late = t.execute(values!["2024-01-01T00:00:00.500Z"]);
    assert_eq!(late.emitted[0].stream, "late");
    assert_eq!(late.emitted[0].values[0], Value::Int(start + 500));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn event_time_matches_the_naive_computation(
        n in 1usize..60,
        seed in any::<u64>(),
        spread in 1u64..15_000,
        len in 1i64..4000,
        slide_div in 1i64..5,
        lag in 0i64..4000,
    ) {
        let recs = records(n, seed, spread);
        let slide = (len / slide_div).max(1);
        event_case(&recs, len, slide, lag);
    }
}

#[test]
fn group_by_several_fields_and_no_group() {
    let window = Window::new(WindowOptions {
        length: Some(Extent::Count(100)),
        group_by: vec!["key".into(), "user".into()],
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        ..Default::default()
    })
    .expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), FIELDS);
    let recs = records(50, 5, 1);
    t.execute_all(recs.iter().map(Rec::values));
    let mut got: Vec<(String, String, i64)> = t
        .finish()
        .emitted
        .iter()
        .map(|e| {
            (
                e.values[2].to_string(),
                e.values[3].to_string(),
                e.values[4].as_i64().expect("a count"),
            )
        })
        .collect();
    got.sort();
    let mut naive: HashMap<(String, String), i64> = HashMap::new();
    for r in &recs {
        *naive.entry((r.key.clone(), r.user.clone())).or_default() += 1;
    }
    let mut naive: Vec<(String, String, i64)> =
        naive.into_iter().map(|((k, u), n)| (k, u, n)).collect();
    naive.sort();
    assert_eq!(got, naive);

    // Without group_by: one result per window, with no group fields.
    let window = Window::new(WindowOptions {
        length: Some(Extent::Count(3)),
        aggregates: vec![AggregateOptions::new("sum", Some("v"), "s")],
        ..Default::default()
    })
    .expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), ["v"]);
    t.pause_time();
    let runs = t.execute_all([values![1], values![2.5], values![Value::Null]]);
    let out = &runs[2].emitted[0].values;
    assert_eq!(out.len(), 3);
    assert_eq!(out[2], Value::Float(3.5));
}

#[test]
fn approx_count_distinct_is_within_its_error_bound() {
    let window = Window::new(WindowOptions {
        length: Some(Extent::Count(40_000)),
        aggregates: vec![
            AggregateOptions::new("count_distinct", Some("user"), "exact"),
            AggregateOptions::new("approx_count_distinct", Some("user"), "approx"),
        ],
        ..Default::default()
    })
    .expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), ["user"]);
    // 10000 distinct values, each three times.
    for i in 0..30_000 {
        t.execute(values![format!("user-{}", i % 10_000)]);
    }
    let fin = t.finish();
    let out = &fin.emitted[0].values;
    assert_eq!(out[2], Value::Int(10_000));
    let approx = out[3].as_i64().expect("an int estimate");
    let err = (approx - 10_000).abs() as f64 / 10_000.0;
    assert!(err < 0.03, "estimate {approx}: error {err}");
}

#[test]
fn bad_records_go_to_the_error_stream_and_count_nowhere() {
    let window = Window::new(event_options(1000, 1000, 0)).expect("valid options");
    let mut t = BoltTester::full(move || window.clone(), FIELDS);
    let good = values!["a", 1, "u", 1000];
    let cases = [
        (values!["a", 1, "u", 1.5], "timestamp field `ts`: is float"),
        (values!["a", 1, "u", "soon"], "is not RFC 3339 text"),
        (
            values!["a", "x", "u", 1000],
            "field `v` is string, expected a number",
        ),
        (values!["a", 1, "u", i64::MAX], "is out of range"),
        (values!["a", 1, "u", i64::MIN], "is out of range"),
    ];
    t.execute(good.clone());
    for (vals, reason) in cases {
        let run = t.execute(vals);
        assert!(run.acked && !run.failed);
        assert_eq!(run.emitted.len(), 1);
        assert_eq!(run.emitted[0].stream, "error");
        let got = run.emitted[0].values[0].to_string();
        assert!(got.contains(reason), "{got:?} lacks {reason:?}");
        assert!(run.emitted[0].values[1].as_map().is_some());
    }
    // A tuple without the fields at all.
    let mut other = BoltTester::full(
        move || Window::new(event_options(1000, 1000, 0)).expect("valid"),
        ["key"],
    );
    let run = other.execute(values!["a"]);
    assert_eq!(run.emitted[0].stream, "error");
    assert_eq!(
        run.emitted[0].values[0].to_string(),
        "no timestamp field `ts`"
    );
    // Only the good tuple counted.
    let fin = t.finish();
    assert_eq!(fin.emitted.len(), 1);
    assert_eq!(fin.emitted[0].values[3], Value::Int(1));
}

fn option_error(toml_text: &str) -> String {
    let opts: WindowOptions = match toml::from_str(toml_text) {
        Ok(o) => o,
        Err(e) => return e.to_string(),
    };
    match Window::new(opts) {
        Ok(_) => panic!("accepted: {toml_text}"),
        Err(e) => e,
    }
}

#[test]
fn option_errors_name_the_option_and_the_value() {
    let agg = r#"aggregates = [{ fn = "count", as = "n" }]"#;
    let cases = [
        (agg.to_string(), "option `length` is required"),
        (format!("length = \"10s\"\nslide = 3\n{agg}"), "option `slide` = 3 is a count but `length` = \"10s\" is a duration"),
        (format!("length = 10\nslide = \"1s\"\n{agg}"), "is a duration but `length` = 10 is a count"),
        (format!("length = \"1s\"\nslide = \"2s\"\n{agg}"), "option `slide` = \"2s\": expected from 1ms to `length` (1s)"),
        (format!("length = 5\nslide = 0\n{agg}"), "option `slide` = 0: expected a count from 1 to `length` (5)"),
        (format!("length = 0\n{agg}"), "option `length` = 0"),
        (format!("length = \"ten seconds\"\n{agg}"), "option `length` = \"ten seconds\" is not a duration"),
        (format!("length = \"1000years\"\n{agg}"), "is too long: expected at most 100 years"),
        (format!("length = \"1s\"\ntime = \"event\"\n{agg}"), "option `timestamp` is required"),
        (format!("length = \"1s\"\nlag = \"1s\"\n{agg}"), "option `lag` = \"1s\" is only used with time = \"event\""),
        (format!("length = 10\ntime = \"event\"\ntimestamp = \"ts\"\n{agg}"), "needs duration windows"),
        (format!("length = \"1s\"\nidle_timeout = \"1m\"\n{agg}"), "option `idle_timeout` = \"1m\" is only used with time = \"event\""),
        (format!("length = \"1s\"\ntime = \"event\"\ntimestamp = \"ts\"\nidle_timeout = \"0s\"\n{agg}"), "option `idle_timeout` = \"0s\": expected at least one millisecond"),
        (format!("length = \"1s\"\ntime = \"event\"\ntimestamp = \"ts\"\nidle_timeout = \"soon\"\n{agg}"), "option `idle_timeout` = \"soon\" is not a duration"),
        ("length = \"1s\"".to_string(), "option `aggregates` needs at least one"),
        ("length = \"1s\"\naggregates = [{ fn = \"sum\", as = \"s\" }]".to_string(), "`field` is required"),
        ("length = \"1s\"\naggregates = [{ fn = \"top_k\", field = \"x\", k = 0, as = \"t\" }]".to_string(), "`k` = 0, expected at least 1"),
        ("length = \"1s\"\naggregates = [{ fn = \"top_k\", field = \"x\", as = \"t\" }]".to_string(), "top_k needs `k`"),
        ("length = \"1s\"\naggregates = [{ fn = \"cuont\", as = \"n\" }]".to_string(), "unknown fn \"cuont\" (did you mean \"count\"?)"),
        ("length = \"1s\"\naggregates = [{ fn = \"count\", as = \"n\" }, { fn = \"max\", field = \"x\", as = \"n\" }]".to_string(), "output field `n` appears twice"),
        ("length = \"1s\"\ngroup_by = [\"window_end\"]\naggregates = [{ fn = \"count\", as = \"n\" }]".to_string(), "output field `window_end` appears twice"),
        ("length = \"1s\"\naggregates = [{ fn = \"count\", field = \"x\", as = \"n\" }]".to_string(), "count takes no `field`"),
        (format!("length = true\n{agg}"), "a duration such as \"10s\" or a count of tuples"),
        (format!("length = \"1s\"\ntime = \"wall\"\n{agg}"), "unknown variant `wall`"),
        (format!("length = \"1s\"\nsize = 3\n{agg}"), "unknown field `size`"),
    ];
    for (text, expected) in cases {
        let err = option_error(&text);
        assert!(
            err.contains(expected),
            "{text}\n=> {err}\n(expected {expected:?})"
        );
    }
}

#[test]
fn anchoring_modes_against_the_message_timeout() {
    let config = Config::default(); // 30 s timeout, acking on
    let decide = |opts: WindowOptions, config: &Config| {
        Window::new(opts)
            .expect("valid options")
            .anchoring_for(config, "w")
    };
    let with = |len: &str, slide: Option<&str>, anchoring| WindowOptions {
        anchoring,
        ..options(
            Extent::Duration(len.into()),
            slide.map(|s| Extent::Duration(s.into())),
        )
    };
    // auto: hold when length + slide <= 15 s.
    assert!(
        decide(with("10s", Some("5s"), Anchoring::Auto), &config)
            .unwrap()
            .0
    );
    let (hold, why) = decide(with("10s", Some("6s"), Anchoring::Auto), &config).unwrap();
    assert!(!hold, "{why}");
    assert!(why.contains("exceeds half the message timeout"));
    // auto with event time or count windows: receipt.
    assert!(!decide(event_options(1000, 1000, 0), &config).unwrap().0);
    assert!(!decide(options(Extent::Count(10), None), &config).unwrap().0);
    // An explicit hold beyond half the timeout is refused, naming both values and the fix.
    let err = decide(with("20s", None, Anchoring::Hold), &config).unwrap_err();
    assert!(err.contains("21s") && err.contains("30s"), "{err}");
    assert!(
        err.contains("at least 42s") && err.contains("anchoring = \"receipt\""),
        "{err}"
    );
    let long = Config {
        message_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    assert!(decide(with("20s", None, Anchoring::Hold), &long).unwrap().0);
    // Acking off: nothing to hold.
    let off = Config {
        ackers: 0,
        ..Config::default()
    };
    assert!(!decide(with("1s", None, Anchoring::Hold), &off).unwrap().0);
}

/// The event-time run through a real topology: spout -> window -> capture (results and late
/// tuples), acking on. Every spout message is acked exactly once, and the results are the naive
/// ones.
#[test]
fn end_to_end_event_time_through_a_topology() {
    let mut recs = records(300, 99, 12_000);
    for (i, r) in recs.iter_mut().enumerate() {
        r.ts += 50 * i as i64;
    }
    let (len, slide, lag) = (4000, 2000, 5000);
    let spout = VecSpout::new(FIELDS, recs.iter().map(Rec::values).collect());
    let capture = CaptureBolt::new();
    let window = Window::new(event_options(len, slide, lag)).expect("valid options");
    let mut b = TopologyBuilder::new("window-e2e");
    b.config(Config {
        checkpoint_dir: Some(fresh_checkpoint_dir()),
        ackers: 1,
        worker_threads: 2,
        ..Config::default()
    });
    b.set_spout("records", spout.factory(), 1);
    b.set_bolt("window", move || window.clone(), 1)
        .shuffle_grouping("records");
    b.set_bolt("capture", capture.factory(), 1)
        .shuffle_grouping("window")
        .shuffle_grouping_stream("window", LATE_STREAM);
    let topology = b.build().expect("a valid topology");
    let cluster = LocalCluster::new(2).expect("a runtime");
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(30)))
        .expect("idle");
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(10)));
    assert!(stopped.drained);
    assert_eq!(spout.acked(), vec![1; recs.len()]);
    assert_eq!(spout.failed(), vec![0; recs.len()]);
    let got = capture.tuples();
    let mut results: Vec<String> = got
        .iter()
        .filter(|c| c.stream == "default")
        .map(|c| format!("{:?}", c.values.to_vec()))
        .collect();
    results.sort();
    let late: Vec<i64> = got
        .iter()
        .filter(|c| c.stream == LATE_STREAM)
        .map(|c| c.values[0].as_i64().expect("an int"))
        .collect();
    let (fired, open, naive_late) = naive_event(&recs, len, slide, lag);
    assert_eq!(results, sorted(fired.into_iter().chain(open).collect()));
    assert_eq!(late, naive_late);
    assert!(!late.is_empty());
}

/// Processing time through a real topology with inputs held until their windows fire: the
/// topology becomes idle only once every window fired and acked its inputs; per key, the counts
/// over all windows add up to the input.
#[test]
fn end_to_end_processing_time_holding_inputs() {
    let recs = records(500, 3, 1);
    let spout = VecSpout::new(FIELDS, recs.iter().map(Rec::values).collect());
    let capture = CaptureBolt::new();
    let window = Window::new(WindowOptions {
        length: Some(Extent::Duration("150ms".into())),
        group_by: vec!["key".into()],
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        ..Default::default()
    })
    .expect("valid options");
    let mut b = TopologyBuilder::new("window-hold-e2e");
    b.config(Config {
        checkpoint_dir: Some(fresh_checkpoint_dir()),
        ackers: 1,
        worker_threads: 2,
        ..Config::default()
    });
    b.set_spout("records", spout.factory(), 1);
    b.set_bolt("window", move || window.clone(), 1)
        .shuffle_grouping("records");
    b.set_bolt("capture", capture.factory(), 1)
        .shuffle_grouping("window");
    let topology = b.build().expect("a valid topology");
    let cluster = LocalCluster::new(2).expect("a runtime");
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(30)))
        .expect("idle");
    // Idle means every tree completed: the windows fired (on ticks) and acked their inputs.
    let seen_when_idle = capture.len();
    assert!(seen_when_idle > 0);
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(10)));
    assert!(stopped.drained);
    assert_eq!(spout.acked(), vec![1; recs.len()]);
    let mut per_key: HashMap<String, i64> = HashMap::new();
    for c in capture.tuples() {
        *per_key.entry(c.values[2].to_string()).or_default() += c.values[3].as_i64().expect("n");
        let (start, end) = (c.values[0].as_i64().unwrap(), c.values[1].as_i64().unwrap());
        assert_eq!(end - start, 150);
        assert_eq!(start % 150, 0);
    }
    let mut naive: HashMap<String, i64> = HashMap::new();
    for r in &recs {
        *naive.entry(r.key.clone()).or_default() += 1;
    }
    assert_eq!(per_key, naive);
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
// since replayed give exactly the results of an uninterrupted run (see `support`).

mod support;

use support::{Step, check_resume};

const T0: i64 = 1_700_000_000_000;

fn rec(key: &str, v: impl Into<Value>, user: &str, ts: i64) -> Step {
    Step::In(values![key, v.into(), user, T0 + ts])
}

fn resume_window(opts: WindowOptions, steps: &[Step], lost: usize) -> Vec<Vec<String>> {
    let window = Window::new(opts).expect("valid options");
    let again = window.clone();
    check_resume(
        move || {
            let w = window.clone();
            BoltTester::full(move || w.clone(), FIELDS)
        },
        move |c| {
            let w = again.clone();
            BoltTester::restore_full(move || w.clone(), FIELDS, c)
        },
        steps,
        lost,
    )
}

// Guards: sliding event-time windows resume where they were: open windows' accumulators (every
// aggregate), which windows fired (late tuples stay late) and the watermark.
#[test]
fn event_time_windows_resume_from_a_checkpoint() {
    let steps = [
        rec("a", 1, "u1", 1_000),
        rec("b", 2, "u2", 3_000),
        rec("a", 3.5, "u2", 9_000),
        rec("c", 4, "u1", 12_000), // watermark 10s: [-5s, 5s) fires
        rec("a", 5, "u3", 11_000),
        rec("b", 1, "u1", 4_000), // late
        rec("b", Value::Null, "u4", 13_000),
        Step::Checkpoint,
        rec("a", 7, "u1", 15_000),  // watermark 13s: [0s, 10s) fires
        rec("c", 2, "u4", 19_500),  // watermark 17.5s
        rec("b", 2, "u2", 22_500),  // watermark 20.5s: [5s, 15s) fires
        rec("a", 1, "u1", 8_000),   // late
        rec("a", 6, "u2", 21_000),  // into [15s, 25s) and [20s, 30s)
        rec("c", -3, "u1", 18_000), // within the lag
        rec("a", 2, "u5", 26_000),  // watermark 24s
    ];
    let out = resume_window(event_options(10_000, 5_000, 2_000), &steps, 4);
    let late: usize = out
        .iter()
        .flatten()
        .filter(|r| r.starts_with("late"))
        .count();
    assert_eq!(late, 2, "{out:#?}");
}

// Guards: a checkpoint after an incremental one restores the latter: groups whose windows all
// fired between the two (removed keys) stay removed, changed groups have their new state.
#[test]
fn event_time_incremental_checkpoint_restores_the_second() {
    let steps = [
        rec("a", 1, "u1", 1_000),
        rec("b", 2, "u2", 2_000),
        Step::Checkpoint,
        rec("c", 3, "u3", 4_000),
        rec("a", 4, "u1", 12_000), // [0s, 10s) fires: b and c have no window left
        rec("a", 5, "u2", 13_000),
        Step::Checkpoint,
        rec("b", 6, "u1", 14_000),
        rec("a", 7, "u3", 15_000),
        rec("c", 1, "u3", 16_000),
    ];
    resume_window(event_options(10_000, 10_000, 0), &steps, 2);
}

fn processing_options(anchoring: Anchoring) -> WindowOptions {
    WindowOptions {
        anchoring,
        ..options(dur(10_000), Some(dur(5_000)))
    }
}

/// Processing-time inputs: `(at ms, key, v, user)` each after moving the clock.
fn at(ms: i64, key: &str, v: i64, user: &str) -> [Step; 2] {
    [Step::At(ms), Step::In(values![key, v, user, 0])]
}

fn processing_steps(second_checkpoint: bool) -> Vec<Step> {
    let mut s = Vec::new();
    s.extend(at(1_000, "a", 1, "u1"));
    s.extend(at(2_000, "b", 2, "u2"));
    s.extend(at(4_000, "a", 3, "u2"));
    s.extend([Step::At(5_000), Step::Tick]); // [-5s, 5s) fires
    s.extend(at(6_000, "a", 4, "u3"));
    s.push(Step::Checkpoint);
    if second_checkpoint {
        s.extend(at(9_000, "c", 5, "u1"));
        s.extend([Step::At(10_000), Step::Tick]); // [0s, 10s) fires: b removed
        s.extend(at(10_500, "a", 6, "u1"));
        s.push(Step::Checkpoint);
    }
    s.extend(at(11_000, "b", 7, "u4"));
    s.extend(at(12_000, "a", 8, "u1"));
    s.extend([Step::At(15_000), Step::Tick]);
    s.extend(at(17_000, "c", 9, "u2"));
    s.extend([Step::At(20_000), Step::Tick]);
    s.extend(at(21_000, "a", 10, "u2"));
    s
}

// Guards: processing-time sliding windows resume with their open windows, in both anchoring
// modes (held inputs are not in the state, their values are in the accumulators).
#[test]
fn processing_time_windows_resume_from_a_checkpoint() {
    for anchoring in [Anchoring::Receipt, Anchoring::Hold] {
        resume_window(processing_options(anchoring), &processing_steps(false), 5);
    }
}

#[test]
fn processing_time_incremental_checkpoint_restores_the_second() {
    resume_window(
        processing_options(Anchoring::Receipt),
        &processing_steps(true),
        3,
    );
}

fn count_steps(second_checkpoint: bool) -> Vec<Step> {
    let keys = [
        "a", "b", "a", "a", "c", "b", "a", "b", "c", "a", "a", "b", "c", "a", "b",
    ];
    let mut s = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i == 6 || (second_checkpoint && i == 10) {
            s.push(Step::Checkpoint);
        }
        s.extend(at(100 * i as i64, k, i as i64, &format!("u{}", i % 4)));
    }
    s
}

// Guards: tumbling and sliding count windows resume with each group's partial window (its
// accumulators, first and last arrival) or its last `length` values.
#[test]
fn count_windows_resume_from_a_checkpoint() {
    for (length, slide) in [(3, None), (4, Some(2))] {
        let opts = options(Extent::Count(length), slide.map(Extent::Count));
        resume_window(opts, &count_steps(false), 6);
    }
}

#[test]
fn count_incremental_checkpoint_restores_the_second() {
    for (length, slide) in [(3, None), (4, Some(2))] {
        let opts = options(Extent::Count(length), slide.map(Extent::Count));
        resume_window(opts, &count_steps(true), 3);
    }
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

// Guards: a task restored on a clock behind the checkpoint's (another host) still counts its
// inputs: a processing-time input arriving before the end of the windows already fired goes to
// the first window still open, not silently nowhere.
#[test]
fn processing_time_restore_on_a_clock_behind_counts_every_input() {
    let opts = WindowOptions {
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        anchoring: Anchoring::Receipt,
        ..options(dur(1_000), None)
    };
    let window = Window::new(opts).expect("valid options");
    let w = window.clone();
    let mut t = BoltTester::full(move || w.clone(), FIELDS);
    t.pause_time();
    let base = (t.now_millis() / 3_600_000 + 2) * 3_600_000;
    clock_to(&mut t, base + 100);
    t.execute(values!["a", 1, "u", 0]);
    clock_to(&mut t, base + 3_000);
    assert_eq!(t.tick().emitted.len(), 1);
    let (c, _) = t.checkpoint().expect("a checkpoint");
    drop(t);
    let mut back = BoltTester::restore_full(move || window.clone(), FIELDS, &c);
    back.pause_time();
    clock_to(&mut back, base + 1_500);
    assert!(back.execute(values!["a", 1, "u", 0]).acked);
    let fin = back.finish();
    let rows: Vec<_> = fin.emitted.iter().map(|e| e.values.to_vec()).collect();
    assert_eq!(
        rows,
        vec![vec![
            Value::Int(base + 3_000),
            Value::Int(base + 4_000),
            Value::from("a"),
            Value::Int(1)
        ]]
    );
}

// ---------------------------------------------------------------------------------------------
// Event time over every upstream task: the watermark waits for each task of the inputs, or
// leaves one out after `idle_timeout` of silence.

/// Tumbling 10 s event-time windows counting per key, lag 0.
fn count_per_10s(idle: Option<&str>) -> Window {
    Window::new(WindowOptions {
        time: TimeMode::Event,
        timestamp: Some("ts".into()),
        idle_timeout: Some(idle.unwrap_or("off").into()),
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        ..options(dur(10_000), None)
    })
    .expect("valid options")
}

/// `(window start − T0, key, count)` of each result on the default stream, sorted.
fn counts(runs: &[&Executed]) -> Vec<(i64, String, i64)> {
    let mut out: Vec<(i64, String, i64)> = runs
        .iter()
        .flat_map(|r| &r.emitted)
        .filter(|e| e.stream == "default")
        .map(|e| {
            (
                e.values[0].as_i64().expect("window_start") - T0,
                e.values[2].to_string(),
                e.values[3].as_i64().expect("n"),
            )
        })
        .collect();
    out.sort();
    out
}

fn from(t: &mut BoltTester, task: usize, key: &str, ts: i64) -> Executed {
    t.execute_from_task("src", task, values![key, 1, "u", T0 + ts])
}

// Guards that a window fires only once every upstream task has sent, however far the others
// are ahead (the one that has not sent may still send into it), and that the end of input
// fires the rest.
#[test]
fn event_time_waits_for_every_upstream_task() {
    let w = count_per_10s(None);
    let mut t = BoltTester::full_with_inputs(move || w.clone(), FIELDS, &[("src", 2)]);
    let mut runs = vec![
        from(&mut t, 0, "a", 1_000),
        from(&mut t, 0, "a", 12_000),
        from(&mut t, 0, "b", 25_000),
        from(&mut t, 0, "a", 41_000),
    ];
    assert_eq!(counts(&runs.iter().collect::<Vec<_>>()), []);
    // Task 1's first tuple is behind task 0's: it counts in its window, not late.
    let first = from(&mut t, 1, "a", 3_000);
    assert!(first.emitted.is_empty(), "{first:?}");
    runs.clear();
    // The watermark is task 1's 21 s: [0 s, 10 s) and [10 s, 20 s) fire.
    let moved = from(&mut t, 1, "b", 21_000);
    assert_eq!(
        counts(&[&moved]),
        [(0, "a".into(), 2), (10_000, "a".into(), 1)]
    );
    let fin = t.finish();
    assert_eq!(
        counts(&[&fin]),
        [(20_000, "b".into(), 2), (40_000, "a".into(), 1)]
    );
}

// Guards `idle_timeout`: an upstream task that never sent stops holding windows back once
// silent for the timeout (counted from the task's start); back, its tuples behind the
// watermark are late and it does not hold the watermark until it has caught up with it
// (Flink's rule), then it does again.
#[test]
fn an_idle_upstream_task_stops_holding_windows_back() {
    let w = count_per_10s(Some("10m"));
    let mut t = BoltTester::full_with_inputs(move || w.clone(), FIELDS, &[("src", 2)]);
    t.pause_time();
    from(&mut t, 0, "a", 1_000);
    from(&mut t, 0, "a", 12_000);
    t.advance(Duration::from_secs(300));
    assert!(t.tick().emitted.is_empty());
    from(&mut t, 0, "a", 13_000);
    // Task 1 has been silent since the start, task 0 sent since the last tick.
    t.advance(Duration::from_secs(300));
    assert_eq!(counts(&[&t.tick()]), [(0, "a".into(), 1)]);
    let late = from(&mut t, 1, "b", 5_000);
    assert_eq!(late.emitted.len(), 1);
    assert_eq!(late.emitted[0].stream, LATE_STREAM);
    // Behind the watermark, task 1 does not hold it.
    assert_eq!(
        counts(&[&from(&mut t, 0, "a", 25_000)]),
        [(10_000, "a".into(), 2)]
    );
    // Caught up (26 s), it holds it again: at 41 s task 0 moves it to 26 s only.
    assert!(from(&mut t, 1, "b", 26_000).emitted.is_empty());
    assert!(from(&mut t, 0, "a", 41_000).emitted.is_empty());
    assert_eq!(
        counts(&[&from(&mut t, 1, "b", 33_000)]),
        [(20_000, "a".into(), 1), (20_000, "b".into(), 1)]
    );
    let fin = t.finish();
    assert_eq!(
        counts(&[&fin]),
        [(30_000, "b".into(), 1), (40_000, "a".into(), 1)]
    );
}

// Guards the default idle timeout (30 s, `idle_timeout` unset): an upstream task that never
// sends to this one (no key of its routed here) holds the windows back for 30 s, not forever.
#[test]
fn by_default_a_task_silent_for_30s_stops_holding_windows_back() {
    let w = Window::new(WindowOptions {
        time: TimeMode::Event,
        timestamp: Some("ts".into()),
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        ..options(dur(10_000), None)
    })
    .expect("valid options");
    let mut t = BoltTester::full_with_inputs(move || w.clone(), FIELDS, &[("src", 2)]);
    t.pause_time();
    from(&mut t, 0, "a", 1_000);
    from(&mut t, 0, "a", 12_000);
    t.advance(Duration::from_secs(29));
    assert!(t.tick().emitted.is_empty(), "29 s of silence is not idle");
    from(&mut t, 0, "a", 13_000);
    t.advance(Duration::from_secs(2));
    assert_eq!(counts(&[&t.tick()]), [(0, "a".into(), 1)]);
}

// Guards that a task that keeps sending (more often than the timeout) is never idle, however
// long the run and far behind it is; and that with no idle timeout a silent task holds the
// windows however long it stays silent.
#[test]
fn idleness_is_silence_for_the_whole_timeout() {
    for idle in [Some("1m"), None] {
        let w = count_per_10s(idle);
        let mut t = BoltTester::full_with_inputs(move || w.clone(), FIELDS, &[("src", 2)]);
        t.pause_time();
        // 500 s of processing time: task 0 runs 100 s of event time ahead of task 1.
        for i in 0..10 {
            from(&mut t, 0, "a", 100_000 + 10_000 * i);
            let behind = from(&mut t, 1, "b", 1_000 + 10_000 * i);
            // Task 1 fires its previous window, by its own progress.
            let expected: Vec<(i64, String, i64)> = match i {
                0 => vec![],
                _ => vec![(10_000 * (i - 1), "b".into(), 1)],
            };
            assert_eq!(counts(&[&behind]), expected, "{idle:?}, step {i}");
            t.advance(Duration::from_secs(50));
            assert!(t.tick().emitted.is_empty(), "{idle:?}, step {i}");
        }
        // Task 1 falls silent; task 0 goes on.
        from(&mut t, 0, "a", 200_000);
        t.advance(Duration::from_secs(3600));
        let after = counts(&[&t.tick()]);
        match idle {
            // Task 1 idle: the watermark is task 0's 200 s.
            Some(_) => {
                let mut expected = vec![(90_000, "b".to_string(), 1)];
                expected.extend((10..20).map(|w| (w * 10_000, "a".to_string(), 1)));
                assert_eq!(after, expected);
            }
            None => assert_eq!(after, []),
        }
    }
}

// Guards the checkpointed clock over every upstream task: with the same upstream parallelism
// each task's largest timestamp is restored; with another, the new tasks hold the restored
// watermark (which does not go back) until each has sent; an upstream component no longer
// subscribed no longer counts.
#[test]
fn event_time_restore_keeps_each_upstream_task_and_waits_for_new_ones() {
    let w = count_per_10s(None);
    let make = |w: &Window| {
        let w = w.clone();
        move || w.clone()
    };
    let mut t = BoltTester::full_with_inputs(make(&w), FIELDS, &[("src", 2)]);
    from(&mut t, 0, "a", 20_000);
    from(&mut t, 1, "b", 3_000);
    from(&mut t, 1, "b", 4_000); // watermark 4 s
    let (c, _) = t.checkpoint().expect("a checkpoint");
    drop(t);

    // Task 0's 20 s is back: task 1 at 15 s moves the watermark to 15 s.
    let mut same = BoltTester::restore_full_with_inputs(make(&w), FIELDS, &[("src", 2)], &c);
    assert_eq!(
        counts(&[&from(&mut same, 1, "b", 15_000)]),
        [(0, "b".into(), 2)]
    );

    let mut more = BoltTester::restore_full_with_inputs(make(&w), FIELDS, &[("src", 3)], &c);
    let late = from(&mut more, 2, "c", -7_000);
    assert_eq!(late.emitted.len(), 1, "behind the restored watermark");
    assert_eq!(late.emitted[0].stream, LATE_STREAM);
    assert!(from(&mut more, 1, "b", 15_000).emitted.is_empty());
    assert!(from(&mut more, 0, "a", 16_000).emitted.is_empty());
    assert_eq!(
        counts(&[&from(&mut more, 2, "c", 14_000)]),
        [(0, "b".into(), 2)]
    );
    assert_eq!(
        counts(&[&more.finish()]),
        [
            (10_000, "a".into(), 1),
            (10_000, "b".into(), 1),
            (10_000, "c".into(), 1),
            (20_000, "a".into(), 1)
        ]
    );

    let mut other = BoltTester::restore_full_with_inputs(make(&w), FIELDS, &[("other", 1)], &c);
    let moved = other.execute_from_task("other", 0, values!["d", 1, "u", T0 + 15_000]);
    assert_eq!(counts(&[&moved]), [(0, "b".into(), 2)]);
}
