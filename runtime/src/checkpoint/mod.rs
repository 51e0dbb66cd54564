//! Checkpoints: aligned barrier snapshots (Chandy–Lamport, as Flink's asynchronous barrier
//! snapshots) of every spout's read position and every task's state.
//!
//! ```text
//!  coordinator ─trigger(id)─► spout tasks: snapshot position, send Barrier(id) down every queue
//!       ▲                         │ (after the tuples emitted before it)
//!       │                         ▼
//!       │            bolt task: Barrier(id) from every upstream task (tuples of inputs that
//!       │                       already delivered it wait, bounded) ─► snapshot state ─►
//!       │                       Barrier(id) down every queue
//!       └──── TaskReport (files written) ◄── every task
//!  all reported ─► manifest committed (the checkpoint is complete) ─► completed(id) to every task
//!                  (two-phase-commit sinks publish, spouts commit offsets) ─► old ones pruned
//! ```
//!
//! - [`storage`]: [`storage::CheckpointStorage`], the files' home, and [`storage::LocalDir`];
//! - [`manifest`]: the [`manifest::Manifest`] that makes a checkpoint complete, and
//!   [`manifest::Checkpoints`]: list, load, commit, prune;
//! - this module: what flows in the queues (`Inbound`: tuples or a barrier) and the coordinator
//!   task.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use smol_str::SmolStr;
use tokio::sync::{oneshot, watch};

use crate::config::Guarantee;
use crate::metrics::CheckpointMetrics;
use crate::tuple::{TaskId, Tuple};

pub mod manifest;
pub mod storage;

use manifest::{Checkpoints, ComponentState, Manifest, TaskState};

/// A checkpoint's id: 1, 2, 3, ... in the order they were started, across runs of a topology.
pub type CheckpointId = u64;

/// A checkpoint marker in a queue, behind every tuple its sender emitted before the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Barrier {
    pub(crate) id: CheckpointId,
    /// The sending task.
    pub(crate) from: TaskId,
    /// The sender declined this checkpoint: stop aligning it, pass the cancel on.
    pub(crate) cancel: bool,
}

/// What a bolt task's queue carries: a batch of tuples from one upstream task, or a barrier.
#[derive(Debug)]
pub(crate) enum Inbound {
    Tuples(Vec<Tuple>),
    Barrier(Barrier),
}

impl From<Vec<Tuple>> for Inbound {
    fn from(batch: Vec<Tuple>) -> Inbound {
        Inbound::Tuples(batch)
    }
}

/// A task's answer to a checkpoint.
#[derive(Debug)]
pub(crate) struct TaskReport {
    pub(crate) id: CheckpointId,
    pub(crate) component: SmolStr,
    pub(crate) index: usize,
    /// Its stored parts, or why it could not take part.
    pub(crate) outcome: Result<TaskState, String>,
    /// From the first barrier to the last (tasks with several upstream tasks).
    pub(crate) alignment: Duration,
    /// How long the task stopped processing to take its snapshot.
    pub(crate) pause: Duration,
}

/// The task's side of checkpoints: when to take one, where to report, what completed.
#[derive(Clone, Debug)]
pub(crate) struct TaskCheckpoints {
    /// Spouts: the id of the checkpoint to take next (0 = none yet).
    pub(crate) trigger: watch::Receiver<CheckpointId>,
    /// The newest completed checkpoint.
    pub(crate) completed: watch::Receiver<CheckpointId>,
    pub(crate) reports: flume::Sender<TaskReport>,
    pub(crate) checkpoints: Checkpoints,
    pub(crate) key_groups: u32,
    /// How many upstream tasks send to this task (barriers to wait for).
    pub(crate) upstream: usize,
    pub(crate) alignment_buffer: usize,
    /// A drained stop's final checkpoint (0 = none): each task ends by writing its state into
    /// it, after `finish`.
    pub(crate) final_id: watch::Receiver<CheckpointId>,
}

/// What the handle may ask of the coordinator.
pub(crate) enum Command {
    /// Take a checkpoint now, marked as a savepoint, and say how it went.
    Savepoint(oneshot::Sender<Result<CheckpointId, String>>),
    /// The topology is stopping with every input drained: each task writes its state into
    /// one last checkpoint as it ends, with no barrier (nothing is in flight). Says its id.
    Final(oneshot::Sender<CheckpointId>),
    /// A stop is done with checkpoints (its savepoint completed, or it gives up on it): the
    /// one in flight or queued fails, and no other starts, so none completes with state that
    /// the stop changes afterwards (a bolt's `finish`). Answers once done: a savepoint's own
    /// answer then says for certain whether it completed.
    Close(oneshot::Sender<()>),
}

