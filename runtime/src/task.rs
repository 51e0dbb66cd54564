//! Task loops: how a spout task and a bolt task drive their component, and where they start.
//!
//! A component's factory ([`crate::topology::SpoutFactory`], [`crate::topology::BoltFactory`])
//! holds a [`SpoutRunner`] or [`BoltRunner`] made here, which knows the concrete component type;
//! the cluster calls its `spawn` once per task, which runs [`run_spout`] or [`run_bolt`].
//!
//! ```text
//! spout task:  acker notices ─► ack/fail ─┐   next_tuple ─► collector ─► flush ─► bolt queues
//!                                         └── timeouts (sweep of pending trees)
//! bolt task:   queue ─► batch ─► execute (each tuple) ─► collector ─► flush ─► next queues
//!                │                 └── ack/fail ─► acker queues
//!                └─ empty after input: input_drained (a sink writes its batch), then wait
//! ```
//!
//! Each task owns its component instance and its [`Emitter`]. A panic or an error escaping the
//! component is caught here, logged (at most once a second per task, with how many were not
//! logged) and counted; the tuples the instance held are failed, and a fresh instance is made from
//! the factory and prepared again, with back-off while that keeps failing.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::acker::{IdMap, SpoutNotice};
use crate::collector::{
    BasicCollector, Emitter, Ledger, OutputCollector, PendingTree, SpoutCollector,
};
use crate::component::{BasicBolt, Bolt, BoxError, Declared, Spout, TaskContext, declared};
use crate::metrics::TaskMetrics;
use crate::tuple::{Anchors, Tuple};

/// What the handle asks of the spouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Emit.
    Active,
    /// Do not emit (acks still processed).
    Inactive,
    /// Stop emitting, wait for pending trees until the deadline, then close.
    Stop { deadline: Instant },
}

/// Everything a task needs besides its component.
pub(crate) struct TaskEnv {
    pub(crate) ctx: TaskContext,
    pub(crate) emitter: Emitter,
    pub(crate) metrics: Arc<TaskMetrics>,
}

// ---------------------------------------------------------------- starting tasks

/// A spout component's factory ([`crate::topology::SpoutFactory`]), with its concrete type erased
/// at task start (not per tuple): reads the declaration, starts a task loop.
pub(crate) trait SpoutRunner: Send + Sync {
    fn declare(&self) -> Result<Declared, String>;
    fn spawn(
        &self,
        env: TaskEnv,
        notices: flume::Receiver<Vec<SpoutNotice>>,
        control: tokio::sync::watch::Receiver<Control>,
        max_pending: Option<usize>,
        timeout: Duration,
    ) -> BoxFuture<'static, ()>;
}

/// A bolt component's factory ([`crate::topology::BoltFactory`]), with its concrete type erased
/// at task start.
pub(crate) trait BoltRunner: Send + Sync {
    fn declare(&self) -> Result<Declared, String>;
    fn spawn(
        &self,
        env: TaskEnv,
        inbox: flume::Receiver<Vec<Tuple>>,
        tick: Option<Duration>,
    ) -> BoxFuture<'static, ()>;
}

/// Starts [`run_spout`] tasks of a spout made by the closure.
pub(crate) struct SpoutFn<S>(pub(crate) Arc<dyn Fn() -> S + Send + Sync>);
/// Starts [`run_bolt`] tasks of a [`BasicBolt`] made by the closure.
pub(crate) struct BasicFn<B>(pub(crate) Arc<dyn Fn() -> B + Send + Sync>);
/// Starts [`run_bolt`] tasks of a full [`Bolt`] made by the closure.
pub(crate) struct FullFn<B>(pub(crate) Arc<dyn Fn() -> B + Send + Sync>);

impl<S: Spout> SpoutRunner for SpoutFn<S> {
    fn declare(&self) -> Result<Declared, String> {
        declared(&*self.0, |s, d| {
            s.declare_outputs(d);
            None
        })
    }
    fn spawn(
        &self,
        env: TaskEnv,
        notices: flume::Receiver<Vec<SpoutNotice>>,
        control: tokio::sync::watch::Receiver<Control>,
        max_pending: Option<usize>,
        timeout: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run_spout(
            self.0.clone(),
            env,
            notices,
            control,
            max_pending,
            timeout,
        ))
    }
}

impl<B: BasicBolt> BoltRunner for BasicFn<B> {
    fn declare(&self) -> Result<Declared, String> {
        declared(&*self.0, |b, d| {
            b.declare_outputs(d);
            b.tick_interval()
        })
    }
    fn spawn(
        &self,
        env: TaskEnv,
        inbox: flume::Receiver<Vec<Tuple>>,
        tick: Option<Duration>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run_bolt(BasicDriver::new(self.0.clone()), env, inbox, tick))
    }
}

