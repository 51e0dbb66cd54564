//! Running a topology: wiring tasks together, the handle that watches and stops them, and
//! [`LocalCluster`], which owns the worker threads.
//!
//! [`submit`] lays out the tasks (consecutive task ids per component, then the ackers), makes one
//! bounded queue per bolt and acker task and one notice queue per spout task, gives every task an
//! emitter holding the senders of exactly the queues its streams reach, and spawns the tasks.
//! Nobody else holds a sender, so a queue closes when every task upstream of it has ended: a stop
//! runs down the graph by itself, draining each queue on the way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use smol_str::SmolStr;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::acker::{self, Acker};
use crate::checkpoint::manifest::{Checkpoints, Manifest};
use crate::checkpoint::storage::LocalDir;
use crate::checkpoint::{CheckpointId, Command, Coordinator, Inbound, TaskCheckpoints};
use crate::collector::{AckerLink, BatchPool, Emitter, OutStream, Subscription, Target};
use crate::component::{ContextShared, TaskContext};
use crate::config::Guarantee;
use crate::grouping::Router;
use crate::metrics::{CheckpointMetrics, MetricsRegistry, MetricsSnapshot, TaskMetrics};
use crate::state::{OldTask, Restore, RestoreSource};
use crate::tap::{Direction, TapError, TapHub, TapOptions, TapReceiver};
use crate::task::{CheckpointSide, Control, Fatal, StopState, TaskEnv};
use crate::topology::{ComponentFactory, Topology};
use crate::tuple::{StreamSchema, TaskId};

/// The id of the runtime's acker component in metrics.
pub const ACKER_ID: &str = "__acker";

/// A running topology: read its metrics, wait for a condition, stop it.
///
/// Dropping the handle without [`stop`](TopologyHandle::stop) stops the spouts at once (trees in
/// flight are failed) and lets the rest wind down in the background.
pub struct TopologyHandle {
    name: SmolStr,
    started: Instant,
    registry: Arc<MetricsRegistry>,
    control: watch::Sender<Control>,
    tasks: Vec<JoinHandle<()>>,
    spouts: Vec<Arc<TaskMetrics>>,
    taps: Arc<TapHub>,
    /// Checkpoints are taken: the coordinator's command queue and task.
    coordinator: Option<(flume::Sender<Command>, JoinHandle<()>)>,
    checkpoints: Option<Arc<CheckpointMetrics>>,
    fatal: Arc<OnceLock<Fatal>>,
    /// What the tasks must know of a stop that takes a savepoint.
    stop: Arc<StopState>,
}

/// How a run starts with respect to the topology's checkpoints.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Start with empty state and the spouts' own start positions, ignoring checkpoints
    /// (`topo run --fresh`). New checkpoints are still taken.
    pub fresh: bool,
    /// Resume from this checkpoint rather than the newest: a checkpoint id in the topology's
    /// checkpoint directory, or the path of a manifest (`.../chk-0000000042.json`).
    pub from_checkpoint: Option<String>,
    /// Resume even when the checkpoint holds state of a component the topology no longer has
    /// (that state is dropped). Without it, that is an error naming the component.
    pub allow_missing_state: bool,
}

/// Why a topology could not start from its checkpoint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Reads the figures of a running topology (see [`TopologyHandle::metrics_reader`]); after the
/// topology stops it keeps returning the final figures. [`follow`](MetricsReader::follow)
/// points it (and every clone) at another run: the run that replaced it after a restart.
#[derive(Clone)]
pub struct MetricsReader {
    run: Arc<std::sync::RwLock<ReaderRun>>,
}

/// What a reader reads: one run's start, registry and taps.
#[derive(Clone)]
struct ReaderRun {
    started: Instant,
    registry: Arc<MetricsRegistry>,
    taps: Arc<TapHub>,
}

impl MetricsReader {
    fn run(&self) -> ReaderRun {
        self.run.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every task's figures now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let run = self.run();
        run.registry.snapshot(run.started.elapsed())
    }

    /// Reads `handle`'s run from now on (every clone of this reader too).
    pub fn follow(&self, handle: &TopologyHandle) {
        let next = handle.metrics_reader().run();
        *self.run.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Taps a component: see [`TopologyHandle::tap`].
    pub fn tap(
        &self,
        component: &str,
        direction: Direction,
        rate: f64,
    ) -> Result<TapReceiver, TapError> {
        self.run()
            .taps
            .tap(component, &TapOptions::new(direction, rate))
    }

    /// Taps a component with every option: see [`TopologyHandle::tap_with`].
    pub fn tap_with(&self, component: &str, options: TapOptions) -> Result<TapReceiver, TapError> {
        self.run().taps.tap(component, &options)
    }
}

impl std::fmt::Debug for MetricsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsReader").finish_non_exhaustive()
    }
}

