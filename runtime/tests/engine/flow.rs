//! Flow control: max spout pending bounds the trees in flight per spout task, and bounded queues
//! hold a fast spout back to the pace of a slow sink.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_runtime::{
    Bolt, BoxError, Config, OutputCollector, OutputDeclarer, Spout, SpoutCollector,
    TopologyBuilder, Tuple, values,
};

use crate::util::{Counter, Napper, config, lock, wait_for};

/// Emits `total` tracked messages, one per call, and records on every call how many of its
/// messages were in flight (emitted, not yet acked or failed) when it was asked for more.
struct Gauged {
    next: u64,
    total: u64,
    settled: u64,
    /// The most in flight at any call, over every instance.
    most_in_flight: Arc<Mutex<u64>>,
}

impl Spout for Gauged {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["n"]);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        if self.next < self.total {
            let in_flight = self.next - self.settled;
            let mut most = lock(&self.most_in_flight);
            *most = (*most).max(in_flight);
            drop(most);
            out.emit(values![self.next], self.next);
            self.next += 1;
        }
        Ok(())
    }

    fn ack(&mut self, _: u64) {
        self.settled += 1;
    }

    fn fail(&mut self, _: u64) {
        self.settled += 1;
    }

    fn is_exhausted(&self) -> bool {
        self.next == self.total
    }
}

/// A full bolt that acks each input after awaiting a timer (about a millisecond).
struct Slow;

impl Bolt for Slow {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        tokio::time::sleep(Duration::from_micros(500)).await;
        out.ack(&input);
        Ok(())
    }
}

// Guards: no spout task ever has more than max_spout_pending messages pending, and the limit is reached (so the bound is what holds the spout back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_spout_pending_is_never_exceeded() {
    const MAX: u64 = 8;
    const PER_TASK: u64 = 80;
    let most_in_flight = Arc::new(Mutex::new(0));
    let mut b = TopologyBuilder::new("max-pending");
    b.config(Config {
        max_spout_pending: Some(MAX as usize),
        ..config()
    });
    let shared = most_in_flight.clone();
    b.set_spout(
        "spout",
        move || Gauged {
            next: 0,
            total: PER_TASK,
            settled: 0,
            most_in_flight: shared.clone(),
        },
        2,
    );
    b.set_bolt("slow", || Slow, 2).shuffle_grouping("spout");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    let mut most_pending = 0;
    let mut samples = 0;
    wait_for(&handle, "every message acked", |m| {
        let spout = m.component("spout").expect("spout");
        for t in &spout.tasks {
            most_pending = most_pending.max(t.pending);
        }
        samples += 1;
        spout.acked() == 2 * PER_TASK
    })
    .await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained);

    assert!(
        most_pending <= MAX,
        "a spout task had {most_pending} pending (max {MAX})"
    );
    assert_eq!(
        most_pending, MAX,
        "the limit was never reached in {samples} samples"
    );
    let most_in_flight = *lock(&most_in_flight);
    assert!(
        most_in_flight < MAX,
        "the spout was asked for more with {most_in_flight} in flight (max {MAX})"
    );
    assert_eq!(most_in_flight, MAX - 1, "the spout never filled its window");
}

/// An endless spout of untracked tuples.
struct Firehose {
    next: u64,
}

impl Spout for Firehose {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["n"]);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        out.emit(values![self.next], None);
        self.next += 1;
        Ok(())
    }
}

// Guards: bounded queues hold a fast spout to a slow sink's pace: queue lengths stay within capacity and the spout is never more than the path's capacity ahead of the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_queues_and_slows_the_spout() {
    const CAPACITY: usize = 64;
    const BATCH: usize = 8;
    // The queue holds CAPACITY / BATCH batches. Its gauge counts a batch from the moment the
    // sender starts sending it (`collector::send` adds before `try_send`), so one more batch is
    // counted while it waits for a slot; and the sink counts a batch out just after taking it
    // off the queue (`task::run_bolt`), so in that instant the sender may fill the freed slot
    // and start waiting again: at most capacity + 2 batches.
    const QUEUE_BOUND: usize = CAPACITY + 2 * BATCH;
    // Emitted but not yet counted executed: the spout's partial batch, one batch waiting to be
    // sent, the queue itself, and the batch the sink is executing (counted when it ends).
    const AHEAD_BOUND: u64 = (CAPACITY + 3 * BATCH) as u64;
    const TARGET: u64 = 2000;

    let executed = Counter::default();
    let mut b = TopologyBuilder::new("backpressure");
    b.config(Config {
        queue_capacity: CAPACITY,
        batch_size: BATCH,
        ..config()
    });
    b.set_spout("firehose", || Firehose { next: 0 }, 1);
    // About 16 tuples a millisecond: far slower than the spout.
    b.set_bolt(
        "sink",
        Napper::factory(16, &executed, &Counter::default()),
        1,
    )
    .shuffle_grouping("firehose");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    let mut violations = Vec::new();
    let mut longest_queue = 0;
    wait_for(&handle, "the sink executes its share", |m| {
        let spout = m.component("firehose").expect("firehose");
        let sink = m.component("sink").expect("sink");
        for t in &sink.tasks {
            longest_queue = longest_queue.max(t.queue_len);
            if t.queue_len > QUEUE_BOUND {
                violations.push(format!("queue of task {} at {}", t.task, t.queue_len));
            }
        }
        // The spout is read before the sink in a snapshot, so this can only understate the lead.
        if spout.emitted() > sink.executed() + AHEAD_BOUND {
            violations.push(format!(
                "spout emitted {} with the sink at {}",
                spout.emitted(),
                sink.executed()
            ));
        }
        sink.executed() >= TARGET
    })
    .await;
    let report = handle.stop(Duration::from_secs(5)).await;

    assert!(violations.is_empty(), "bounds broken: {violations:?}");
    assert!(
        longest_queue >= CAPACITY / 2,
        "the queue never filled (longest {longest_queue}), so nothing was tested"
    );
    assert!(report.drained);
    let spout = report.metrics.component("firehose").expect("firehose");
    let sink = report.metrics.component("sink").expect("sink");
    assert!(
        spout.tasks[0].backpressure > Duration::ZERO,
        "the spout never waited for the full queue"
    );
    assert_eq!(
        spout.emitted(),
        sink.executed(),
        "the stop drained every emitted tuple"
    );
    assert_eq!(sink.executed(), executed.get());
}