impl<B: Bolt> BoltRunner for FullFn<B> {
    fn declare(&self) -> Result<Declared, String> {
        declared(&*self.0, |b, d| {
            b.declare_outputs(d);
            b.tick_interval()
        })
    }
    fn spawn(
        &self,
        env: TaskEnv,
        inbox: flume::Receiver<Vec<Tuple>>,
        tick: Option<Duration>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run_bolt(FullDriver::new(self.0.clone()), env, inbox, tick))
    }
}

/// Logs a component's failures without flooding: the first at once, then at most one a second
/// with the count of those not logged. Counts every one.
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn new() -> ErrorLog {
        ErrorLog {
            last: None,
            suppressed: 0,
        }
    }

    fn report(
        &mut self,
        ctx: &TaskContext,
        metrics: &TaskMetrics,
        what: &str,
        err: &dyn std::fmt::Display,
    ) {
        metrics.errors.fetch_add(1, Relaxed);
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        self.last = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        // The task's span names the component and task index.
        tracing::error!(task_id = ctx.task_id().0, suppressed, "{what}: {err}");
    }
}

/// The message of a panic payload.
fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// How many times a spout is asked for tuples before its task looks at acks, control and
/// timeouts again (fewer if it runs dry, fills a batch or reaches `max_spout_pending`).
const CALLS_PER_ROUND: usize = 64;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The spout's side of a run: instance, pending trees, and bookkeeping between calls.
struct SpoutTask<S: Spout> {
    factory: Arc<dyn Fn() -> S + Send + Sync>,
    spout: S,
    pending: IdMap<PendingTree<S::MessageId>>,
    ack_now: Vec<S::MessageId>,
    fail_now: Vec<S::MessageId>,
    env: TaskEnv,
    errors: ErrorLog,
    max_pending: Option<usize>,
    timeout: Duration,
    /// The instance failed; replace it before asking it for more tuples.
    restart_pending: bool,
}

