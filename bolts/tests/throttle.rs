//! The `throttle` bolt in a running topology: its output stream takes its input's fields (a
//! fields grouping downstream can name them), every tuple passes, none is dropped, and the
//! excess waits in the throttle's queue until the spout itself has to wait — backpressure.

use std::time::{Duration, Instant};

use smol_str::SmolStr;
use topo_bolts::{Throttle, ThrottleOptions};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{CaptureBolt, VecSpout};
use topo_runtime::{LocalCluster, Values, values};

const N: i64 = 120;
const RATE: f64 = 200.0;

#[test]
fn holds_the_excess_so_backpressure_reaches_the_spout() {
    let rows: Vec<Values> = (0..N).map(|i| values![i, format!("k{}", i % 3)]).collect();
    let spout = VecSpout::new(["n", "key"], rows);
    let sink = CaptureBolt::new();
    let throttle = Throttle::new(ThrottleOptions {
        rate: RATE,
        burst: Some(1.0),
    })
    .expect("valid options");
    let mut b = TopologyBuilder::new("throttled");
    // Room for 4 tuples in the throttle's queue, and no limit on pending trees: only the full
    // queue can hold the spout back.
    let config = b.config_mut();
    config.queue_capacity = 4;
    config.batch_size = 1;
    config.max_spout_pending = None;
    b.set_spout("numbers", spout.factory(), 1);
    b.set_bolt("slow", move || throttle.clone(), 1)
        .shuffle_grouping("numbers");
    b.set_bolt("sink", sink.factory(), 1)
        .fields_grouping("slow", ["key"]);
    let topology = b
        .build()
        .expect("the throttle's stream has the spout's fields");
    assert_eq!(
        topology.outputs("slow").expect("outputs")[0].fields,
        [SmolStr::new("n"), SmolStr::new("key")]
    );

    let cluster = LocalCluster::new(2).expect("a runtime");
    let start = Instant::now();
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(30)))
        .expect("every tree acked");
    let took = start.elapsed();
    // The figures after the stop: a task counts an input as executed after `execute` returns,
    // which can be just after its ack completed the tree.
    let report = cluster.block_on(handle.stop(Duration::from_secs(5)));
    assert!(report.drained, "{report:?}");
    let idle = report.metrics;

    // Every tuple passed, unchanged and in order (one task all along), and every tree is acked.
    let got: Vec<(i64, String)> = sink
        .tuples()
        .iter()
        .map(|c| {
            let n = c.values[0].as_i64().expect("n");
            let key = c.values[1].as_str().expect("key").to_string();
            (n, key)
        })
        .collect();
    let expected: Vec<(i64, String)> = (0..N).map(|i| (i, format!("k{}", i % 3))).collect();
    assert_eq!(got, expected);
    assert!(spout.all_acked(), "acked {:?}", spout.acked());
    assert!(
        spout.failed().iter().all(|&f| f == 0),
        "{:?}",
        spout.failed()
    );

    // The rate held: the first tuple at once, then one every 5 ms.
    let least = Duration::from_secs_f64((N - 1) as f64 / RATE);
    assert!(took >= least, "{N} tuples in {took:?}, less than {least:?}");
    let slow = idle.component("slow").expect("slow");
    assert_eq!(slow.executed(), N as u64);
    assert_eq!(slow.emitted(), N as u64);
    // The spout waited for room in the throttle's full queue for most of that time.
    let waited = idle.component("numbers").expect("numbers").tasks[0].backpressure;
    assert!(
        waited >= least / 2,
        "the spout waited {waited:?} for a full queue over a run of {took:?}"
    );
}
