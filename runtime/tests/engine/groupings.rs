//! Groupings, end to end: every tuple emitted on a stream reaches, for each subscribed bolt,
//! exactly the tasks its grouping names — no more, no fewer. A spout of keyed tuples feeds a
//! capture bolt of several tasks, which records which task received what.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use topo_runtime::testing::{CaptureBolt, Captured, VecSpout};
use topo_runtime::{
    BasicBolt, BasicCollector, BoltDeclarer, BoxError, CustomGrouping, DEFAULT_STREAM,
    OutputDeclarer, Spout, SpoutCollector, StopReport, TaskContext, TaskId, TopologyBuilder, Tuple,
    Value, values,
};

use crate::util::{config, lock, run_until_idle};

/// Runs `spout` (as `spouts` tasks) into a capture bolt `sink` of `tasks` tasks subscribed by
/// `subscribe`; returns what the sink received and its task ids, ascending. Every message must
/// be acked once.
async fn deliver(
    spout: &VecSpout,
    spouts: usize,
    tasks: usize,
    subscribe: impl FnOnce(&mut BoltDeclarer<'_>),
) -> (Vec<Captured>, Vec<TaskId>) {
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("grouping");
    b.config(config());
    b.set_spout("keys", spout.factory(), spouts);
    subscribe(&mut b.set_bolt("sink", sink.factory(), tasks));
    let report = run_until_idle(b.build().expect("a valid topology")).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "every message acked once: {:?}",
        spout.acked()
    );
    let mut ids: Vec<TaskId> = report
        .metrics
        .component("sink")
        .expect("sink metrics")
        .tasks
        .iter()
        .map(|t| t.task)
        .collect();
    ids.sort();
    assert_eq!(ids.len(), tasks);
    (sink.tuples(), ids)
}

/// The integer in field `i` of a captured tuple.
fn n(c: &Captured, i: usize) -> i64 {
    c.values[i].as_i64().expect("an int field")
}

/// How many tuples each task received.
fn per_task(seen: &[Captured]) -> BTreeMap<TaskId, usize> {
    let mut counts = BTreeMap::new();
    for c in seen {
        *counts.entry(c.task).or_insert(0) += 1;
    }
    counts
}

/// Asserts that the integers `0..total` in field `field` were each received exactly once.
fn each_once(seen: &[Captured], field: usize, total: i64) {
    each_of_once(seen, field, &(0..total).collect::<Vec<_>>());
}

/// Asserts that the integers in field `field` are exactly `want` (ascending), each once.
fn each_of_once(seen: &[Captured], field: usize, want: &[i64]) {
    let mut got: Vec<i64> = seen.iter().map(|c| n(c, field)).collect();
    got.sort_unstable();
    assert_eq!(got, want, "each tuple exactly once");
}

fn keyed(total: i64, keys: i64) -> VecSpout {
    VecSpout::new(
        ["key", "n"],
        (0..total)
            .map(|i| values![format!("key{}", i % keys), i])
            .collect(),
    )
}

// Guards: fields grouping sends one key to one task, always, from two emitting tasks, and spreads keys over tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_grouping_sends_each_key_to_one_task_and_spreads_keys() {
    let spout = keyed(400, 20);
    let (seen, _) = deliver(&spout, 2, 4, |d| {
        d.fields_grouping("keys", ["key"]);
    })
    .await;
    each_once(&seen, 1, 400);
    let mut tasks_of: HashMap<String, BTreeSet<TaskId>> = HashMap::new();
    for c in &seen {
        let key = c.values[0].as_str().expect("a string key").to_string();
        tasks_of.entry(key).or_default().insert(c.task);
    }
    assert_eq!(tasks_of.len(), 20);
    for (key, tasks) in &tasks_of {
        assert_eq!(tasks.len(), 1, "key {key} reached tasks {tasks:?}");
    }
    let used: BTreeSet<TaskId> = tasks_of.values().flatten().copied().collect();
    assert!(used.len() > 1, "20 keys all went to {used:?}");
}

