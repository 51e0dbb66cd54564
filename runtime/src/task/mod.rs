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
//! the factory and prepared again, with back-off while that keeps failing. With checkpoints, an
//! instance lost with state, or under exactly-once any lost instance, also stops the topology
//! for a resume from the newest checkpoint ([`TaskEnv::instance_lost`]). A stop that ends in a
//! savepoint does not finish stateful bolts ([`StopState`]).
//!
//! - this module: what both loops share — [`Control`], [`TaskEnv`], the task starters, the
//!   error log and the restart back-off;
//! - [`spout`]: the spout loop (acker notices, `next_tuple` rounds, timeouts, stop);
//! - [`bolt`]: the bolt loop and its two drivers (basic bolts acked for them, full bolts).

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use smol_str::SmolStr;

use crate::acker::SpoutNotice;
use crate::checkpoint::{CheckpointId, Inbound, TaskCheckpoints, TaskReport};
use crate::collector::Emitter;
use crate::component::{BasicBolt, Bolt, Declared, Spout, TaskContext, declared};
use crate::config::Guarantee;
use crate::metrics::TaskMetrics;
use crate::state::{Chains, Restore, Snapshot, write_parts};

mod bolt;
mod spout;

pub(crate) use bolt::{BasicDriver, BoltDriver, FullDriver, run_bolt};
pub(crate) use spout::run_spout;

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
    /// Checkpoints are taken: this task's side of them.
    pub(crate) checkpoints: Option<CheckpointSide>,
    /// The state to resume from, given to the first instance.
    pub(crate) restore: Option<Restore>,
    /// Where a task reports an error that must stop the topology (state that cannot be
    /// restored, or lost with a failed instance).
    pub(crate) fatal: Arc<std::sync::OnceLock<Fatal>>,
    /// How the topology's stop went, as far as the tasks must know.
    pub(crate) stop: Arc<StopState>,
    /// A bolt task's emptied input batches go back to its senders through this.
    pub(crate) batch_pool: Option<crate::collector::BatchPool>,
}

/// What the handle tells the tasks about a stop that takes a savepoint (Flink's stop with a
/// savepoint, without `--drain`): set before the spouts are told to stop, read by the bolt
/// tasks. The savepoint holds what stateful bolts hold (open windows, counts not emitted yet),
/// and a later run continues it: emitting it at the stop as well would emit it twice.
#[derive(Debug, Default)]
pub(crate) struct StopState {
    /// A stop is taking a savepoint: under exactly-once, stateful bolts take no more ticks
    /// (what a tick would fire stays in the savepoint, or is fired by `finish` if no savepoint
    /// completes).
    savepoint_asked: AtomicBool,
    /// The savepoint the stop ended in (0: none, or not complete): stateful bolts are not
    /// finished, as their state goes on in the run that resumes from it.
    ended_in: AtomicU64,
}

impl StopState {
    /// A stop starts taking a savepoint.
    pub(crate) fn savepoint_asked(&self) {
        self.savepoint_asked.store(true, Release);
    }

    /// The stop's savepoint `id` completed.
    pub(crate) fn ended_in(&self, id: CheckpointId) {
        self.ended_in.store(id, Release);
    }

    /// Whether a stop is taking (or took) a savepoint.
    #[inline]
    pub(crate) fn is_taking_savepoint(&self) -> bool {
        self.savepoint_asked.load(Acquire)
    }

    /// The savepoint the stop ended in, if one completed.
    pub(crate) fn savepoint(&self) -> Option<CheckpointId> {
        Some(self.ended_in.load(Acquire)).filter(|id| *id != 0)
    }
}

/// An error that stops the whole topology.
#[derive(Debug, Clone)]
pub(crate) struct Fatal {
    /// What happened, naming the component and task.
    pub(crate) why: String,
    /// A run resumed from the newest checkpoint repairs it (an instance holding state failed).
    pub(crate) restart: bool,
}

impl TaskEnv {
    /// Stops the topology with `why` (the first such error wins); `restart`: resuming from
    /// the newest checkpoint repairs it.
    pub(crate) fn fatal(&self, why: String, restart: bool) {
        tracing::error!(
            task_id = self.ctx.task_id().0,
            "{why}; stopping the topology"
        );
        let _ = self.fatal.set(Fatal {
            why: format!(
                "{}[{}]: {why}",
                self.ctx.component_id(),
                self.ctx.task_index()
            ),
            restart,
        });
    }

    /// An instance failed and was dropped. With checkpoints, when it held state, or under
    /// exactly-once whatever it is (no input is tracked, so nothing replays the input it was
    /// processing, what it held, or what a spout had emitted since the last checkpoint), a
    /// fresh instance cannot go on where it was: the topology stops, to resume from the newest
    /// checkpoint (as Flink restarts a job on any task's failure). Under at-least-once a
    /// stateless instance's inputs are failed and replayed by their spouts: the run goes on.
    pub(crate) fn instance_lost(&self, held_state: bool, why: &str) {
        if self.checkpoints.is_none() {
            return;
        }
        let lost = if held_state {
            "holding state that only the newest checkpoint has"
        } else if self.ctx.config().guarantee == Guarantee::ExactlyOnce {
            "under exactly-once, where no input is replayed: what it was processing and held is lost"
        } else {
            return;
        };
        self.fatal(
            format!("failed ({why}) {lost}; the topology resumes from the newest checkpoint"),
            true,
        );
    }