/// Makes and opens a spout instance, retrying with back-off until one opens.
async fn open_spout<S: Spout>(
    factory: &Arc<dyn Fn() -> S + Send + Sync>,
    ctx: &TaskContext,
    metrics: &TaskMetrics,
    errors: &mut ErrorLog,
) -> S {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let made = std::panic::catch_unwind(AssertUnwindSafe(|| factory()));
        let outcome = match made {
            Ok(mut s) => match AssertUnwindSafe(s.open(ctx)).catch_unwind().await {
                Ok(Ok(())) => return s,
                Ok(Err(e)) => e.to_string(),
                Err(p) => panic_message(&*p),
            },
            Err(p) => panic_message(&*p),
        };
        errors.report(ctx, metrics, "spout failed to open; retrying", &outcome);
        metrics.restarts.fetch_add(1, Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs one spout task to the end (see [`Control`]).
pub(crate) async fn run_spout<S: Spout>(
    factory: Arc<dyn Fn() -> S + Send + Sync>,
    env: TaskEnv,
    notices: flume::Receiver<Vec<SpoutNotice>>,
    mut control: watch::Receiver<Control>,
    max_pending: Option<usize>,
    timeout: Duration,
) {
    let mut errors = ErrorLog::new();
    let spout = open_spout(&factory, &env.ctx, &env.metrics, &mut errors).await;
    let mut t = SpoutTask {
        factory,
        spout,
        pending: IdMap::default(),
        ack_now: Vec::new(),
        fail_now: Vec::new(),
        env,
        errors,
        max_pending,
        timeout,
        restart_pending: false,
    };
    let sweep_every = (timeout / 10).max(Duration::from_millis(1));
    let mut next_sweep = Instant::now() + sweep_every;
    let mut active = false;
    let mut stopping: Option<Instant> = None;
    let mut idle_rounds = 0u32;
    // Set when a wait below consumed a control change (`changed()` marks it seen).
    let mut control_seen = true;
    // With acking off there is no acker, and the notice queue is closed from the start.
    let mut notices_open = true;
    loop {
        if std::mem::take(&mut control_seen) || control.has_changed().unwrap_or(true) {
            let c = *control.borrow_and_update();
            match c {
                Control::Active if stopping.is_none() && !active => {
                    active = true;
                    t.call_sync(|s| s.activate());
                }
                Control::Inactive if active => {
                    active = false;
                    t.call_sync(|s| s.deactivate());
                }
                Control::Stop { deadline } => {
                    if active {
                        active = false;
                        t.call_sync(|s| s.deactivate());
                    }
                    stopping = Some(deadline);
                }
                _ => {}
            }
            if control.has_changed().is_err() && stopping.is_none() {
                // The handle is gone without a stop: stop now.
                stopping = Some(Instant::now());
            }
        }
        while let Ok(batch) = notices.try_recv() {
            t.on_notices(batch);
        }
        let now = Instant::now();
        if now >= next_sweep {
            t.sweep(now);
            next_sweep = now + sweep_every;
        }
        t.publish_state();
        if let Some(deadline) = stopping {
            t.env.emitter.flush(true).await;
            if t.pending.is_empty() || now >= deadline {
                break;
            }
            let wait = deadline.min(next_sweep);
            tokio::select! {
                Some(b) = next_notices(&notices, &mut notices_open) => t.on_notices(b),
                _ = tokio::time::sleep_until(wait.into()) => {}
            }
            continue;
        }
        let room = t.max_pending.is_none_or(|m| t.pending.len() < m);
        if active && room {
            // A round of calls; acks, control and timeouts are looked at between rounds.
            let mut emitted = 0;
            for _ in 0..CALLS_PER_ROUND {
                let n = t.next_tuple().await;
                emitted += n;
                let full = t.max_pending.is_some_and(|m| t.pending.len() >= m);
                if n == 0 || full || t.restart_pending || t.env.emitter.has_full_batch {
                    break;
                }
            }
            let end = Instant::now();
            TaskMetrics::add(&t.env.metrics.busy_ns, (end - now).as_nanos() as u64);
            if emitted > 0 {
                idle_rounds = 0;
                let all = t.env.emitter.flush_due(end);
                t.env.emitter.flush(all).await;
                // A spout with data never waits: let the worker run other tasks now and then.
                tokio::task::coop::consume_budget().await;
                continue;
            }
            // No data right now: send what is buffered, then back off a little (yield first,
            // then sleep up to 1 ms), waking early for acks and control.
            t.env.emitter.flush(true).await;
            idle_rounds = idle_rounds.saturating_add(1);
            if idle_rounds < 8 {
                tokio::task::yield_now().await;
                continue;
            }
        } else {
            t.env.emitter.flush(true).await;
        }
        let wait = if active && room {
            Instant::now() + Duration::from_millis(1)
        } else {
            next_sweep
        };
        tokio::select! {
            Some(b) = next_notices(&notices, &mut notices_open) => t.on_notices(b),
            _ = control.changed() => control_seen = true,
            _ = tokio::time::sleep_until(wait.into()) => {}
        }
    }
    t.close().await;
}

/// The next batch of acker notices; never ready once the queue is closed (no ackers, or they
/// ended), so a wait on it does not spin.
async fn next_notices(
    notices: &flume::Receiver<Vec<SpoutNotice>>,
    open: &mut bool,
) -> Option<Vec<SpoutNotice>> {
    if *open {
        match notices.recv_async().await {
            Ok(b) => return Some(b),
            Err(_) => *open = false,
        }
    }
    std::future::pending().await
}

impl<S: Spout> SpoutTask<S> {
    /// Calls a synchronous spout method, treating a panic as a task failure.
    fn call_sync(&mut self, f: impl FnOnce(&mut S)) {
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut self.spout))) {
            self.failed_instance(panic_message(&*p));
        }
    }

    /// Records that the instance failed; the restart happens at the next `next_tuple`.
    fn failed_instance(&mut self, why: String) {
        self.errors.report(
            &self.env.ctx,
            &self.env.metrics,
            "spout failed; restarting it",
            &why,
        );
        self.restart_pending = true;
    }

    async fn next_tuple(&mut self) -> usize {
        if self.restart_pending {
            self.restart().await;
        }
        let mut out = SpoutCollector {
            emitter: &mut self.env.emitter,
            pending: &mut self.pending,
            now: None,
            ack_now: &mut self.ack_now,
            fail_now: &mut self.fail_now,
            emitted: 0,
        };
        let result = AssertUnwindSafe(self.spout.next_tuple(&mut out))
            .catch_unwind()
            .await;
        let emitted = out.emitted;
        if let Some(e) = self.env.emitter.take_error() {
            self.errors
                .report(&self.env.ctx, &self.env.metrics, "spout emit refused", &e);
        }
        self.settle_now();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed_instance(e.to_string()),
            Err(p) => self.failed_instance(panic_message(&*p)),
        }
        emitted
    }

    /// Acks and fails decided during the last call (acking off; refused emits).
    fn settle_now(&mut self) {
        let acked = std::mem::take(&mut self.ack_now);
        let failed = std::mem::take(&mut self.fail_now);
        if acked.is_empty() && failed.is_empty() {
            return;
        }
        TaskMetrics::add(&self.env.metrics.acked, acked.len() as u64);
        TaskMetrics::add(&self.env.metrics.failed, failed.len() as u64);
        for id in acked {
            self.call_sync(|s| s.ack(id));
        }
        for id in failed {
            self.call_sync(|s| s.fail(id));
        }
    }

    /// Replaces a failed instance; every tree the old one had pending is failed to the new one.
    async fn restart(&mut self) {
        self.restart_pending = false;
        self.env.metrics.restarts.fetch_add(1, Relaxed);
        let old = std::mem::replace(
            &mut self.spout,
            open_spout(
                &self.factory,
                &self.env.ctx,
                &self.env.metrics,
                &mut self.errors,
            )
            .await,
        );
        drop(old);
        let orphans: Vec<_> = self.pending.drain().map(|(_, p)| p.msg_id).collect();
        TaskMetrics::add(&self.env.metrics.failed, orphans.len() as u64);
        for id in orphans {
            self.call_sync(|s| s.fail(id));
        }
        self.call_sync(|s| s.activate());
    }

    fn on_notices(&mut self, batch: Vec<SpoutNotice>) {
        let now = Instant::now();
        let mut latencies = Vec::new();
        let (mut acked, mut failed) = (0u64, 0u64);
        for n in batch {
            match n {
                SpoutNotice::Complete(root) => {
                    if let Some(p) = self.pending.remove(&root) {
                        latencies.push(now.saturating_duration_since(p.emitted_at));
                        acked += 1;
                        self.call_sync(|s| s.ack(p.msg_id));
                    }
                }
                SpoutNotice::Failed(root) => {
                    if let Some(p) = self.pending.remove(&root) {
                        failed += 1;
                        self.call_sync(|s| s.fail(p.msg_id));
                    }
                }
            }
        }
        let m = &self.env.metrics;
        TaskMetrics::add(&m.acked, acked);
        TaskMetrics::add(&m.failed, failed);
        if !latencies.is_empty() {
            m.record_complete(latencies.into_iter());
        }
    }

    /// Fails every tree pending for longer than the message timeout.
    fn sweep(&mut self, now: Instant) {
        let timeout = self.timeout;
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.emitted_at) >= timeout)
            .map(|(root, _)| *root)
            .collect();
        if expired.is_empty() {
            return;
        }
        TaskMetrics::add(&self.env.metrics.timed_out, expired.len() as u64);
        for root in expired {
            if let Some(p) = self.pending.remove(&root) {
                self.call_sync(|s| s.fail(p.msg_id));
            }
        }
    }

    fn publish_state(&mut self) {
        self.env
            .metrics
            .pending
            .store(self.pending.len() as u64, Relaxed);
        let mut exhausted = false;
        if self.pending.is_empty() && !self.restart_pending {
            self.call_sync(|s| exhausted = s.is_exhausted());
        }
        let m = &self.env.metrics;
        if m.idle.load(Relaxed) != exhausted {
            m.idle.store(exhausted, Relaxed);
        }
    }

    /// The end: trees still pending are failed (the spout may persist them for a later replay),
    /// then the spout is closed and the last batches are sent.
    async fn close(mut self) {
        let left: Vec<_> = self.pending.drain().map(|(_, p)| p.msg_id).collect();
        if !left.is_empty() {
            tracing::warn!(
                component = self.env.ctx.component_id(),
                task = self.env.ctx.task_index(),
                trees = left.len(),
                "stop deadline reached with trees pending; failing them"
            );
            TaskMetrics::add(&self.env.metrics.failed, left.len() as u64);
            TaskMetrics::add(&self.env.metrics.abandoned_at_stop, left.len() as u64);
            for id in left {
                self.call_sync(|s| s.fail(id));
            }
        }
        if AssertUnwindSafe(self.spout.close())
            .catch_unwind()
            .await
            .is_err()
        {
            self.errors
                .report(&self.env.ctx, &self.env.metrics, "spout close", &"panicked");
        }
        self.env.emitter.flush(true).await;
        self.env.metrics.pending.store(0, Relaxed);
    }
}

