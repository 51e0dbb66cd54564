//! Regression tests: one per bug found, named after what it guards.

use std::time::Duration;

use topo_runtime::{
    BoxError, Config, LocalCluster, OutputDeclarer, Spout, SpoutCollector, TopologyBuilder,
};

use crate::util::{Counter, config};

/// A spout that never has data; counts how often it is asked.
struct Dry {
    calls: Counter,
}

impl Spout for Dry {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["n"]);
    }

    async fn next_tuple(&mut self, _out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        self.calls.inc();
        Ok(())
    }
}

/// How many times a dry spout is asked for tuples in `window`, with `ackers` ackers.
///
/// Runs on a `LocalCluster` and measures from the test thread, so a spout task that never yields
/// makes this return a huge count instead of hanging the runtime's timers (and the test).
fn calls_of_a_dry_spout(ackers: usize, window: Duration) -> u64 {
    let calls = Counter::default();
    let mut b = TopologyBuilder::new("dry");
    b.config(Config { ackers, ..config() });
    let c = calls.clone();
    b.set_spout("dry", move || Dry { calls: c.clone() }, 1);
    let cluster = LocalCluster::new(2).expect("a runtime");
    let handle = cluster.submit(b.build().expect("a valid topology"));
    std::thread::sleep(window);
    let asked = calls.get();
    let report = cluster.block_on(handle.stop(Duration::from_secs(2)));
    assert!(report.drained, "{report:#?}");
    asked
}

// Guards: a spout with no data backs off (about one call a millisecond) with acking off too; it used to spin on its closed notice queue, hogging a worker (and the runtime's timers) forever.
#[test]
fn a_dry_spout_backs_off_with_acking_off() {
    let window = Duration::from_millis(200);
    // A back-off of ~1 ms allows ~200 calls; 10 a millisecond is far above that.
    let limit = 10 * window.as_millis() as u64;
    let with_acker = calls_of_a_dry_spout(1, window);
    assert!(
        with_acker <= limit,
        "acking on: asked {with_acker} times in {window:?}"
    );
    let without = calls_of_a_dry_spout(0, window);
    assert!(
        without <= limit,
        "acking off: asked {without} times in {window:?} (spinning, not backing off)"
    );
}