/// How a stop before the end of input treats what stateful bolts hold (open windows, counts not
/// emitted yet), when the topology takes checkpoints; see [`TopologyHandle::stop_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StopMode {
    /// Stop with a savepoint (Flink's `stop` without `--drain`): the spouts pause and a
    /// savepoint is taken. If it completes, stateful bolts are not finished: what they hold is
    /// in it, and the run that resumes from it fires it, once. Stateless bolts are finished
    /// (sinks write what they still hold). If it fails, every bolt is finished.
    #[default]
    Savepoint,
    /// End the input here (Flink's `stop --drain`), as at the end of the sources: every bolt's
    /// `finish` fires what it holds (a window its open windows), and each task writes its state
    /// into a final checkpoint as it ends; a resumed run goes on after those results.
    Drain,
}

/// How a stop went.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// Every tree completed and every task ended by itself within the deadline.
    pub drained: bool,
    /// Trees still pending when the drain deadline passed (failed to their spouts).
    pub abandoned_trees: u64,
    /// Tasks still running at the deadline, which were aborted.
    pub aborted_tasks: usize,
    /// The final figures.
    pub metrics: MetricsSnapshot,
}

/// A wait ran out before its condition held.
#[derive(Debug, Clone, thiserror::Error)]
#[error("condition not met within {waited:?}")]
pub struct WaitTimeout {
    /// How long was waited.
    pub waited: Duration,
    /// The figures at the end of the wait.
    pub metrics: Box<MetricsSnapshot>,
}

/// How often waits re-check their condition.
const POLL: Duration = Duration::from_millis(2);