/// How a bolt task drives its component: one implementation for basic bolts, one for full bolts.
pub(crate) trait BoltDriver: Send + 'static {
    /// Makes and prepares the first instance.
    fn start(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// Executes a batch of inputs.
    fn execute_batch(
        &mut self,
        batch: Vec<Tuple>,
        env: &mut TaskEnv,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// Delivers a tick.
    fn tick(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// The input queue ran dry after input was executed (see [`Bolt::input_drained`]).
    fn input_drained(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
    /// The input is closed and drained: clean up.
    fn finish(&mut self, env: &mut TaskEnv) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs one bolt task until its input is closed (every upstream task ended) and drained.
pub(crate) async fn run_bolt<D: BoltDriver>(
    mut driver: D,
    mut env: TaskEnv,
    inbox: flume::Receiver<Vec<Tuple>>,
    tick: Option<Duration>,
) {
    let gauge = env.metrics.queue.clone();
    driver.start(&mut env).await;
    let mut next_tick = tick.map(|t| Instant::now() + t);
    // Input was executed since the queue last ran dry: the bolt is told once per idle moment,
    // never per tuple, and never while the queue keeps input waiting.
    let mut drained_due = false;
    loop {
        let batch = match inbox.try_recv() {
            Ok(b) => b,
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
                tokio::select! {
                    b = inbox.recv_async() => match b {
                        Ok(b) => b,
                        Err(_) => break,
                    },
                    _ = tick_wait => {
                        driver.tick(&mut env).await;
                        next_tick = tick.map(|t| Instant::now() + t);
                        continue;
                    }
                }
            }
        };
        gauge.sub(batch.len());
        env.emitter.taps.executing(&batch);
        driver.execute_batch(batch, &mut env).await;
        drained_due = true;
        // A task whose queue never runs dry never waits: let the worker run others now and then.
        tokio::task::coop::consume_budget().await;
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_tick, tick)
            && now >= at
        {
            driver.tick(&mut env).await;
            next_tick = Some(now + every);
        }
        let all = env.emitter.flush_due(now);
        env.emitter.flush(all).await;
    }
    driver.finish(&mut env).await;
    env.emitter.flush(true).await;
}

/// Drives a [`BasicBolt`]: acks each input after `execute` returns `Ok`, fails it otherwise.
pub(crate) struct BasicDriver<B: BasicBolt> {
    pub(crate) factory: Arc<dyn Fn() -> B + Send + Sync>,
    pub(crate) bolt: Option<B>,
    errors: ErrorLog,
}

impl<B: BasicBolt> BasicDriver<B> {
    pub(crate) fn new(factory: Arc<dyn Fn() -> B + Send + Sync>) -> Self {
        BasicDriver {
            factory,
            bolt: None,
            errors: ErrorLog::new(),
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
                Some(panic_message(&*p))
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
    }

    async fn execute_batch(&mut self, batch: Vec<Tuple>, env: &mut TaskEnv) {
        let n = batch.len() as u64;
        let start = Instant::now();
        for input in &batch {
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
                    Err(panic_message(&*p))
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
        if let Some(mut bolt) = self.bolt.take() {
            let none = Anchors::new();
            let mut out = BasicCollector {
                emitter: &mut env.emitter,
                anchors: &none,
                ack_val: 0,
            };
            let why = match std::panic::catch_unwind(AssertUnwindSafe(|| bolt.finish(&mut out))) {
                Ok(Ok(())) => env.emitter.take_error().map(|e| e.to_string()),
                Ok(Err(e)) => Some(e.to_string()),
                Err(p) => Some(panic_message(&*p)),
            };
            if let Some(why) = why {
                self.errors
                    .report(&env.ctx, &env.metrics, "bolt finish failed", &why);
            }
            if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| bolt.cleanup())) {
                self.errors
                    .report(&env.ctx, &env.metrics, "bolt cleanup", &panic_message(&*p));
            }
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
}

impl<B: Bolt> FullDriver<B> {
    pub(crate) fn new(factory: Arc<dyn Fn() -> B + Send + Sync>) -> Self {
        FullDriver {
            factory,
            bolt: None,
            ledger: Ledger::default(),
            errors: ErrorLog::new(),
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
    }

    async fn execute_batch(&mut self, batch: Vec<Tuple>, env: &mut TaskEnv) {
        let n = batch.len() as u64;
        let start = Instant::now();
        for mut input in batch {
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
    use crate::collector::BasicCollector;
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
                    tick_intervals: Vec::new(),
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
        tx.send(batch(0..3)).expect("inbox");
        tx.send(batch(3..5)).expect("inbox");
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
        tx.send(batch(5..7)).expect("inbox");
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
