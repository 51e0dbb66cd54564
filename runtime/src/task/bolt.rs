//! The bolt task loop and its two drivers: [`BasicDriver`] (a [`BasicBolt`], acked or failed
//! for it after each input) and [`FullDriver`] (a [`Bolt`], which acks and fails itself).
//!
//! ```text
//! queue ─► batch ─► execute (each tuple) ─► collector ─► flush ─► next queues
//!   │                 └── ack/fail ─► acker queues
//!   └─ empty after input: input_drained (a sink writes its batch), then wait
//! ```

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use std::collections::VecDeque;

use smallvec::SmallVec;

use super::{ErrorLog, FIRST_BACKOFF, MAX_BACKOFF, TaskEnv, panic_message};
use crate::checkpoint::{Barrier, CheckpointId, Inbound};
use crate::collector::{BasicCollector, Ledger, OutputCollector};
use crate::component::{BasicBolt, Bolt, BoxError, TaskContext};
use crate::config::Guarantee;
use crate::metrics::TaskMetrics;
use crate::state::Snapshot;
use crate::tuple::{Anchors, TaskId, Tuple};

/// How a bolt task drives its component: one implementation for basic bolts, one for full bolts.
pub(crate) trait BoltDriver: Send + 'static {
    /// Makes and prepares the first instance.
    fn start(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// The bolt keeps state (`has_state`, read off the first instance).
    fn has_state(&self) -> bool;
    /// Executes a batch of inputs; the buffer may be left holding them (the caller empties it).
    fn execute_batch(
        &mut self,
        batch: &mut Vec<Tuple>,
        env: &mut TaskEnv,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// Delivers a tick.
    fn tick(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// The input queue ran dry after input was executed (see [`Bolt::input_drained`]).
    fn input_drained(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// The input is closed and drained: the bolt's `finish`.
    fn finish(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// The end: the bolt's `cleanup`; inputs still held are failed.
    fn cleanup(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// Writes the instance's state into a checkpoint.
    fn snapshot(&mut self, snap: &mut Snapshot, env: &mut TaskEnv) -> Result<(), String>;
    /// A checkpoint completed.
    fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        env: &mut TaskEnv,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs one bolt task until its input is closed (every upstream task ended) and drained.
pub(crate) async fn run_bolt<D: BoltDriver>(
    mut driver: D,
    mut env: TaskEnv,
    inbox: flume::Receiver<Inbound>,
    tick: Option<Duration>,
) {
    let gauge = env.metrics.queue.clone();
    driver.start(&mut env).await;
    if env.fatal.get().is_some() {
        // The state could not be restored: the topology is stopping; take no input.
        return;
    }
    let mut next_tick = tick.map(|t| Instant::now() + t);
    // Input was executed since the queue last ran dry: the bolt is told once per idle moment,
    // never per tuple, and never while the queue keeps input waiting.
    let mut drained_due = false;
    let mut align = env
        .checkpoints
        .as_ref()
        .map(|c| Aligner::new(c.links.upstream, c.links.alignment_buffer));
    let mut completed = env.checkpoints.as_ref().map(|c| c.links.completed.clone());
    loop {
        if let Some(id) = env.checkpoints.as_mut().and_then(|c| c.newly_completed()) {
            driver.checkpoint_complete(id, &mut env).await;
        }
        let released = align.as_mut().and_then(|a| a.released.pop_front());
        let msg = match released {
            Some(m) => m,
            None => match inbox.try_recv() {
                Ok(m) => {
                    if let Inbound::Tuples(b) = &m {
                        gauge.sub(b.len());
                    }
                    m
                }
                Err(flume::TryRecvError::Disconnected) => break,
                Err(flume::TryRecvError::Empty) if drained_due => {
                    drained_due = false;
                    driver.input_drained(&mut env).await;
                    // Send what it acked or emitted now; input that came meanwhile is taken next.
                    env.emitter.flush(true).await;
                    continue;
                }
                Err(flume::TryRecvError::Empty) => {
                    env.emitter.flush(true).await;
                    let tick_at = next_tick;
                    let tick_wait = async move {
                        match tick_at {
                            Some(at) => tokio::time::sleep_until(at.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    let completed_wait = async {
                        match completed.as_mut() {
                            Some(rx) => {
                                if rx.changed().await.is_err() {
                                    std::future::pending::<()>().await;
                                }
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        m = inbox.recv_async() => match m {
                            Ok(m) => {
                                if let Inbound::Tuples(b) = &m {
                                    gauge.sub(b.len());
                                }
                                m
                            }
                            Err(_) => break,
                        },
                        _ = completed_wait => continue,
                        _ = tick_wait => {
                            if ticks_stopped(&driver, &env) {
                                next_tick = None;
                            } else {
                                driver.tick(&mut env).await;
                                next_tick = tick.map(|t| Instant::now() + t);
                            }
                            continue;
                        }
                    }
                }
            },
        };
        let mut batch = match msg {
            Inbound::Tuples(batch) => batch,
            Inbound::Barrier(b) => {
                if let Some(a) = align.as_mut() {
                    if a.blocked(b.from) {
                        // Behind that input's earlier barrier: in order, after the alignment.
                        a.held.push_back(Inbound::Barrier(b));
                    } else {
                        a.on_barrier(b, &mut driver, &mut env).await;
                    }
                }
                continue;
            }
        };
        if let Some(a) = align.as_mut()
            && a.holds(&batch)
        {
            a.hold(batch, &mut env).await;
            continue;
        }
        env.emitter.taps.executing(&batch);
        driver.execute_batch(&mut batch, &mut env).await;
        // The emptied buffer goes back to the senders, to carry another batch.
        match &env.batch_pool {
            Some(pool) => pool.give(batch),
            None => drop(batch),
        }
        drained_due = true;
        // A task whose queue never runs dry never waits: let the worker run others now and then.
        tokio::task::coop::consume_budget().await;
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_tick, tick)
            && now >= at
        {
            if ticks_stopped(&driver, &env) {
                next_tick = None;
            } else {
                driver.tick(&mut env).await;
                next_tick = Some(now + every);
            }
        }
        let all = env.emitter.flush_due(now);
        env.emitter.flush(all).await;
    }
    // The last checkpoint (a stop's savepoint) may have completed after the last look.
    if let Some(id) = env.checkpoints.as_mut().and_then(|c| c.newly_completed()) {
        driver.checkpoint_complete(id, &mut env).await;
    }
    if driver.has_state() && env.state_goes_on() {
        // What the bolt holds (open windows, counts not emitted) is in the savepoint the stop
        // ended in, or in the newest checkpoint a failed run resumes from: the run that
        // continues it fires it, once. Flink's stop with a savepoint likewise does not end the
        // input.
        tracing::debug!(
            task_id = env.ctx.task_id().0,
            "not finished: its state goes on in the next run"
        );
    } else {
        driver.finish(&mut env).await;
    }
    env.emitter.flush(true).await;
    final_checkpoint(&mut driver, &mut env).await;
    driver.cleanup(&mut env).await;
    env.emitter.flush(true).await;
    if let Some(c) = env.checkpoints.as_mut() {
        c.drain().await;
    }
}

/// Whether a stateful bolt's ticks have stopped: a stop is taking a savepoint, which keeps
/// what a tick would fire (a processing-time window) for the next run; if the savepoint fails,
/// `finish` fires it. Only under exactly-once: under at-least-once the stop waits for the trees
/// in flight, and a tick firing a window is what completes those it holds.
#[inline]
fn ticks_stopped<D: BoltDriver>(driver: &D, env: &TaskEnv) -> bool {
    driver.has_state()
        && env.stop.is_taking_savepoint()
        && env.ctx.config().guarantee == Guarantee::ExactlyOnce
}

/// The longest a sink waits, at its end, for the final checkpoint to complete.
const FINAL_WAIT: Duration = Duration::from_secs(30);

/// A drained stop's final checkpoint: the task writes its state after `finish` (nothing is in
/// flight any more: every input has ended). A sink (no task downstream) then waits for the
/// checkpoint to complete and is told, so that a two-phase-commit sink publishes what `finish`
/// made it write; other tasks must end at once (their ending closes their downstream's input).
async fn final_checkpoint<D: BoltDriver>(driver: &mut D, env: &mut TaskEnv) {
    let Some(id) = env.checkpoints.as_mut().and_then(|c| c.final_id()) else {
        return;
    };
    let Some(side) = env.checkpoints.as_mut() else {
        return;
    };
    let mut snap = side.snapshot(id);
    let taken = driver.snapshot(&mut snap, env);
    let sink = env.emitter.targets.is_empty();
    let Some(side) = env.checkpoints.as_mut() else {
        return;
    };
    side.write(&env.ctx, snap, taken, Duration::ZERO, Duration::ZERO);
    if !sink {
        return;
    }
    side.drain().await;
    let mut completed = side.links.completed.clone();
    let done = tokio::time::timeout(FINAL_WAIT, async {
        completed.wait_for(|c| *c >= id).await.is_ok()
    })
    .await;
    if done == Ok(true)
        && let Some(id) = env.checkpoints.as_mut().and_then(|c| c.newly_completed())
    {
        driver.checkpoint_complete(id, env).await;
    }
}

/// A checkpoint being aligned: which upstream tasks have delivered its barrier.
struct Aligning {
    id: CheckpointId,
    seen: SmallVec<[TaskId; 8]>,
    started: Instant,
}

/// Barrier alignment for one bolt task: once an upstream task has delivered checkpoint `id`'s
/// barrier, its later batches wait here until every upstream task has, so the snapshot holds
/// the effect of exactly the tuples before the barriers. Held tuples are bounded: past the
/// bound the task declines the checkpoint and lets them through.
struct Aligner {
    upstream: usize,
    limit: usize,
    current: Option<Aligning>,
    held: VecDeque<Inbound>,
    held_tuples: usize,
    /// Held input let through, taken before the queue.
    released: VecDeque<Inbound>,
    /// The newest checkpoint completed or given up here.
    done: CheckpointId,
}

impl Aligner {
    fn new(upstream: usize, limit: usize) -> Aligner {
        Aligner {
            upstream: upstream.max(1),
            limit,
            current: None,
            held: VecDeque::new(),
            held_tuples: 0,
            released: VecDeque::new(),
            done: 0,
        }
    }

    /// Whether this batch's sender has delivered the barrier being aligned.
    #[inline]
    fn holds(&self, batch: &[Tuple]) -> bool {
        batch.first().is_some_and(|t| self.blocked(t.source_task()))
    }

    /// Whether `sender` has delivered the barrier being aligned: its input waits.
    #[inline]
    fn blocked(&self, sender: TaskId) -> bool {
        self.current
            .as_ref()
            .is_some_and(|a| a.seen.contains(&sender))
    }

    async fn hold(&mut self, batch: Vec<Tuple>, env: &mut TaskEnv) {
        self.held_tuples += batch.len();
        self.held.push_back(Inbound::Tuples(batch));
        if self.held_tuples > self.limit
            && let Some(a) = self.current.take()
        {
            let why = format!(
                "declined: {} tuples held back while aligning, over alignment_buffer ({}); an input is far behind the others",
                self.held_tuples, self.limit
            );
            self.give_up(a.id, env).await;
            if let Some(c) = env.checkpoints.as_mut() {
                c.decline(&env.ctx, a.id, why);
            }
        }
    }

    /// Stops aligning `id`: held input goes through, and downstream is told to stop too.
    async fn give_up(&mut self, id: CheckpointId, env: &mut TaskEnv) {
        self.current = None;
        self.done = self.done.max(id);
        self.release();
        let from = env.ctx.task_id();
        env.emitter
            .barrier(Barrier {
                id,
                from,
                cancel: true,
            })
            .await;
    }

    fn release(&mut self) {
        self.held_tuples = 0;
        // Held input goes before anything released earlier and not yet taken.
        for m in std::mem::take(&mut self.held).into_iter().rev() {
            self.released.push_front(m);
        }
    }

    async fn on_barrier<D: BoltDriver>(&mut self, b: Barrier, driver: &mut D, env: &mut TaskEnv) {
        if b.id <= self.done {
            return;
        }
        if let Some(a) = self.current.as_ref()
            && b.id > a.id
        {
            // A newer checkpoint started: the one being aligned was abandoned.
            let old = a.id;
            self.give_up(old, env).await;
        }
        if b.cancel {
            self.give_up(b.id, env).await;
            return;
        }
        let a = self.current.get_or_insert_with(|| Aligning {
            id: b.id,
            seen: SmallVec::new(),
            started: Instant::now(),
        });
        if !a.seen.contains(&b.from) {
            a.seen.push(b.from);
        }
        if a.seen.len() < self.upstream {
            return;
        }
        let a = self.current.take().expect("aligning");
        let alignment = a.started.elapsed();
        let start = Instant::now();
        // What the bolt holds for a write (a sink's batch) is written before the snapshot: the
        // checkpoint covers every input before the barrier, so those must be durable (or in
        // the state) when it completes.
        driver.input_drained(env).await;
        let Some(side) = env.checkpoints.as_mut() else {
            return;
        };
        let mut snap = side.snapshot(a.id);
        let taken = driver.snapshot(&mut snap, env);
        // The pause is the snapshot's (and a sink's write); the wait to put the barrier into a
        // full queue below is backpressure, which the task would have waited anyway.
        let pause = start.elapsed();
        let from = env.ctx.task_id();
        env.emitter
            .barrier(Barrier {
                id: a.id,
                from,
                cancel: false,
            })
            .await;
        if let Some(side) = env.checkpoints.as_mut() {
            side.write(&env.ctx, snap, taken, alignment, pause);
        }
        self.done = a.id;
        self.release();
    }
}

/// Calls a component's `restore` on its first instance; an error stops the topology.
fn restore_with(
    env: &mut TaskEnv,
    restore: impl FnOnce(&crate::state::Restore) -> Result<(), BoxError>,
) {
    let Some(r) = env.restore.take() else {
        return;
    };
    let why = match std::panic::catch_unwind(AssertUnwindSafe(|| restore(&r))) {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(p) => panic_message(&*p),
    };
    env.fatal(
        format!("could not restore checkpoint {}: {why}", r.checkpoint_id()),
        false,
    );
}

/// Calls a component's `snapshot`; a panic or an error fails this checkpoint.
fn snapshot_with(
    snap: &mut Snapshot,
    take: impl FnOnce(&mut Snapshot) -> Result<(), BoxError>,
) -> Result<(), String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| take(snap))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(panic_message(&*p)),
    }
}

/// Why a task without an instance (it failed, and is being made again) declines a checkpoint.
const NO_INSTANCE: &str = "the bolt failed and is being made again";

/// Drives a [`BasicBolt`]: acks each input after `execute` returns `Ok`, fails it otherwise.
pub(crate) struct BasicDriver<B: BasicBolt> {
    pub(crate) factory: Arc<dyn Fn() -> B + Send + Sync>,
    pub(crate) bolt: Option<B>,
    errors: ErrorLog,
    /// The bolt keeps state ([`BasicBolt::has_state`]), read off the first instance.
    stateful: bool,
}

impl<B: BasicBolt> BasicDriver<B> {
    pub(crate) fn new(factory: Arc<dyn Fn() -> B + Send + Sync>) -> Self {
        BasicDriver {
            factory,
            bolt: None,
            errors: ErrorLog::new(),
            stateful: false,
        }
    }

    /// Calls `f` on the instance (if there is one) with a collector whose emits are not
    /// anchored (ticks, input run dry); an error or a panic is reported as `what`, and a panic
    /// drops the instance.
    fn call_unanchored(
        &mut self,
        env: &mut TaskEnv,
        what: &str,
        f: impl FnOnce(&mut B, &mut BasicCollector<'_>) -> Result<(), BoxError>,
    ) {
        let Some(bolt) = self.bolt.as_mut() else {
            return;
        };
        let none = Anchors::new();
        let mut out = BasicCollector {
            emitter: &mut env.emitter,
            anchors: &none,
            ack_val: 0,
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(bolt, &mut out)));
        let why = match result {
            Ok(Ok(())) => env.emitter.take_error().map(|e| e.to_string()),
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => {
                self.bolt = None;
                env.metrics.restarts.fetch_add(1, Relaxed);
                let why = panic_message(&*p);
                env.instance_lost(self.stateful, &why);
                Some(why)
            }
        };
        if let Some(why) = why {
            self.errors.report(&env.ctx, &env.metrics, what, &why);
        }
    }

    /// Makes and prepares an instance, retrying with back-off until one is ready.
    async fn ensure(&mut self, ctx: &TaskContext, metrics: &TaskMetrics) {
        let mut backoff = FIRST_BACKOFF;
        while self.bolt.is_none() {
            let made = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut b = (self.factory)();
                b.prepare(ctx).map(|()| b)
            }));
            let what = "bolt failed to prepare; retrying";
            match made {
                Ok(Ok(b)) => self.bolt = Some(b),
                Ok(Err(e)) => self.errors.report(ctx, metrics, what, &e),
                Err(p) => self.errors.report(ctx, metrics, what, &panic_message(&*p)),
            }
            if self.bolt.is_none() {
                metrics.restarts.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl<B: BasicBolt> BoltDriver for BasicDriver<B> {
    async fn start(&mut self, env: &mut TaskEnv) {
        self.ensure(&env.ctx, &env.metrics).await;
        if let Some(b) = self.bolt.as_mut() {
            self.stateful = b.has_state();
            restore_with(env, |r| b.restore(r));
        }
    }

    fn has_state(&self) -> bool {
        self.stateful
    }

    fn snapshot(&mut self, snap: &mut Snapshot, _env: &mut TaskEnv) -> Result<(), String> {
        let b = self.bolt.as_mut().ok_or(NO_INSTANCE)?;
        snapshot_with(snap, |s| b.snapshot(s))
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId, env: &mut TaskEnv) {
        self.call_unanchored(env, "bolt checkpoint_complete failed", |b, out| {
            b.checkpoint_complete(id, out)
        });
    }

    async fn execute_batch(&mut self, batch: &mut Vec<Tuple>, env: &mut TaskEnv) {
        let n = batch.len() as u64;
        let start = Instant::now();
        for input in batch.iter() {
            if env.emitter.has_full_batch {
                env.emitter.flush(false).await;
            }
            if self.bolt.is_none() {
                self.ensure(&env.ctx, &env.metrics).await;
            }
            let Some(bolt) = self.bolt.as_mut() else {
                continue;
            };
            let mut out = BasicCollector {
                emitter: &mut env.emitter,
                anchors: &input.anchors,
                ack_val: 0,
            };
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| bolt.execute(input, &mut out)));
            let ack_val = out.ack_val;
            let result = match result {
                Ok(Ok(())) => match env.emitter.take_error() {
                    None => Ok(()),
                    Some(e) => Err(e.to_string()),
                },
                Ok(Err(e)) => Err(e.to_string()),
                Err(p) => {
                    // The instance may be in any state: replace it before the next input.
                    self.bolt = None;
                    env.metrics.restarts.fetch_add(1, Relaxed);
                    let why = panic_message(&*p);
                    env.instance_lost(self.stateful, &why);
                    Err(why)
                }
            };
            match result {
                Ok(()) => env.emitter.ack(&input.anchors, ack_val),
                Err(why) => {
                    env.emitter.fail(&input.anchors);
                    self.errors
                        .report(&env.ctx, &env.metrics, "bolt failed a tuple", &why);
                }
            }
        }
        let busy = start.elapsed();
        TaskMetrics::add(&env.metrics.executed, n);
        TaskMetrics::add(&env.metrics.busy_ns, busy.as_nanos() as u64);
        env.metrics.record_execute(busy, n);
    }

    async fn tick(&mut self, env: &mut TaskEnv) {
        self.ensure(&env.ctx, &env.metrics).await;
        self.call_unanchored(env, "bolt tick failed", |b, out| b.tick(out));
    }

    async fn input_drained(&mut self, env: &mut TaskEnv) {
        // No instance: a fresh one is made for the next input, and holds nothing yet.
        self.call_unanchored(env, "bolt input_drained failed", |b, out| {
            b.input_drained(out)
        });
    }

    async fn finish(&mut self, env: &mut TaskEnv) {
        // A panic drops the instance, as anywhere else: what it held is lost (see
        // `TaskEnv::instance_lost`), and the final checkpoint cannot take its state.
        self.call_unanchored(env, "bolt finish failed", |b, out| b.finish(out));
        loop {
            // What the last call emitted goes out first, waiting for room downstream.
            env.emitter.flush(false).await;
            let mut more = false;
            self.call_unanchored(env, "bolt finish failed", |b, out| {
                more = b.finish_next(out)?;
                Ok(())
            });
            if !more {
                break;
            }
        }
    }

    async fn cleanup(&mut self, env: &mut TaskEnv) {
        if let Some(mut bolt) = self.bolt.take()
            && let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| bolt.cleanup()))
        {
            self.errors
                .report(&env.ctx, &env.metrics, "bolt cleanup", &panic_message(&*p));
        }
    }
}

/// Drives a full [`Bolt`]: keeps a ledger of the inputs it holds, so that a failing instance's
/// inputs can be failed.
pub(crate) struct FullDriver<B: Bolt> {
    pub(crate) factory: Arc<dyn Fn() -> B + Send + Sync>,
    pub(crate) bolt: Option<B>,
    ledger: Ledger,
    errors: ErrorLog,
    /// The bolt keeps state ([`Bolt::has_state`]), read off the first instance.
    stateful: bool,
}

impl<B: Bolt> FullDriver<B> {
    pub(crate) fn new(factory: Arc<dyn Fn() -> B + Send + Sync>) -> Self {
        FullDriver {
            factory,
            bolt: None,
            ledger: Ledger::default(),
            errors: ErrorLog::new(),
            stateful: false,
        }
    }

    async fn ensure(&mut self, ctx: &TaskContext, metrics: &TaskMetrics) {
        let mut backoff = FIRST_BACKOFF;
        while self.bolt.is_none() {
            let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| (self.factory)())) {
                Ok(mut b) => match AssertUnwindSafe(b.prepare(ctx)).catch_unwind().await {
                    Ok(Ok(())) => {
                        self.bolt = Some(b);
                        break;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(p) => panic_message(&*p),
                },
                Err(p) => panic_message(&*p),
            };
            self.errors
                .report(ctx, metrics, "bolt failed to prepare; retrying", &outcome);
            metrics.restarts.fetch_add(1, Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Fails every input the bolt holds (after a panic, or at the end).
    fn fail_held(&mut self, env: &mut TaskEnv) -> usize {
        let held: Vec<_> = self.ledger.held.drain().map(|(_, h)| h.anchors).collect();
        for anchors in &held {
            env.emitter.fail(anchors);
        }
        held.len()
    }

    /// Handles the outcome of a call into the instance; a panic replaces it.
    fn settle(
        &mut self,
        env: &mut TaskEnv,
        what: &str,
        result: std::thread::Result<Result<(), BoxError>>,
        input_seq: u64,
    ) {
        let why = match result {
            Ok(Ok(())) => env.emitter.take_error().map(|e| e.to_string()),
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => {
                self.bolt = None;
                env.metrics.restarts.fetch_add(1, Relaxed);
                env.instance_lost(self.stateful, &panic_message(&*p));
                let n = self.fail_held(env);
                Some(format!(
                    "{}; failed the {n} inputs it held",
                    panic_message(&*p)
                ))
            }
        };
        if let Some(why) = why {
            if let Some(h) = self.ledger.held.remove(&input_seq) {
                env.emitter.fail(&h.anchors);
            }
            self.errors.report(&env.ctx, &env.metrics, what, &why);
        }
    }
}

impl<B: Bolt> BoltDriver for FullDriver<B> {
    async fn start(&mut self, env: &mut TaskEnv) {
        self.ensure(&env.ctx, &env.metrics).await;
        if let Some(b) = self.bolt.as_mut() {
            self.stateful = b.has_state();
            restore_with(env, |r| b.restore(r));
        }
    }

    fn has_state(&self) -> bool {
        self.stateful
    }

    fn snapshot(&mut self, snap: &mut Snapshot, _env: &mut TaskEnv) -> Result<(), String> {
        let b = self.bolt.as_mut().ok_or(NO_INSTANCE)?;
        snapshot_with(snap, |s| b.snapshot(s))
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId, env: &mut TaskEnv) {
        let Some(bolt) = self.bolt.as_mut() else {
            return;
        };
        let mut out = OutputCollector {
            emitter: &mut env.emitter,
            ledger: &mut self.ledger,
        };
        let result = AssertUnwindSafe(bolt.checkpoint_complete(id, &mut out))
            .catch_unwind()
            .await;
        self.settle(env, "bolt checkpoint_complete failed", result, 0);
    }

    async fn execute_batch(&mut self, batch: &mut Vec<Tuple>, env: &mut TaskEnv) {
        let n = batch.len() as u64;
        let start = Instant::now();
        for mut input in batch.drain(..) {
            if env.emitter.has_full_batch {
                env.emitter.flush(false).await;
            }
            if self.bolt.is_none() {
                self.ensure(&env.ctx, &env.metrics).await;
            }
            let Some(bolt) = self.bolt.as_mut() else {
                continue;
            };
            if input.is_tracked() {
                input.seq = self.ledger.hold(&input.anchors);
            }
            let seq = input.seq;
            let mut out = OutputCollector {
                emitter: &mut env.emitter,
                ledger: &mut self.ledger,
            };
            let result = AssertUnwindSafe(bolt.execute(input, &mut out))
                .catch_unwind()
                .await;
            self.settle(env, "bolt failed a tuple", result, seq);
        }
        let busy = start.elapsed();
        TaskMetrics::add(&env.metrics.executed, n);
        TaskMetrics::add(&env.metrics.busy_ns, busy.as_nanos() as u64);
        env.metrics.record_execute(busy, n);
    }

    async fn tick(&mut self, env: &mut TaskEnv) {
        self.ensure(&env.ctx, &env.metrics).await;
        let Some(bolt) = self.bolt.as_mut() else {
            return;
        };
        let mut out = OutputCollector {
            emitter: &mut env.emitter,
            ledger: &mut self.ledger,
        };
        let result = AssertUnwindSafe(bolt.tick(&mut out)).catch_unwind().await;
        self.settle(env, "bolt tick failed", result, 0);
    }

    async fn input_drained(&mut self, env: &mut TaskEnv) {
        // No instance: a fresh one is made for the next input, and holds nothing yet.
        let Some(bolt) = self.bolt.as_mut() else {
            return;
        };
        let mut out = OutputCollector {
            emitter: &mut env.emitter,
            ledger: &mut self.ledger,
        };
        let result = AssertUnwindSafe(bolt.input_drained(&mut out))
            .catch_unwind()
            .await;
        self.settle(env, "bolt input_drained failed", result, 0);
    }

    async fn finish(&mut self, env: &mut TaskEnv) {
        if let Some(bolt) = self.bolt.as_mut() {
            let mut out = OutputCollector {
                emitter: &mut env.emitter,
                ledger: &mut self.ledger,
            };
            let result = AssertUnwindSafe(bolt.finish(&mut out)).catch_unwind().await;
            self.settle(env, "bolt finish failed", result, 0);
        }
    }

    async fn cleanup(&mut self, env: &mut TaskEnv) {
        if let Some(mut bolt) = self.bolt.take()
            && AssertUnwindSafe(bolt.cleanup())
                .catch_unwind()
                .await
                .is_err()
        {
            self.errors
                .report(&env.ctx, &env.metrics, "bolt cleanup", &"panicked");
        }
        let n = self.fail_held(env);
        if n > 0 {
            tracing::warn!(
                component = env.ctx.component_id(),
                task = env.ctx.task_index(),
                inputs = n,
                "bolt ended holding inputs it never acked or failed; failed them"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use smol_str::SmolStr;

    use super::*;
    use crate::collector::Emitter;
    use crate::component::ContextShared;
    use crate::config::Config;
    use crate::tuple::{StreamSchema, TaskId};
    use crate::values;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Event {
        Execute(i64),
        Drained,
        Finish,
    }

    /// Records the calls it gets; tells the test of each `input_drained` and each tick.
    #[derive(Clone)]
    struct Recorder {
        events: Arc<Mutex<Vec<Event>>>,
        drained: flume::Sender<()>,
        ticked: flume::Sender<()>,
    }

    impl Recorder {
        fn record(&self, e: Event) {
            self.events.lock().expect("events").push(e);
        }
    }

    impl Bolt for Recorder {
        async fn execute(
            &mut self,
            input: Tuple,
            _out: &mut OutputCollector<'_>,
        ) -> Result<(), BoxError> {
            self.record(Event::Execute(input.int_field("n")?));
            Ok(())
        }
        async fn tick(&mut self, _out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
            let _ = self.ticked.send(());
            Ok(())
        }
        async fn input_drained(&mut self, _out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
            self.record(Event::Drained);
            let _ = self.drained.send(());
            Ok(())
        }
        async fn finish(&mut self, _out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
            self.record(Event::Finish);
            Ok(())
        }
    }

    impl BasicBolt for Recorder {
        fn execute(
            &mut self,
            input: &Tuple,
            _out: &mut BasicCollector<'_>,
        ) -> Result<(), BoxError> {
            self.record(Event::Execute(input.int_field("n")?));
            Ok(())
        }
        fn tick(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
            let _ = self.ticked.send(());
            Ok(())
        }
        fn input_drained(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
            self.record(Event::Drained);
            let _ = self.drained.send(());
            Ok(())
        }
        fn finish(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
            self.record(Event::Finish);
            Ok(())
        }
    }

    /// A task environment with no outputs and no ackers (the inputs are untracked).
    fn env() -> TaskEnv {
        let metrics = Arc::new(TaskMetrics::new(0));
        TaskEnv {
            ctx: TaskContext {
                inner: Arc::new(ContextShared {
                    topology: "test".into(),
                    config: Config::default(),
                    components: vec![("rec".into(), vec![TaskId(0)])],
                    inputs: Vec::new(),
                    tick_intervals: Vec::new(),
                    checkpointed: false,
                }),
                component: "rec".into(),
                task: TaskId(0),
                task_index: 0,
                parallelism: 1,
            },
            emitter: Emitter::new(
                TaskId(0),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                64,
                metrics.clone(),
            ),
            metrics,
            checkpoints: None,
            restore: None,
            fatal: Default::default(),
            stop: Default::default(),
            batch_pool: None,
        }
    }

    fn batch(range: std::ops::Range<i64>) -> Vec<Tuple> {
        let schema =
            StreamSchema::intern("src", crate::DEFAULT_STREAM, &[SmolStr::new("n")], false);
        range
            .map(|n| Tuple::new(schema, TaskId(9), values![n]))
            .collect()
    }

    async fn next(rx: &flume::Receiver<()>, what: &str) {
        tokio::time::timeout(Duration::from_secs(10), rx.recv_async())
            .await
            .unwrap_or_else(|_| panic!("no {what} within 10 s"))
            .expect("the bolt is there");
    }

    /// Drives a recorder through `run_bolt`: input already waiting is all executed before the
    /// hook; the hook comes once each time the queue runs dry after input, not on idle ticks,
    /// not at the end.
    async fn drained_once_per_dry_queue<D: BoltDriver>(make: impl FnOnce(Recorder) -> D) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (drained_tx, drained) = flume::unbounded();
        let (ticked_tx, ticked) = flume::unbounded();
        let driver = make(Recorder {
            events: events.clone(),
            drained: drained_tx,
            ticked: ticked_tx,
        });
        let (tx, inbox) = flume::unbounded();
        // Two batches wait before the task starts: the queue is not dry between them.
        tx.send(Inbound::Tuples(batch(0..3))).expect("inbox");
        tx.send(Inbound::Tuples(batch(3..5))).expect("inbox");
        let task = tokio::spawn(run_bolt(
            driver,
            env(),
            inbox,
            Some(Duration::from_millis(1)),
        ));
        next(&drained, "input_drained").await;
        let seen = events.lock().expect("events").clone();
        let mut want: Vec<Event> = (0..5).map(Event::Execute).collect();
        want.push(Event::Drained);
        assert_eq!(seen, want, "executed all waiting input, then told once");

        // Idle ticks do not call it again.
        for _ in 0..3 {
            next(&ticked, "tick").await;
        }
        assert_eq!(
            events.lock().expect("events").len(),
            6,
            "no call while idle"
        );

        // More input, then dry again: once more.
        tx.send(Inbound::Tuples(batch(5..7))).expect("inbox");
        next(&drained, "input_drained").await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task ends when its input closes")
            .expect("no panic");
        let seen = events.lock().expect("events").clone();
        want.extend([
            Event::Execute(5),
            Event::Execute(6),
            Event::Drained,
            Event::Finish,
        ]);
        assert_eq!(seen, want, "not called at the end of input: finish is");
    }

    #[tokio::test]
    async fn a_full_bolt_is_told_once_each_time_its_input_runs_dry() {
        drained_once_per_dry_queue(|r| {
            FullDriver::new(Arc::new(move || -> Recorder { r.clone() }))
        })
        .await;
    }

    #[tokio::test]
    async fn a_basic_bolt_is_told_once_each_time_its_input_runs_dry() {
        drained_once_per_dry_queue(|r| {
            BasicDriver::new(Arc::new(move || -> Recorder { r.clone() }))
        })
        .await;
    }
}