// Guards: shuffle grouping splits a stream evenly over the tasks and delivers each tuple once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_grouping_splits_evenly() {
    let spout = keyed(1000, 1000);
    let (seen, ids) = deliver(&spout, 1, 4, |d| {
        d.shuffle_grouping("keys");
    })
    .await;
    each_once(&seen, 1, 1000);
    let counts = per_task(&seen);
    // One emitting task under equal load is a plain round robin: 250 each. Allow 10%, since a
    // load-aware shuffle may favour a task whose queue happened to be emptier.
    for t in &ids {
        let c = counts.get(t).copied().unwrap_or(0);
        assert!((225..=275).contains(&c), "uneven shuffle: {counts:?}");
    }
}

// Guards: all grouping gives every task a copy of every tuple.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_grouping_gives_every_task_every_tuple() {
    let spout = keyed(100, 100);
    let (seen, ids) = deliver(&spout, 1, 3, |d| {
        d.all_grouping("keys");
    })
    .await;
    let mut got: Vec<(TaskId, i64)> = seen.iter().map(|c| (c.task, n(c, 1))).collect();
    got.sort_unstable();
    let want: Vec<(TaskId, i64)> = ids
        .iter()
        .flat_map(|&t| (0..100).map(move |i| (t, i)))
        .collect();
    assert_eq!(got, want);
}

// Guards: global grouping sends the whole stream to the task with the lowest id, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_grouping_sends_everything_to_the_lowest_task() {
    let spout = keyed(100, 7);
    let (seen, ids) = deliver(&spout, 2, 3, |d| {
        d.global_grouping("keys");
    })
    .await;
    each_once(&seen, 1, 100);
    let tasks: BTreeSet<TaskId> = seen.iter().map(|c| c.task).collect();
    assert_eq!(tasks, BTreeSet::from([ids[0]]));
}

// Guards: partial key grouping spreads one hot key over exactly two tasks, about evenly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_key_grouping_spreads_a_hot_key_over_two_tasks() {
    let spout = VecSpout::new(["key", "n"], (0..400).map(|i| values!["hot", i]).collect());
    let (seen, _) = deliver(&spout, 1, 4, |d| {
        d.partial_key_grouping("keys", ["key"]);
    })
    .await;
    each_once(&seen, 1, 400);
    let counts = per_task(&seen);
    assert_eq!(
        counts.len(),
        2,
        "one hot key should reach two tasks: {counts:?}"
    );
    // One emitter alternates between the two candidates (the one sent fewer): 200 each.
    for c in counts.values() {
        assert!(
            (180..=220).contains(c),
            "uneven split of the hot key: {counts:?}"
        );
    }
}

// Guards: the none and local-or-shuffle groupings deliver every tuple to exactly one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_and_local_or_shuffle_deliver_each_tuple_once() {
    let spout = keyed(300, 300);
    let none = CaptureBolt::new();
    let local = CaptureBolt::new();
    let mut b = TopologyBuilder::new("none-and-local");
    b.config(config());
    b.set_spout("keys", spout.factory(), 2);
    b.set_bolt("none", none.factory(), 3).none_grouping("keys");
    b.set_bolt("local", local.factory(), 3)
        .local_or_shuffle_grouping("keys");
    run_until_idle(b.build().expect("a valid topology")).await;
    each_once(&none.tuples(), 1, 300);
    each_once(&local.tuples(), 1, 300);
    assert!(per_task(&none.tuples()).len() > 1, "none used one task");
    assert!(
        per_task(&local.tuples()).len() > 1,
        "local_or_shuffle used one task"
    );
}

/// Sends tuple `n` to position `n % tasks`, a second copy to the next position when `n` is a
/// multiple of 10, and always asks for a position out of range (which must be dropped).
struct Modulo {
    tasks: usize,
}