    /// Whether this task's state goes on in a later run rather than ending here: the stop
    /// ended in a savepoint, or the topology failed in a way a run resumed from the newest
    /// checkpoint repairs (that run replays what came after it). A stateful bolt is then not
    /// finished: what it holds is fired once, by the run that continues it.
    pub(crate) fn state_goes_on(&self) -> bool {
        self.stop.savepoint().is_some() || self.fatal.get().is_some_and(|f| f.restart)
    }
}

/// A task's side of checkpoints: where it reports, its chains of keyed files, the write of its
/// last snapshot (writes happen in order, off the task).
pub(crate) struct CheckpointSide {
    pub(crate) links: TaskCheckpoints,
    chains: Arc<std::sync::Mutex<Chains>>,
    /// The last write failed: write keyed state whole next time.
    force_whole: Arc<std::sync::atomic::AtomicBool>,
    last_write: Option<tokio::task::JoinHandle<()>>,
    /// The newest checkpoint this task has started.
    pub(crate) last_started: CheckpointId,
    /// The newest completed checkpoint this task was told of.
    last_completed: CheckpointId,
}

impl CheckpointSide {
    pub(crate) fn new(links: TaskCheckpoints) -> CheckpointSide {
        CheckpointSide {
            links,
            chains: Default::default(),
            force_whole: Default::default(),
            last_write: None,
            last_started: 0,
            last_completed: 0,
        }
    }

    /// A snapshot for checkpoint `id`.
    pub(crate) fn snapshot(&mut self, id: CheckpointId) -> Snapshot {
        self.last_started = self.last_started.max(id);
        let force = self.force_whole.swap(false, Relaxed);
        Snapshot::new(id, self.links.key_groups, force)
    }

    /// Writes a taken snapshot off the task, after the previous one, then reports it. `taken`
    /// is the component's answer (an error fails this checkpoint).
    pub(crate) fn write(
        &mut self,
        ctx: &TaskContext,
        snap: Snapshot,
        taken: Result<(), String>,
        alignment: Duration,
        pause: Duration,
    ) {
        let id = snap.id;
        let component: SmolStr = ctx.component_id().into();
        let index = ctx.task_index();
        let reports = self.links.reports.clone();
        let storage = self.links.checkpoints.storage().clone();
        let chains = self.chains.clone();
        let force_whole = self.force_whole.clone();
        let previous = self.last_write.take();
        let taken = taken.and_then(|()| match snap.error {
            Some(e) => Err(e),
            None => Ok(snap.parts),
        });
        self.last_write = Some(tokio::spawn(async move {
            if let Some(p) = previous {
                let _ = p.await;
            }
            let outcome = match taken {
                Err(e) => Err(e),
                Ok(parts) => {
                    let name = component.clone();
                    tokio::task::spawn_blocking(move || {
                        let mut chains = chains.lock().unwrap_or_else(|p| p.into_inner());
                        let r = write_parts(&*storage, id, &name, index, parts, &mut chains);
                        if r.is_err() {
                            chains.clear();
                            force_whole.store(true, Relaxed);
                        }
                        r
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("the checkpoint writer failed: {e}")))
                }
            };
            let _ = reports.send(TaskReport {
                id,
                component,
                index,
                outcome,
                alignment,
                pause,
            });
        }));
    }

    /// Reports that this task cannot take part in checkpoint `id`.
    pub(crate) fn decline(&mut self, ctx: &TaskContext, id: CheckpointId, why: String) {
        self.last_started = self.last_started.max(id);
        let _ = self.links.reports.send(TaskReport {
            id,
            component: ctx.component_id().into(),
            index: ctx.task_index(),
            outcome: Err(why),
            alignment: Duration::ZERO,
            pause: Duration::ZERO,
        });
    }

    /// The id of a drained stop's final checkpoint, when one was asked for and this task has
    /// not written it yet.
    pub(crate) fn final_id(&mut self) -> Option<CheckpointId> {
        let id = *self.links.final_id.borrow();
        (id > self.last_started).then_some(id)
    }

    /// The newest completed checkpoint, if it changed since the last call.
    pub(crate) fn newly_completed(&mut self) -> Option<CheckpointId> {
        let id = *self.links.completed.borrow();
        (id > self.last_completed).then(|| {
            self.last_completed = id;
            id
        })
    }

    /// Waits for every write started so far (at the end of the task).
    pub(crate) async fn drain(&mut self) {
        if let Some(w) = self.last_write.take() {
            let _ = w.await;
        }
    }
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
        inbox: flume::Receiver<Inbound>,
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
            (None, s.rewinds())
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
            (b.tick_interval(), b.has_state())
        })
    }
    fn spawn(
        &self,
        env: TaskEnv,
        inbox: flume::Receiver<Inbound>,
        tick: Option<Duration>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run_bolt(BasicDriver::new(self.0.clone()), env, inbox, tick))
    }
}

impl<B: Bolt> BoltRunner for FullFn<B> {
    fn declare(&self) -> Result<Declared, String> {
        declared(&*self.0, |b, d| {
            b.declare_outputs(d);
            (b.tick_interval(), b.has_state())
        })
    }
    fn spawn(
        &self,
        env: TaskEnv,
        inbox: flume::Receiver<Inbound>,
        tick: Option<Duration>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(run_bolt(FullDriver::new(self.0.clone()), env, inbox, tick))
    }
}

/// Logs a component's failures without flooding: the first at once, then at most one a second
/// with the count of those not logged. Counts every one.
pub(super) struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    pub(super) fn new() -> ErrorLog {
        ErrorLog {
            last: None,
            suppressed: 0,
        }
    }

    pub(super) fn report(
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
pub(super) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// The first wait before a failed component is made again; it doubles up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts to make a failed component again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
