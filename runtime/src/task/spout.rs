//! The spout task loop: acker notices become `ack`/`fail` calls, `next_tuple` is called in rounds
//! bounded by `max_spout_pending`, pending trees time out, and a stop drains them until its
//! deadline.
//!
//! ```text
//! acker notices ─► ack/fail ─┐   next_tuple ─► collector ─► flush ─► bolt queues
//!                            └── timeouts (sweep of pending trees)
//! ```

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::watch;

use super::{Control, ErrorLog, FIRST_BACKOFF, MAX_BACKOFF, TaskEnv, panic_message};
use crate::acker::{IdMap, SpoutNotice};
use crate::checkpoint::Barrier;
use crate::collector::{PendingTree, SpoutCollector};
use crate::component::{Spout, TaskContext};
use crate::metrics::TaskMetrics;

/// How many times a spout is asked for tuples before its task looks at acks, control and
/// timeouts again (fewer if it runs dry, fills a batch or reaches `max_spout_pending`).
const CALLS_PER_ROUND: usize = 64;

/// The spout's side of a run: instance, pending trees, and bookkeeping between calls.
struct SpoutTask<S: Spout> {
    factory: Arc<dyn Fn() -> S + Send + Sync>,
    spout: S,
    pending: IdMap<PendingTree<S::MessageId>>,
    /// Messages in `pending` (a shared tree holds several); what `max_spout_pending` bounds.
    pending_msgs: usize,
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
    let mut env = env;
    let mut spout = open_spout(&factory, &env.ctx, &env.metrics, &mut errors).await;
    if let Some(r) = env.restore.take() {
        let restored = std::panic::catch_unwind(AssertUnwindSafe(|| spout.restore(&r)));
        let why = match restored {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(panic_message(&*p)),
        };
        if let Some(why) = why {
            env.fatal(
                format!("could not restore checkpoint {}: {why}", r.checkpoint_id()),
                false,
            );
            spout.close().await;
            return;
        }
    }
    let mut t = SpoutTask {
        factory,
        spout,
        pending: IdMap::default(),
        pending_msgs: 0,
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
    // Wakes the task when a checkpoint is asked for or completes (the values are read by
    // `checkpoints`).
    let mut signals = t
        .env
        .checkpoints
        .as_ref()
        .map(|s| (s.links.trigger.clone(), s.links.completed.clone()));
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
        t.checkpoints().await;
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
                _ = checkpoint_signal(&mut signals) => {}
                _ = tokio::time::sleep_until(wait.into()) => {}
            }
            continue;
        }
        let room = t.max_pending.is_none_or(|m| t.pending_msgs < m);
        // A control change not yet seen is taken first: a stop deactivates the spouts before
        // it asks for its savepoint, so a spout that has just sent that savepoint's barrier
        // sees the deactivation here and emits nothing after it.
        if active && room && !control.has_changed().unwrap_or(true) {
            // A round of calls; acks, control and timeouts are looked at between rounds.
            let mut emitted = 0;
            for _ in 0..CALLS_PER_ROUND {
                let n = t.next_tuple().await;
                emitted += n;
                let full = t.max_pending.is_some_and(|m| t.pending_msgs >= m);
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
            _ = checkpoint_signal(&mut signals) => {}
            _ = tokio::time::sleep_until(wait.into()) => {}
        }
    }
    // The last checkpoint (a stop's savepoint) may have completed after the last look.
    t.checkpoints().await;
    t.final_checkpoint();
    t.close().await;
}