/// One checkpoint being taken.
struct InFlight {
    id: CheckpointId,
    started: Instant,
    deadline: Instant,
    savepoint: bool,
    reply: Option<oneshot::Sender<Result<CheckpointId, String>>>,
    tasks: Vec<Option<TaskState>>,
    missing: usize,
    alignment: Duration,
    pause: Duration,
}

/// Starts checkpoints, gathers the tasks' reports, commits manifests.
pub(crate) struct Coordinator {
    pub(crate) checkpoints: Checkpoints,
    pub(crate) topology: SmolStr,
    pub(crate) guarantee: Guarantee,
    pub(crate) key_groups: u32,
    pub(crate) retained: usize,
    pub(crate) interval: Duration,
    /// Every task, in task id order: (component, index, parallelism).
    pub(crate) tasks: Vec<(SmolStr, usize, usize)>,
    pub(crate) next_id: CheckpointId,
    pub(crate) trigger: watch::Sender<CheckpointId>,
    pub(crate) completed: watch::Sender<CheckpointId>,
    pub(crate) final_id: watch::Sender<CheckpointId>,
    pub(crate) reports: flume::Receiver<TaskReport>,
    pub(crate) commands: flume::Receiver<Command>,
    pub(crate) metrics: Arc<CheckpointMetrics>,
    /// Set when the topology failed (an instance holding state was lost): from then on no
    /// checkpoint may complete, as the state is no longer whole.
    pub(crate) failed: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// A checkpoint not complete within this time is abandoned.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(600);

impl Coordinator {
    /// Runs until the handle is gone (its command sender dropped).
    pub(crate) async fn run(mut self) {
        let mut next_trigger = Instant::now() + self.interval;
        let mut inflight: Option<InFlight> = None;
        let mut commands_open = true;
        let mut queued_savepoint: Option<oneshot::Sender<Result<CheckpointId, String>>> = None;
        let mut closed = false;
        loop {
            if inflight.is_none()
                && let Some(reply) = queued_savepoint.take()
            {
                inflight = Some(self.start(true, Some(reply)));
            }
            let deadline = inflight.as_ref().map(|f| f.deadline);
            let periodic = inflight.is_none()
                && commands_open
                && !closed
                && !self.interval.is_zero()
                && !(self.failed)();
            tokio::select! {
                _ = tokio::time::sleep_until(next_trigger.into()), if periodic => {
                    inflight = Some(self.start(false, None));
                }
                c = self.commands.recv_async(), if commands_open => match c {
                    Ok(Command::Savepoint(reply)) => {
                        if inflight.is_none() {
                            inflight = Some(self.start(true, Some(reply)));
                        } else {
                            queued_savepoint = Some(reply);
                        }
                    }
                    Ok(Command::Final(reply)) => {
                        // One in flight is abandoned: its barriers cannot finish anymore.
                        if let Some(f) = inflight.take() {
                            self.fail(f, "the topology is stopping".into());
                        }
                        let f = self.start_final();
                        let _ = reply.send(f.id);
                        inflight = Some(f);
                    }
                    Ok(Command::Close(done)) => {
                        let why = "the topology is stopping without it";
                        if let Some(f) = inflight.take() {
                            self.fail(f, why.into());
                        }
                        if let Some(reply) = queued_savepoint.take() {
                            let _ = reply.send(Err(why.into()));
                        }
                        closed = true;
                        let _ = done.send(());
                    }
                    Err(_) => commands_open = false,
                },
                r = self.reports.recv_async() => match r {
                    Ok(r) => {
                        if let Some(f) = inflight.as_mut().filter(|f| f.id == r.id) {
                            if let Err(why) = self.on_report(f, r) {
                                let f = inflight.take().expect("in flight");
                                self.fail(f, why);
                                next_trigger = Instant::now() + self.interval;
                            } else if f.missing == 0 {
                                let f = inflight.take().expect("in flight");
                                self.complete(f).await;
                                next_trigger = Instant::now() + self.interval;
                            }
                        }
                    }
                    // Every task has ended.
                    Err(_) => break,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => {
                    let f = inflight.take().expect("in flight");
                    self.fail(f, format!("not complete within {CHECKPOINT_TIMEOUT:?}"));
                    next_trigger = Instant::now() + self.interval;
                }
            }
            if !commands_open && inflight.is_none() && queued_savepoint.is_none() {
                break;
            }
        }
        if let Some(f) = inflight {
            self.fail(f, "the topology stopped".into());
        }
    }

    fn start(
        &mut self,
        savepoint: bool,
        reply: Option<oneshot::Sender<Result<CheckpointId, String>>>,
    ) -> InFlight {
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        self.trigger.send_replace(id);
        InFlight {
            id,
            started: now,
            deadline: now + CHECKPOINT_TIMEOUT,
            savepoint,
            reply,
            tasks: vec![None; self.tasks.len()],
            missing: self.tasks.len(),
            alignment: Duration::ZERO,
            pause: Duration::ZERO,
        }
    }

    /// The final checkpoint of a drained stop: no trigger, the tasks write it as they end.
    fn start_final(&mut self) -> InFlight {
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        self.final_id.send_replace(id);
        InFlight {
            id,
            started: now,
            deadline: now + CHECKPOINT_TIMEOUT,
            savepoint: true,
            reply: None,
            tasks: vec![None; self.tasks.len()],
            missing: self.tasks.len(),
            alignment: Duration::ZERO,
            pause: Duration::ZERO,
        }
    }

    fn on_report(&self, f: &mut InFlight, r: TaskReport) -> Result<(), String> {
        let state = r
            .outcome
            .map_err(|why| format!("{}[{}]: {why}", r.component, r.index))?;
        let slot = self
            .tasks
            .iter()
            .position(|(c, i, _)| *c == r.component && *i == r.index)
            .ok_or_else(|| format!("a report from unknown task {}[{}]", r.component, r.index))?;
        if f.tasks[slot].replace(state).is_none() {
            f.missing -= 1;
        }
        f.alignment = f.alignment.max(r.alignment);
        f.pause = f.pause.max(r.pause);
        Ok(())
    }

    fn fail(&self, f: InFlight, why: String) {
        self.metrics.failed.fetch_add(1, Relaxed);
        tracing::warn!(
            checkpoint = f.id,
            "checkpoint failed: {why}; processing goes on"
        );
        if let Some(reply) = f.reply {
            let _ = reply.send(Err(why));
        }
    }

    async fn complete(&self, mut f: InFlight) {
        if (self.failed)() {
            self.fail(f, "the topology failed; its state is not whole".into());
            return;
        }
        let states = std::mem::take(&mut f.tasks);
        let mut components: std::collections::BTreeMap<String, ComponentState> = Default::default();
        for ((component, index, parallelism), state) in self.tasks.iter().zip(states) {
            let c = components
                .entry(component.to_string())
                .or_insert_with(|| ComponentState {
                    parallelism: *parallelism,
                    tasks: vec![TaskState::default(); *parallelism],
                });
            c.tasks[*index] = state.unwrap_or_default();
        }
        let duration = f.started.elapsed();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let manifest = Manifest {
            id: f.id,
            topology: self.topology.to_string(),
            completed_at_ms: now_ms,
            duration_ms: duration.as_millis() as u64,
            guarantee: self.guarantee,
            max_parallelism: self.key_groups,
            savepoint: f.savepoint,
            components,
        };
        let checkpoints = self.checkpoints.clone();
        let retained = self.retained;
        let bytes = manifest.bytes();
        let written = tokio::task::spawn_blocking(move || {
            checkpoints.commit(&manifest)?;
            if let Err(e) = checkpoints.prune(retained) {
                tracing::warn!("pruning old checkpoints: {e}");
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                let m = &self.metrics;
                m.completed.fetch_add(1, Relaxed);
                m.last_id.store(f.id, Relaxed);
                m.last_duration_ms
                    .store(duration.as_millis() as u64, Relaxed);
                m.last_bytes.store(bytes, Relaxed);
                m.last_alignment_us
                    .store(f.alignment.as_micros() as u64, Relaxed);
                m.last_pause_us.store(f.pause.as_micros() as u64, Relaxed);
                m.last_completed_at_ms.store(now_ms, Relaxed);
                m.max_pause_us
                    .fetch_max(f.pause.as_micros() as u64, Relaxed);
                m.max_duration_ms
                    .fetch_max(duration.as_millis() as u64, Relaxed);
                tracing::debug!(checkpoint = f.id, ?duration, bytes, "checkpoint complete");
                self.completed.send_replace(f.id);
                if let Some(reply) = f.reply {
                    let _ = reply.send(Ok(f.id));
                }
            }
            Err(e) => {
                let id = f.id;
                self.fail(f, format!("writing the manifest of checkpoint {id}: {e}"));
            }
        }
    }
}