impl TopologyHandle {
    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every task's figures now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.registry.snapshot(self.started.elapsed())
    }

    /// A cheap, cloneable reader of the same figures, for code that outlives a borrow of the
    /// handle (an HTTP endpoint, a reporter task).
    pub fn metrics_reader(&self) -> MetricsReader {
        MetricsReader {
            run: Arc::new(std::sync::RwLock::new(ReaderRun {
                started: self.started,
                registry: self.registry.clone(),
                taps: self.taps.clone(),
            })),
        }
    }

    /// Starts receiving sampled copies of the tuples leaving ([`Direction::Out`]: what the
    /// component's tasks emit) or entering ([`Direction::In`]: what a bolt's tasks execute) a
    /// component, at most `rate` per second, values as `Display` text (see [`crate::tap`]).
    ///
    /// The topology never waits for the receiver: tuples over the rate or finding its channel
    /// full are counted ([`TapReceiver::skipped`]) and left out. Dropping the receiver ends the
    /// tap; so does the end of the component's tasks.
    ///
    /// ```no_run
    /// # async fn f(handle: topo_runtime::TopologyHandle) -> Result<(), topo_runtime::TapError> {
    /// use topo_runtime::Direction;
    /// let words = handle.tap("split", Direction::Out, 10.0)?;
    /// while let Some(t) = words.recv().await {
    ///     println!("{}[{}] {}: {:?}", t.component, t.task_index, t.stream, t.fields);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: an unknown component (naming the components, and the nearest id), `In` on a
    /// spout, a rate not in (0, [`MAX_RATE`](crate::tap::MAX_RATE)], or a topology whose tasks
    /// have all ended.
    pub fn tap(
        &self,
        component: &str,
        direction: Direction,
        rate: f64,
    ) -> Result<TapReceiver, TapError> {
        self.taps.tap(component, &TapOptions::new(direction, rate))
    }

    /// [`tap`](TopologyHandle::tap) with every option: the values' format (text or JSON) and
    /// the channel's bound.
    pub fn tap_with(&self, component: &str, options: TapOptions) -> Result<TapReceiver, TapError> {
        self.taps.tap(component, &options)
    }

    /// Stops asking the spouts for tuples (in-flight trees still complete).
    pub fn deactivate(&self) {
        self.control.send_if_modified(|c| {
            let change = *c == Control::Active;
            if change {
                *c = Control::Inactive;
            }
            change
        });
    }

    /// Asks the spouts for tuples again.
    pub fn activate(&self) {
        self.control.send_if_modified(|c| {
            let change = *c == Control::Inactive;
            if change {
                *c = Control::Active;
            }
            change
        });
    }

    /// An error that stopped the topology: state that could not be restored. The run should
    /// end with it.
    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.get().map(|f| f.why.clone())
    }

    /// Whether the fatal error is one a run resumed from the newest checkpoint repairs: an
    /// instance holding state failed (`topo run` then resumes by itself, as Flink's restart
    /// strategy does).
    pub fn resume_repairs(&self) -> bool {
        self.fatal.get().is_some_and(|f| f.restart)
    }

    /// Checkpoint figures, when checkpoints are taken.
    pub fn checkpoint_metrics(&self) -> Option<Arc<CheckpointMetrics>> {
        self.checkpoints.clone()
    }

    /// Takes a checkpoint now (marked as a savepoint) and waits for it; `None` when this
    /// topology takes no checkpoints.
    pub async fn savepoint(&self) -> Option<Result<CheckpointId, String>> {
        let (tx, _) = self.coordinator.as_ref()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        if tx.send(Command::Savepoint(reply)).is_err() {
            return Some(Err("the checkpoint coordinator has ended".into()));
        }
        Some(
            answer
                .await
                .unwrap_or_else(|_| Err("the checkpoint coordinator has ended".into())),
        )
    }

    /// True when every spout is exhausted and no tree is pending.
    pub fn is_idle(&self) -> bool {
        self.spouts.iter().all(|m| m.idle.load(Relaxed))
    }

    /// Waits until `condition` holds for the figures, checking every 2 ms, for at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&MetricsSnapshot) -> bool,
    ) -> Result<MetricsSnapshot, WaitTimeout> {
        let start = Instant::now();
        loop {
            let m = self.metrics();
            if condition(&m) {
                return Ok(m);
            }
            if start.elapsed() >= timeout {
                return Err(WaitTimeout {
                    waited: start.elapsed(),
                    metrics: Box::new(m),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the topology is idle ([`is_idle`](TopologyHandle::is_idle)), for at most
    /// `timeout`.
    pub async fn wait_until_idle(&self, timeout: Duration) -> Result<MetricsSnapshot, WaitTimeout> {
        self.wait_until(timeout, |_| self.is_idle()).await
    }

    /// Stops gracefully ([`StopMode::Savepoint`]: see [`stop_with`](TopologyHandle::stop_with)).
    pub async fn stop(self, drain_timeout: Duration) -> StopReport {
        self.stop_with(StopMode::Savepoint, drain_timeout).await
    }

    /// Stops gracefully: spouts are deactivated, in-flight trees drain until `drain_timeout`
    /// (then the spouts fail what is left), every queue is drained down the graph, and each
    /// component's `close`/`cleanup` runs. Tasks still running `drain_timeout` after the spouts
    /// gave up are aborted.
    ///
    /// With checkpoints, the stop ends in one: when every input is drained (the topology is
    /// [idle](TopologyHandle::is_idle)) or `mode` is [`StopMode::Drain`], every bolt's `finish`
    /// runs and each task writes its state into a final checkpoint as it ends; otherwise
    /// ([`StopMode::Savepoint`]) a savepoint is taken with the spouts paused, and if it
    /// completes, stateful bolts are not finished (the run resuming from it goes on with what
    /// they hold). After a failure a resumed run repairs, stateful bolts are not finished
    /// either (that run replays what came after the newest checkpoint).
    pub async fn stop_with(mut self, mode: StopMode, drain_timeout: Duration) -> StopReport {
        let commands = self.coordinator.as_ref().map(|(c, _)| c.clone());
        if let Some(commands) = commands
            && self.fatal.get().is_none()
        {
            if mode == StopMode::Drain || self.is_idle() {
                // The input ends here: each task writes its state into a last checkpoint as it
                // ends, after `finish` (a window's last results, a sink's last files included).
                let (reply, id) = tokio::sync::oneshot::channel();
                if commands.send(Command::Final(reply)).is_ok()
                    && let Ok(id) = id.await
                {
                    tracing::info!(
                        checkpoint = id,
                        ?mode,
                        "final checkpoint at the end of input"
                    );
                }
            } else {
                self.stop_savepoint(&commands, drain_timeout.max(Duration::from_secs(1)))
                    .await;
            }
        }
        let coordinator = self.coordinator.take();
        let deadline = Instant::now() + drain_timeout;
        self.control.send_replace(Control::Stop { deadline });
        let hard_deadline = deadline + drain_timeout.max(Duration::from_millis(100));
        let mut aborted = 0;
        for t in self.tasks.iter_mut() {
            if tokio::time::timeout_at(hard_deadline.into(), &mut *t)
                .await
                .is_err()
            {
                t.abort();
                aborted += 1;
            }
        }
        if let Some((commands, task)) = coordinator {
            drop(commands);
            if tokio::time::timeout_at(hard_deadline.into(), task)
                .await
                .is_err()
            {
                aborted += 1;
            }
        }
        let metrics = self.metrics();
        let failed_at_stop: u64 = self
            .spouts
            .iter()
            .map(|m| m.abandoned_at_stop.load(Relaxed))
            .sum();
        StopReport {
            drained: aborted == 0 && failed_at_stop == 0,
            abandoned_trees: failed_at_stop,
            aborted_tasks: aborted,
            metrics,
        }
    }

    /// A stop's savepoint (Flink's stop with a savepoint), with the spouts paused, so that a
    /// later run resumes exactly here. Waits at most `wait` for it. Then no checkpoint starts or
    /// completes any more; if the savepoint completed, the bolt tasks are told (stateful bolts
    /// are not finished), else every bolt is finished, as nothing durable covers its state.
    async fn stop_savepoint(&self, commands: &flume::Sender<Command>, wait: Duration) {
        // Stateful bolts take no tick from here: it would fire what the savepoint keeps.
        self.stop.savepoint_asked();
        self.deactivate();
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let waited = if commands.send(Command::Savepoint(reply)).is_ok() {
            tokio::time::timeout(wait, &mut answer).await.ok()
        } else {
            None
        };
        // A savepoint still in flight fails now, and no other checkpoint starts: none may
        // complete after bolts have been finished. Once the coordinator says so, the
        // savepoint's answer is final.
        let (close, closed) = tokio::sync::oneshot::channel();
        let closed = commands.send(Command::Close(close)).is_ok()
            && matches!(tokio::time::timeout(wait, closed).await, Ok(Ok(())));
        let gone = || "the checkpoint coordinator has ended".to_string();
        let outcome = match waited {
            Some(answered) => answered.unwrap_or_else(|_| Err(gone())),
            None if closed => answer
                .try_recv()
                .unwrap_or_else(|_| Err(format!("not complete within {wait:?}"))),
            None => Err(format!(
                "not complete within {wait:?}, and the checkpoint coordinator did not answer"
            )),
        };
        match outcome {
            Ok(id) => {
                self.stop.ended_in(id);
                tracing::info!(
                    checkpoint = id,
                    "savepoint taken; stateful bolts keep what they hold for the run that resumes from it"
                );
            }
            Err(e) => tracing::warn!("no savepoint at stop: {e}; every bolt is finished"),
        }
    }

    /// Runs for `duration`, then stops gracefully with `drain_timeout`.
    pub async fn run_for(self, duration: Duration, drain_timeout: Duration) -> StopReport {
        tokio::time::sleep(duration).await;
        self.stop(drain_timeout).await
    }
}

impl Drop for TopologyHandle {
    fn drop(&mut self) {
        // A stopped handle has sent `Stop` already; otherwise stop the spouts now.
        if !matches!(*self.control.borrow(), Control::Stop { .. }) {
            self.control.send_replace(Control::Stop {
                deadline: Instant::now(),
            });
        }
    }
}

/// Starts a validated topology on the current tokio runtime (call it from inside one; see
/// [`LocalCluster`] to get one), resuming from its newest checkpoint if it takes checkpoints
/// and has one. A checkpoint that cannot be used makes the handle's
/// [`fatal_error`](TopologyHandle::fatal_error) say why, and nothing runs; see [`try_submit`]
/// to get that error at once.
pub fn submit(topology: Topology) -> TopologyHandle {
    let name = topology.name.clone();
    try_submit(topology, &RunOptions::default()).unwrap_or_else(|e| {
        tracing::error!("{e}");
        let fatal = Arc::new(OnceLock::new());
        let _ = fatal.set(Fatal {
            why: e.0,
            restart: false,
        });
        let (control, _) = watch::channel(Control::Stop {
            deadline: Instant::now(),
        });
        TopologyHandle {
            name,
            started: Instant::now(),
            registry: Arc::new(MetricsRegistry::default()),
            control,
            tasks: Vec::new(),
            spouts: Vec::new(),
            taps: Arc::new(TapHub::new(&[])),
            coordinator: None,
            checkpoints: None,
            fatal,
            stop: Default::default(),
        }
    })
}

/// Whether a topology takes checkpoints: an interval is set, and it is exactly-once or a
/// component keeps state.
pub fn takes_checkpoints(topology: &Topology) -> bool {
    let c = &topology.config;
    !c.checkpoint_interval.is_zero()
        && (c.guarantee == Guarantee::ExactlyOnce
            || topology
                .components
                .iter()
                .any(|k| k.state && matches!(k.spec.factory, ComponentFactory::Bolt(_))))
}

/// The checkpoint a run resumes from, read and checked against the topology.
fn checkpoint_to_restore(
    topology: &Topology,
    own: &Checkpoints,
    options: &RunOptions,
) -> Result<Option<(Checkpoints, Manifest)>, StartError> {
    if options.fresh {
        return Ok(None);
    }
    let (store, manifest) = match &options.from_checkpoint {
        None => match own.latest() {
            Ok(Some(m)) => (own.clone(), m),
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(StartError(format!(
                    "reading checkpoints in {}: {e}",
                    own.storage().locate("")
                )));
            }
        },
        Some(which) => {
            if let Ok(id) = which.parse::<CheckpointId>() {
                let m = own
                    .load(id)
                    .map_err(|e| StartError(format!("--from-checkpoint {which}: {e}")))?;
                (own.clone(), m)
            } else {
                let path = std::path::Path::new(which);
                let dir = path.parent().unwrap_or(std::path::Path::new("."));
                let bytes = std::fs::read(path)
                    .map_err(|e| StartError(format!("--from-checkpoint {which}: {e}")))?;
                let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    StartError(format!(
                        "--from-checkpoint {which}: not a checkpoint manifest: {e}"
                    ))
                })?;
                (Checkpoints::new(Arc::new(LocalDir::new(dir))), m)
            }
        }
    };
    let key_groups = topology.config.max_parallelism as u32;
    if manifest.max_parallelism != key_groups {
        return Err(StartError(format!(
            "checkpoint {} split keyed state into {} key groups, but max_parallelism is now {key_groups};              set max_parallelism = {} to resume from it (or run with --fresh)",
            manifest.id, manifest.max_parallelism, manifest.max_parallelism
        )));
    }
    for (id, c) in &manifest.components {
        let has_state = c.tasks.iter().any(|t| !t.parts.is_empty());
        if has_state && topology.component(id).is_none() && !options.allow_missing_state {
            return Err(StartError(format!(
                "checkpoint {} holds state of component `{id}`, which this topology no longer has;                  resuming would drop that state. Run with --allow-missing-state to drop it, or --fresh to start empty",
                manifest.id
            )));
        }
    }
    Ok(Some((store, manifest)))
}

/// Starts a validated topology as [`submit`] does, with `options` saying which checkpoint (if
/// any) to resume from; an unusable checkpoint is an error naming the problem.
pub fn try_submit(topology: Topology, options: &RunOptions) -> Result<TopologyHandle, StartError> {
    let config = topology.config.clone();
    let slots = config.queue_slots();
    let batch = config.batch_size;

    // Task ids: consecutive per component, in declaration order, then the ackers.
    let mut next = 0u32;
    let mut tasks_of: HashMap<&str, Vec<TaskId>> = HashMap::new();
    for c in &topology.components {
        let ids: Vec<TaskId> = (0..c.spec.parallelism as u32)
            .map(|i| TaskId(next + i))
            .collect();
        next += c.spec.parallelism as u32;
        tasks_of.insert(c.spec.id.as_str(), ids);
    }
    // Exactly-once tracks no trees: its checkpoints replace acking.
    let ackers = if config.acking() { config.ackers } else { 0 };
    let acker_ids: Vec<TaskId> = (0..ackers as u32).map(|i| TaskId(next + i)).collect();
    let total_tasks = next as usize + acker_ids.len();
    let taps = Arc::new(TapHub::new(
        &topology
            .components
            .iter()
            .map(|c| {
                let bolt = matches!(c.spec.factory, ComponentFactory::Bolt(_));
                let first = tasks_of[c.spec.id.as_str()].first().copied();
                (c.spec.id.clone(), bolt, first.unwrap_or(TaskId(next)))
            })
            .collect::<Vec<_>>(),
    ));

    let metrics: Vec<Arc<TaskMetrics>> = (0..total_tasks)
        .map(|_| Arc::new(TaskMetrics::new(config.queue_capacity)))
        .collect();

    // Queues: bolts and ackers bounded, spout notices unbounded (bounded by pending trees).
    let mut bolt_tx = HashMap::new();
    let mut bolt_rx = HashMap::new();
    let mut notice_tx: Vec<Option<flume::Sender<_>>> = vec![None; total_tasks];
    let mut notice_rx = HashMap::new();
    for c in &topology.components {
        for &t in &tasks_of[c.spec.id.as_str()] {
            match c.spec.factory {
                ComponentFactory::Bolt(_) => {
                    let (tx, rx) = flume::bounded(slots);
                    bolt_tx.insert(t, (tx, BatchPool::new()));
                    bolt_rx.insert(t, rx);
                }
                ComponentFactory::Spout(_) => {
                    let (tx, rx) = flume::unbounded();
                    notice_tx[t.0 as usize] = Some(tx);
                    notice_rx.insert(t, rx);
                }
            }
        }
    }
    let ackers: Vec<_> = acker_ids
        .iter()
        .map(|&t| {
            let (tx, rx) = flume::bounded(slots);
            (t, tx, rx)
        })
        .collect();

    let shared = Arc::new(ContextShared {
        topology: topology.name.clone(),
        config: config.clone(),
        components: topology
            .components
            .iter()
            .map(|c| (c.spec.id.clone(), tasks_of[c.spec.id.as_str()].clone()))
            .collect(),
        inputs: topology
            .components
            .iter()
            .filter(|c| !c.spec.inputs.is_empty())
            .map(|c| {
                let mut from: Vec<SmolStr> = Vec::new();
                for i in &c.spec.inputs {
                    if !from.contains(&i.component) {
                        from.push(i.component.clone());
                    }
                }
                (c.spec.id.clone(), from)
            })
            .collect(),
        tick_intervals: topology
            .components
            .iter()
            .map(|c| (c.spec.id.clone(), c.spec.tick_interval))
            .collect(),
        checkpointed: takes_checkpoints(&topology),
    });

    // Checkpoints: the coordinator's links, and the state each task resumes from.
    let fatal = Arc::new(OnceLock::new());
    let mut coordinator = None;
    let mut links = None;
    let mut restore_from: HashMap<SmolStr, Arc<RestoreSource>> = HashMap::new();
    let checkpoint_metrics =
        takes_checkpoints(&topology).then(|| Arc::new(CheckpointMetrics::default()));
    if let Some(cm) = &checkpoint_metrics {
        let dir = config.checkpoint_dir_for(&topology.name);
        let own = Checkpoints::new(Arc::new(LocalDir::new(&dir)));
        let restored = checkpoint_to_restore(&topology, &own, options)?;
        let mut next_id = own
            .next_id()
            .map_err(|e| StartError(format!("reading checkpoints in {}: {e}", dir.display())))?;
        if let Some((store, manifest)) = restored {
            next_id = next_id.max(manifest.id + 1);
            cm.restored_id.store(manifest.id, Relaxed);
            tracing::info!(checkpoint = manifest.id, "resuming from checkpoint");
            for (id, c) in &manifest.components {
                let old = c
                    .tasks
                    .iter()
                    .map(|t| OldTask {
                        parts: t
                            .parts
                            .iter()
                            .map(|(name, p)| (SmolStr::new(name), (p.kind, p.files.clone())))
                            .collect(),
                    })
                    .collect();
                restore_from.insert(
                    SmolStr::new(id),
                    Arc::new(RestoreSource {
                        storage: store.storage().clone(),
                        checkpoint: manifest.id,
                        key_groups: manifest.max_parallelism,
                        old,
                    }),
                );
            }
        }
        let (trigger, trigger_rx) = watch::channel(0);
        let (completed, completed_rx) = watch::channel(0);
        let (final_id, final_rx) = watch::channel(0);
        let (report_tx, reports) = flume::unbounded();
        let (commands_tx, commands) = flume::unbounded();
        let mut tasks = Vec::new();
        for c in &topology.components {
            for i in 0..c.spec.parallelism {
                tasks.push((c.spec.id.clone(), i, c.spec.parallelism));
            }
        }
        let coord = Coordinator {
            checkpoints: own.clone(),
            topology: topology.name.clone(),
            guarantee: config.guarantee,
            key_groups: config.max_parallelism as u32,
            retained: config.checkpoints_retained,
            interval: config.checkpoint_interval,
            tasks,
            next_id,
            trigger,
            completed,
            final_id,
            reports,
            commands,
            metrics: cm.clone(),
            failed: {
                let fatal = fatal.clone();
                Arc::new(move || fatal.get().is_some())
            },
        };
        coordinator = Some((commands_tx, coord));
        links = Some(TaskCheckpoints {
            trigger: trigger_rx,
            completed: completed_rx,
            reports: report_tx,
            checkpoints: own,
            key_groups: config.max_parallelism as u32,
            upstream: 0,
            alignment_buffer: config.alignment_buffer,
            final_id: final_rx,
        });
    }
    // How many upstream tasks send to each component's tasks: every task of every component it
    // subscribes to (each sends its barriers to all of them).
    let upstream_of = |c: &crate::topology::Component| -> usize {
        let mut from: Vec<&str> = c.spec.inputs.iter().map(|i| i.component.as_str()).collect();
        from.sort_unstable();
        from.dedup();
        from.iter()
            .map(|f| tasks_of.get(f).map_or(0, |t| t.len()))
            .sum()
    };

    // One counter per subscription, shared by the emitting tasks: (bolt, input index) -> count.
    let mut registry = MetricsRegistry {
        checkpoints: checkpoint_metrics.clone(),
        ..MetricsRegistry::default()
    };
    let mut edges: HashMap<(&str, usize), Arc<AtomicU64>> = HashMap::new();
    for c in &topology.components {
        for (i, input) in c.spec.inputs.iter().enumerate() {
            let n = Arc::new(AtomicU64::new(0));
            edges.insert((c.spec.id.as_str(), i), n.clone());
            registry.edges.push((
                input.component.clone(),
                if input.stream.is_empty() {
                    crate::DEFAULT_STREAM.into()
                } else {
                    input.stream.clone()
                },
                c.spec.id.clone(),
                n,
            ));
        }
    }

    let (control, control_rx) = watch::channel(Control::Active);
    let stop = Arc::new(StopState::default());
    let mut handles = Vec::with_capacity(total_tasks);
    let mut spouts = Vec::new();

    for c in &topology.components {
        let id = &c.spec.id;
        let my_tasks = &tasks_of[id.as_str()];
        let role = Some(c.spec.factory.role());
        registry.components.push((
            id.clone(),
            role,
            my_tasks
                .iter()
                .map(|&t| (t, metrics[t.0 as usize].clone()))
                .collect(),
        ));
        for (index, &task) in my_tasks.iter().enumerate() {
            let m = metrics[task.0 as usize].clone();
            let mut emitter = build_emitter(
                &topology,
                id,
                task,
                index,
                &tasks_of,
                &bolt_tx,
                &metrics,
                &ackers,
                &edges,
                batch,
                m.clone(),
            );
            emitter.taps = taps.links(id, task);
            let env = TaskEnv {
                ctx: TaskContext {
                    inner: shared.clone(),
                    component: id.clone(),
                    task,
                    task_index: index,
                    parallelism: my_tasks.len(),
                },
                emitter,
                metrics: m.clone(),
                checkpoints: links.as_ref().map(|l| {
                    CheckpointSide::new(TaskCheckpoints {
                        upstream: upstream_of(c),
                        ..l.clone()
                    })
                }),
                restore: restore_from.get(id).map(|source| Restore {
                    source: source.clone(),
                    index,
                    parallelism: my_tasks.len(),
                }),
                fatal: fatal.clone(),
                stop: stop.clone(),
                batch_pool: bolt_tx.get(&task).map(|(_, pool)| pool.clone()),
            };
            let fut = match &c.spec.factory {
                ComponentFactory::Spout(f) => {
                    spouts.push(m);
                    let rx = notice_rx
                        .remove(&task)
                        .expect("a notice queue per spout task");
                    f.0.spawn(
                        env,
                        rx,
                        control_rx.clone(),
                        config.max_spout_pending,
                        config.message_timeout,
                    )
                }
                ComponentFactory::Bolt(f) => {
                    let rx = bolt_rx.remove(&task).expect("a queue per bolt task");
                    f.0.spawn(env, rx, c.spec.tick_interval)
                }
            };
            // Every log line of the task carries its component and task index.
            let span = tracing::error_span!("task", component = %id, task = index);
            handles.push(tokio::spawn(fut.instrument(span)));
        }
    }
    // Senders to bolts live only in emitters from here on.
    drop(bolt_tx);

    let mut acker_metrics = Vec::new();
    for (task, tx, rx) in ackers {
        drop(tx);
        let m = metrics[task.0 as usize].clone();
        acker_metrics.push((task, m.clone()));
        let a = Acker::new(notice_tx.clone());
        handles.push(tokio::spawn(acker::run(
            a,
            rx,
            m.queue.clone(),
            config.message_timeout,
            m,
        )));
    }
    drop(notice_tx);
    if !acker_metrics.is_empty() {
        registry
            .components
            .push((ACKER_ID.into(), None, acker_metrics));
    }

    drop(links);
    let coordinator = coordinator.map(|(commands, coord)| (commands, tokio::spawn(coord.run())));

    Ok(TopologyHandle {
        name: topology.name.clone(),
        started: Instant::now(),
        registry: Arc::new(registry),
        control,
        tasks: handles,
        spouts,
        taps,
        coordinator,
        checkpoints: checkpoint_metrics,
        fatal,
        stop,
    })
}

/// An acker task with both ends of its queue (the receiver goes to the task once all senders
/// have been handed out).
type AckerQueue = (
    TaskId,
    flume::Sender<Vec<acker::AckMsg>>,
    flume::Receiver<Vec<acker::AckMsg>>,
);

/// The output side of one task: a stream per declaration, each with a router per subscriber,
/// and a target per downstream task.
#[allow(clippy::too_many_arguments)]
fn build_emitter(
    topology: &Topology,
    component: &SmolStr,
    task: TaskId,
    index: usize,
    tasks_of: &HashMap<&str, Vec<TaskId>>,
    bolt_tx: &HashMap<TaskId, (flume::Sender<Inbound>, BatchPool)>,
    metrics: &[Arc<TaskMetrics>],
    ackers: &[AckerQueue],
    edges: &HashMap<(&str, usize), Arc<AtomicU64>>,
    batch: usize,
    own: Arc<TaskMetrics>,
) -> Emitter {
    let me = topology
        .components
        .iter()
        .find(|c| c.spec.id == *component)
        .expect("the component being wired");
    let mut targets: Vec<Target> = Vec::new();
    let mut slot_of: HashMap<TaskId, usize> = HashMap::new();
    let mut streams = Vec::new();
    for decl in &me.outputs {
        let schema = StreamSchema::intern(component, &decl.name, &decl.fields, decl.direct);
        let mut subs = Vec::new();
        for c in &topology.components {
            for (input_index, input) in c
                .spec
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.component == *component && i.stream == decl.name)
            {
                let mut sub_tasks = tasks_of[c.spec.id.as_str()].clone();
                sub_tasks.sort();
                let slots = sub_tasks
                    .iter()
                    .map(|t| {
                        *slot_of.entry(*t).or_insert_with(|| {
                            targets.push(Target::new(
                                bolt_tx[t].0.clone(),
                                metrics[t.0 as usize].queue.clone(),
                                batch,
                                bolt_tx[t].1.clone(),
                            ));
                            targets.len() - 1
                        })
                    })
                    .collect();
                let field_index: SmallVec<[usize; 2]> = input
                    .grouping
                    .fields()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| schema.index_of(f))
                    .collect();
                subs.push(Subscription {
                    router: Router::new(
                        &input.grouping,
                        field_index,
                        &sub_tasks,
                        &c.spec.id,
                        index,
                        topology.config.max_parallelism,
                    ),
                    loads: sub_tasks
                        .iter()
                        .map(|t| metrics[t.0 as usize].queue.clone())
                        .collect(),
                    tasks: sub_tasks,
                    slots,
                    sent: 0,
                    edge: edges[&(c.spec.id.as_str(), input_index)].clone(),
                });
            }
        }
        streams.push(OutStream { schema, subs });
    }
    let acker_links = ackers
        .iter()
        .map(|(t, tx, _)| AckerLink {
            buf: Vec::with_capacity(batch),
            tx: tx.clone(),
            gauge: metrics[t.0 as usize].queue.clone(),
        })
        .collect();
    Emitter::new(task, streams, targets, acker_links, batch, own)
}