/// A checkpoint was asked for or completed; never ready without checkpoints.
pub(super) async fn checkpoint_signal(
    signals: &mut Option<(watch::Receiver<u64>, watch::Receiver<u64>)>,
) {
    match signals {
        Some((trigger, completed)) => {
            let changed = tokio::select! {
                r = trigger.changed() => r,
                r = completed.changed() => r,
            };
            if changed.is_err() {
                // The coordinator is gone: no more checkpoints.
                *signals = None;
            }
        }
        None => std::future::pending().await,
    }
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
    /// A drained stop's final checkpoint: the spout's position at its end, with no barrier
    /// (nothing follows it).
    fn final_checkpoint(&mut self) {
        let Some(id) = self.env.checkpoints.as_mut().and_then(|c| c.final_id()) else {
            return;
        };
        self.settle_now();
        let Some(side) = self.env.checkpoints.as_mut() else {
            return;
        };
        let mut snap = side.snapshot(id);
        let taken =
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.spout.snapshot(&mut snap))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(p) => Err(panic_message(&*p)),
            };
        if let Some(side) = self.env.checkpoints.as_mut() {
            side.write(&self.env.ctx, snap, taken, Duration::ZERO, Duration::ZERO);
        }
    }

    /// Takes a checkpoint the coordinator asked for, and passes on completed ones.
    async fn checkpoints(&mut self) {
        let Some(side) = self.env.checkpoints.as_mut() else {
            return;
        };
        if let Some(done) = side.newly_completed() {
            self.call_sync(|s| s.checkpoint_complete(done));
        }
        let Some(side) = self.env.checkpoints.as_mut() else {
            return;
        };
        let id = *side.links.trigger.borrow();
        if id <= side.last_started {
            return;
        }
        let start = Instant::now();
        // Acks and fails decided so far count before the barrier.
        self.settle_now();
        let side = self.env.checkpoints.as_mut().expect("checked above");
        let mut snap = side.snapshot(id);
        let taken = if self.restart_pending {
            Err("the spout failed and is being restarted".to_string())
        } else {
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.spout.snapshot(&mut snap))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(p) => Err(panic_message(&*p)),
            }
        };
        // The pause is the snapshot's; the wait to put the barrier into a full queue below is
        // backpressure, which the task would have waited anyway.
        let pause = start.elapsed();
        let from = self.env.ctx.task_id();
        self.env
            .emitter
            .barrier(Barrier {
                id,
                from,
                cancel: false,
            })
            .await;
        let side = self.env.checkpoints.as_mut().expect("checked above");
        side.write(&self.env.ctx, snap, taken, Duration::ZERO, pause);
    }

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
        // Under exactly-once a fresh instance cannot know what the old one emitted since the
        // last checkpoint (there are no acks to replay by): that stops the run.
        self.env.instance_lost(false, &why);
        self.restart_pending = true;
    }

    async fn next_tuple(&mut self) -> usize {
        if self.restart_pending {
            self.restart().await;
        }
        let mut out = SpoutCollector {
            emitter: &mut self.env.emitter,
            pending: &mut self.pending,
            pending_msgs: &mut self.pending_msgs,
            shared: None,
            // Sixteen trees or more fill `max_spout_pending`: as each completes, the spout
            // emits again, so the window refills in small steps, not all at once.
            shared_limit: self.max_pending.map_or(usize::MAX, |m| (m / 16).max(1)),
            now: None,
            ack_now: &mut self.ack_now,
            fail_now: &mut self.fail_now,
            emitted: 0,
        };
        let result = AssertUnwindSafe(self.spout.next_tuple(&mut out))
            .catch_unwind()
            .await;
        out.close_shared();
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
        self.pending_msgs = 0;
        let orphans: Vec<_> = self.pending.drain().flat_map(|(_, p)| p.msgs).collect();
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
                        let latency = now.saturating_duration_since(p.emitted_at);
                        self.pending_msgs -= p.msgs.len();
                        acked += p.msgs.len() as u64;
                        latencies.push((latency, p.msgs.len() as u64));
                        for id in p.msgs {
                            self.call_sync(|s| s.ack(id));
                        }
                    }
                }
                SpoutNotice::Failed(root) => {
                    if let Some(p) = self.pending.remove(&root) {
                        self.pending_msgs -= p.msgs.len();
                        failed += p.msgs.len() as u64;
                        for id in p.msgs {
                            self.call_sync(|s| s.fail(id));
                        }
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
        for root in expired {
            if let Some(p) = self.pending.remove(&root) {
                self.pending_msgs -= p.msgs.len();
                TaskMetrics::add(&self.env.metrics.timed_out, p.msgs.len() as u64);
                for id in p.msgs {
                    self.call_sync(|s| s.fail(id));
                }
            }
        }
    }

    fn publish_state(&mut self) {
        self.env
            .metrics
            .pending
            .store(self.pending_msgs as u64, Relaxed);
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
        self.pending_msgs = 0;
        let left: Vec<_> = self.pending.drain().flat_map(|(_, p)| p.msgs).collect();
        if !left.is_empty() {
            tracing::warn!(
                component = self.env.ctx.component_id(),
                task = self.env.ctx.task_index(),
                messages = left.len(),
                "stop deadline reached with messages pending; failing them"
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
        if let Some(side) = self.env.checkpoints.as_mut() {
            side.drain().await;
        }
        self.env.metrics.pending.store(0, Relaxed);
    }
}