impl CustomGrouping for Modulo {
    fn choose(&mut self, values: &[Value], out: &mut Vec<usize>) {
        let n = values[1].as_i64().unwrap_or(0) as usize;
        out.push(n % self.tasks);
        if n.is_multiple_of(10) {
            out.push((n + 1) % self.tasks);
        }
        out.push(self.tasks + 5);
    }
}

// Guards: a custom grouping's choices are delivered exactly (several copies allowed, out-of-range positions dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_grouping_delivers_exactly_the_chosen_tasks() {
    let spout = keyed(100, 100);
    let targets: Arc<Mutex<Vec<Vec<TaskId>>>> = Arc::default();
    let told = targets.clone();
    let (seen, ids) = deliver(&spout, 1, 3, move |d| {
        d.custom_grouping("keys", DEFAULT_STREAM, move |tasks: &[TaskId]| {
            lock(&told).push(tasks.to_vec());
            Modulo { tasks: tasks.len() }
        });
    })
    .await;
    assert_eq!(
        *lock(&targets),
        vec![ids.clone()],
        "one grouping per emitting task, told the tasks ascending"
    );
    let mut got: Vec<(i64, TaskId)> = seen.iter().map(|c| (n(c, 1), c.task)).collect();
    got.sort_unstable();
    let mut want: Vec<(i64, TaskId)> = Vec::new();
    for i in 0..100i64 {
        want.push((i, ids[i as usize % 3]));
        if i % 10 == 0 {
            want.push((i, ids[(i as usize + 1) % 3]));
        }
    }
    want.sort_unstable();
    assert_eq!(got, want);
}

/// Shared record of what a [`DirectSpout`] was told.
#[derive(Default)]
struct Outcomes {
    /// The task the spout chose from its context.
    target: Mutex<Option<TaskId>>,
    acked: Mutex<Vec<i64>>,
    failed: Mutex<Vec<i64>>,
}

/// Emits `0..total` on a direct stream to the third task of `sink`, except every `n % 8 == 7`,
/// which it sends to its own task (not a subscriber): that emit must be refused and failed.
struct DirectSpout {
    next: i64,
    total: i64,
    target: Option<TaskId>,
    outsider: Option<TaskId>,
    outcomes: Arc<Outcomes>,
}

impl Spout for DirectSpout {
    type MessageId = i64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_direct_stream("direct", ["n"]);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let sink = ctx.component_tasks("sink").ok_or("no sink component")?;
        self.target = Some(sink[2]);
        *lock(&self.outcomes.target) = self.target;
        self.outsider = Some(ctx.task_id());
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, i64>) -> Result<(), BoxError> {
        if self.next < self.total {
            let n = self.next;
            self.next += 1;
            let task = if n % 8 == 7 {
                self.outsider
            } else {
                self.target
            };
            out.emit_direct(task.ok_or("not opened")?, "direct", values![n], n);
        }
        Ok(())
    }

    fn ack(&mut self, n: i64) {
        lock(&self.outcomes.acked).push(n);
    }

    fn fail(&mut self, n: i64) {
        lock(&self.outcomes.failed).push(n);
    }

    fn is_exhausted(&self) -> bool {
        self.next == self.total
    }
}

fn sink_task_ids(report: &StopReport) -> BTreeSet<TaskId> {
    let sink = report.metrics.component("sink").expect("sink metrics");
    sink.tasks.iter().map(|t| t.task).collect()
}

fn sorted(v: &Mutex<Vec<i64>>) -> Vec<i64> {
    let mut v = lock(v).clone();
    v.sort_unstable();
    v
}