/// A tokio runtime sized by the topology's `worker_threads`, to run topologies from synchronous
/// code (Storm's `LocalCluster`).
///
/// ```no_run
/// # fn build() -> topo_runtime::Topology { unimplemented!() }
/// use std::time::Duration;
/// let topology = build();
/// let cluster = topo_runtime::LocalCluster::new(topology.config().worker_threads)?;
/// let handle = cluster.submit(topology);
/// let report = cluster.block_on(handle.run_for(Duration::from_secs(10), Duration::from_secs(5)));
/// println!("{:?}", report.metrics.component("count").map(|c| c.executed()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalCluster {
    runtime: tokio::runtime::Runtime,
}

impl LocalCluster {
    /// A cluster with `worker_threads` threads.
    pub fn new(worker_threads: usize) -> std::io::Result<LocalCluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("topo-worker")
            .enable_all()
            .build()?;
        Ok(LocalCluster { runtime })
    }

    /// Starts a topology on this cluster's threads.
    pub fn submit(&self, topology: Topology) -> TopologyHandle {
        let _guard = self.runtime.enter();
        submit(topology)
    }

    /// Starts a topology on this cluster's threads with `options` (see [`try_submit`]).
    pub fn try_submit(
        &self,
        topology: Topology,
        options: &RunOptions,
    ) -> Result<TopologyHandle, StartError> {
        let _guard = self.runtime.enter();
        try_submit(topology, options)
    }

    /// Runs a future (for example `handle.stop(..)`) to completion on this cluster.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