// Guards: a spout's emit_direct reaches only the named task; to a non-subscribing task it is refused and the message failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_grouping_from_a_spout_reaches_only_the_named_task() {
    let outcomes = Arc::new(Outcomes::default());
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("direct-spout");
    b.config(config());
    let shared = outcomes.clone();
    b.set_spout(
        "src",
        move || DirectSpout {
            next: 0,
            total: 40,
            target: None,
            outsider: None,
            outcomes: shared.clone(),
        },
        1,
    );
    b.set_bolt("sink", sink.factory(), 4)
        .direct_grouping("src", "direct");
    let report = run_until_idle(b.build().expect("a valid topology")).await;
    let target = lock(&outcomes.target).expect("the spout was opened");
    let sink_tasks: BTreeSet<TaskId> = sink_task_ids(&report);
    assert!(sink_tasks.contains(&target), "{target} is a sink task");

    let good: Vec<i64> = (0..40).filter(|n| n % 8 != 7).collect();
    let bad: Vec<i64> = (0..40).filter(|n| n % 8 == 7).collect();
    let seen = sink.tuples();
    each_of_once(&seen, 0, &good);
    assert!(
        seen.iter().all(|c| c.task == target),
        "direct tuples reached {:?}",
        per_task(&seen)
    );
    assert_eq!(sorted(&outcomes.acked), good);
    assert_eq!(sorted(&outcomes.failed), bad);
    let src = report.metrics.component("src").expect("src");
    assert_eq!((src.acked(), src.failed()), (35, 5));
    assert!(src.errors() >= 1, "refused emits are logged and counted");
}

/// Routes each input `n` on a direct stream to the second task of `sink`, except `n % 10 == 3`,
/// which it sends to its own task (not a subscriber): the input must then fail.
struct Router {
    sink: Vec<TaskId>,
    me: Option<TaskId>,
    /// The tasks routers chose as the direct target, shared with the test.
    chosen: Arc<Mutex<BTreeSet<TaskId>>>,
}

impl BasicBolt for Router {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_direct_stream("direct", ["n"]);
    }

    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.sink = ctx.component_tasks("sink").ok_or("no sink")?.to_vec();
        lock(&self.chosen).insert(self.sink[1]);
        self.me = Some(ctx.task_id());
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let n = input.int_field("n")?;
        let task = if n % 10 == 3 {
            self.me.ok_or("not prepared")?
        } else {
            self.sink[1]
        };
        out.emit_direct(task, "direct", values![n]);
        Ok(())
    }
}

// Guards: a bolt's emit_direct reaches only the named task; to a non-subscribing task it fails the input (bolt failed count, spout fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_grouping_from_a_bolt_reaches_only_the_named_task() {
    let spout = VecSpout::new(["n"], (0..30).map(|i| values![i]).collect()).without_replay();
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("direct-bolt");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    let chosen: Arc<Mutex<BTreeSet<TaskId>>> = Arc::default();
    let shared = chosen.clone();
    b.set_bolt(
        "router",
        move || Router {
            sink: Vec::new(),
            me: None,
            chosen: shared.clone(),
        },
        2,
    )
    .shuffle_grouping("spout");
    b.set_bolt("sink", sink.factory(), 3)
        .direct_grouping("router", "direct");
    let report = run_until_idle(b.build().expect("a valid topology")).await;
    let chosen = lock(&chosen).clone();
    assert_eq!(
        chosen.len(),
        1,
        "both routers name the same task: {chosen:?}"
    );
    let target = *chosen.first().expect("a target");
    assert!(sink_task_ids(&report).contains(&target));

    let seen = sink.tuples();
    each_of_once(
        &seen,
        0,
        &(0..30).filter(|n| n % 10 != 3).collect::<Vec<_>>(),
    );
    assert!(
        seen.iter().all(|c| c.task == target),
        "direct tuples reached {:?}",
        per_task(&seen)
    );
    let expect_failed: Vec<u32> = (0..30).map(|n| u32::from(n % 10 == 3)).collect();
    let expect_acked: Vec<u32> = expect_failed.iter().map(|f| 1 - f).collect();
    assert_eq!(spout.failed(), expect_failed);
    assert_eq!(spout.acked(), expect_acked);
    let router = report.metrics.component("router").expect("router");
    assert_eq!(
        (router.executed(), router.acked(), router.failed()),
        (30, 27, 3)
    );
    assert_eq!(router.errors(), 3);
}
