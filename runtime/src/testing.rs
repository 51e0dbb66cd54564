//! Test harnesses, so a component test is a few lines of setup.
//!
//! - [`BoltTester`]: run one bolt (basic or full) on given tuples and see what it emitted and
//!   whether it acked or failed each input — through the real task driver and collector; take
//!   a checkpoint of it ([`BoltTester::checkpoint`]) and start a fresh instance from it
//!   ([`BoltTester::restore_basic`]): a task's crash and restart in a unit test. Declare the
//!   upstream components and their tasks ([`BoltTester::full_with_inputs`]) to send from each.
//! - [`VecSpout`]: an in-memory spout emitting a list of tuples with message ids, replaying
//!   failed ones, and counting acks and fails per message.
//! - [`CaptureBolt`]: a sink that records every tuple it receives and which task received it.
//!
//! ```
//! use topo_runtime::testing::BoltTester;
//! use topo_runtime::{values, BasicBolt, BasicCollector, BoxError, OutputDeclarer, Tuple};
//!
//! struct Upper;
//! impl BasicBolt for Upper {
//!     fn declare_outputs(&self, out: &mut OutputDeclarer) { out.declare(["word"]); }
//!     fn execute(&mut self, t: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
//!         out.emit(values![t.str_field("word")?.to_uppercase()]);
//!         Ok(())
//!     }
//! }
//!
//! let mut tester = BoltTester::basic(|| Upper, ["word"]);
//! let run = tester.execute(values!["hi"]);
//! assert!(run.acked);
//! assert_eq!(run.emitted[0].values[0].as_str(), Some("HI"));
//! let bad = tester.execute(values![1]);
//! assert!(bad.failed);
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use smol_str::SmolStr;

use crate::acker::AckMsg;
use crate::checkpoint::storage::CheckpointStorage;
use crate::checkpoint::{CheckpointId, Inbound};
use crate::collector::{AckerLink, Emitter, OutStream, Subscription, Target};
use crate::component::{
    BasicBolt, Bolt, BoxError, ContextShared, OutputDeclarer, Spout, StreamDecl, TaskContext,
};
use crate::config::Config;
use crate::grouping::{Grouping, Router};
use crate::metrics::{QueueGauge, TaskMetrics};
use crate::state::{Chains, OldTask, Restore, RestoreSource, Snapshot, write_parts};
use crate::task::{BasicDriver, BoltDriver, FullDriver, TaskEnv};
use crate::topology::{BoltFactory, SpoutFactory};
use crate::tuple::{StreamSchema, TaskId, Tuple};
use crate::value::Values;
use crate::{BasicCollector, SpoutCollector};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One tuple a tested bolt emitted.
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    /// The stream it was emitted on.
    pub stream: SmolStr,
    /// Its values.
    pub values: Values,
    /// Whether it was anchored to a tracked input.
    pub anchored: bool,
}

/// What happened when a tested bolt executed one input (or a tick).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Executed {
    /// Tuples emitted during the call, in order.
    pub emitted: Vec<Emitted>,
    /// The input was acked.
    pub acked: bool,
    /// The input was failed.
    pub failed: bool,
    /// Errors the runtime logged for the component during the call.
    pub errors: u64,
    /// Times the component was re-created during the call (after a panic).
    pub restarts: u64,
    /// Every input acked during the call, by its index (0 = the first input executed), in the
    /// order the acks arrived — includes inputs a full bolt held from earlier calls.
    pub acked_inputs: Vec<usize>,
    /// Every input failed during the call, by its index.
    pub failed_inputs: Vec<usize>,
}

/// Object-safe wrapper of a bolt driver, so a tester is not generic over the bolt type.
trait DynDriver: Send {
    fn start<'a>(&'a mut self, env: &'a mut TaskEnv) -> futures_util::future::BoxFuture<'a, ()>;
    fn execute<'a>(
        &'a mut self,
        batch: Vec<Tuple>,
        env: &'a mut TaskEnv,
    ) -> futures_util::future::BoxFuture<'a, ()>;
    fn tick<'a>(&'a mut self, env: &'a mut TaskEnv) -> futures_util::future::BoxFuture<'a, ()>;
    fn input_drained<'a>(
        &'a mut self,
        env: &'a mut TaskEnv,
    ) -> futures_util::future::BoxFuture<'a, ()>;
    fn finish<'a>(&'a mut self, env: &'a mut TaskEnv) -> futures_util::future::BoxFuture<'a, ()>;
    fn snapshot(&mut self, snap: &mut Snapshot, env: &mut TaskEnv) -> Result<(), String>;
    fn checkpoint_complete<'a>(
        &'a mut self,
        id: CheckpointId,
        env: &'a mut TaskEnv,
    ) -> futures_util::future::BoxFuture<'a, ()>;
}

impl<D: BoltDriver> DynDriver for D {
    fn checkpoint_complete<'a>(
        &'a mut self,
        id: CheckpointId,
        env: &'a mut TaskEnv,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(BoltDriver::checkpoint_complete(self, id, env))
    }
    fn snapshot(&mut self, snap: &mut Snapshot, env: &mut TaskEnv) -> Result<(), String> {
        BoltDriver::snapshot(self, snap, env)
    }
    fn start<'a>(&'a mut self, env: &'a mut TaskEnv) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(BoltDriver::start(self, env))
    }
    fn execute<'a>(
        &'a mut self,
        mut batch: Vec<Tuple>,
        env: &'a mut TaskEnv,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move { self.execute_batch(&mut batch, env).await })
    }
    fn tick<'a>(&'a mut self, env: &'a mut TaskEnv) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(BoltDriver::tick(self, env))
    }
    fn input_drained<'a>(
        &'a mut self,
        env: &'a mut TaskEnv,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(BoltDriver::input_drained(self, env))
    }
    fn finish<'a>(&'a mut self, env: &'a mut TaskEnv) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            BoltDriver::finish(self, env).await;
            BoltDriver::cleanup(self, env).await;
        })
    }
}

/// Runs one bolt on tuples you give it, through the runtime's real driver and collector, and
/// reports what it emitted and whether it acked or failed each input.
///
/// Methods are synchronous (the tester owns a small runtime): call them from a plain `#[test]`.
pub struct BoltTester {
    runtime: tokio::runtime::Runtime,
    driver: Box<dyn DynDriver>,
    env: TaskEnv,
    input: &'static StreamSchema,
    captured: Vec<(SmolStr, flume::Receiver<Inbound>)>,
    acks: flume::Receiver<Vec<AckMsg>>,
    next_root: u64,
    /// Checkpoints taken by [`checkpoint`](BoltTester::checkpoint): where, and the chains of
    /// keyed files so far.
    checkpoints: Arc<MemoryStorage>,
    chains: Chains,
    next_checkpoint: CheckpointId,
    /// The declared upstream components and their tasks
    /// ([`full_with_inputs`](BoltTester::full_with_inputs)); empty = the default input only.
    inputs: Vec<(SmolStr, Vec<TaskId>)>,
}

/// The component the inputs of [`BoltTester::execute`] come from, with one task,
/// [`DEFAULT_INPUT_TASK`]: the tested bolt's only input unless others are declared.
const DEFAULT_INPUT: &str = "__input";
/// The task the inputs of [`BoltTester::execute`] come from.
const DEFAULT_INPUT_TASK: TaskId = TaskId(99);
/// The first task id of declared upstream components (numbered on from it, in order).
const FIRST_INPUT_TASK: u32 = 100;

/// A checkpoint of one bolt taken by [`BoltTester::checkpoint`], to start another tester from
/// ([`BoltTester::restore_basic`], [`BoltTester::restore_full`]): a task's crash and restart in a unit test.
#[derive(Clone, Debug)]
pub struct TestCheckpoint {
    id: CheckpointId,
    storage: Arc<MemoryStorage>,
    task: crate::checkpoint::manifest::TaskState,
}

impl TestCheckpoint {
    /// The checkpoint's id (1, 2, ... per tester).
    pub fn id(&self) -> CheckpointId {
        self.id
    }

    /// The names of the state parts the bolt wrote.
    pub fn parts(&self) -> Vec<String> {
        self.task.parts.keys().cloned().collect()
    }
}

/// Checkpoint files kept in memory: a [`CheckpointStorage`] for tests.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    files: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl CheckpointStorage for MemoryStorage {
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        lock(&self.files).insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
    fn get(&self, name: &str) -> std::io::Result<Vec<u8>> {
        lock(&self.files).get(name).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("no file {name}"))
        })
    }
    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        Ok(lock(&self.files)
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn delete(&self, name: &str) -> std::io::Result<()> {
        lock(&self.files).remove(name);
        Ok(())
    }
    fn locate(&self, name: &str) -> String {
        format!("memory:{name}")
    }
}

impl BoltTester {
    /// A tester for a [`BasicBolt`] whose input stream has `fields`.
    pub fn basic<B, F, I, S>(make: F, fields: I) -> BoltTester
    where
        B: BasicBolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(BasicDriver::new(Arc::new(make)));
        BoltTester::new(driver, decl, fields)
    }

    /// A tester for a full [`Bolt`] whose input stream has `fields`.
    pub fn full<B, F, I, S>(make: F, fields: I) -> BoltTester
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(FullDriver::new(Arc::new(make)));
        BoltTester::new(driver, decl, fields)
    }

    /// A tester for a full [`Bolt`] in a topology with `config` that takes checkpoints
    /// ([`TaskContext::checkpointed`]): `guarantee = "exactly_once"` in `config` makes it an
    /// exactly-once run. Started fresh, or restored from `from` as a task resumes after a crash.
    /// Drive its checkpoints with [`checkpoint`](BoltTester::checkpoint) and
    /// [`checkpoint_complete`](BoltTester::checkpoint_complete).
    pub fn full_with<B, F, I, S>(
        make: F,
        fields: I,
        config: Config,
        from: Option<&TestCheckpoint>,
    ) -> BoltTester
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(FullDriver::new(Arc::new(make)));
        BoltTester::make_with(driver, decl, fields, from, &[], config, true)
    }

    /// A tester for a full [`Bolt`] whose input stream has `fields`, subscribed to `inputs`:
    /// upstream components and how many tasks each runs, in place of the default input (what
    /// [`TaskContext::input_tasks`] tells the bolt). Send from one of their tasks with
    /// [`execute_from_task`](BoltTester::execute_from_task).
    pub fn full_with_inputs<B, F, I, S>(make: F, fields: I, inputs: &[(&str, usize)]) -> BoltTester
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(FullDriver::new(Arc::new(make)));
        BoltTester::make(driver, decl, fields, None, inputs)
    }

    /// A tester for a [`BasicBolt`] whose input stream has `fields`, subscribed to `upstream`
    /// (components and how many tasks each runs; see
    /// [`full_with_inputs`](BoltTester::full_with_inputs)), restored from `restore` when given
    /// — for a bolt that keeps state per sending task (a total ranking). Send from one of their
    /// tasks with [`execute_from_task`](BoltTester::execute_from_task).
    pub fn basic_with_upstream<B, F, I, S>(
        make: F,
        fields: I,
        upstream: &[(&str, usize)],
        restore: Option<&TestCheckpoint>,
    ) -> BoltTester
    where
        B: BasicBolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(BasicDriver::new(Arc::new(make)));
        BoltTester::make(driver, decl, fields, restore, upstream)
    }

    fn new<I, S>(driver: Box<dyn DynDriver>, outputs: Vec<StreamDecl>, fields: I) -> BoltTester
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        BoltTester::make(driver, outputs, fields, None, &[])
    }

    fn make<I, S>(
        driver: Box<dyn DynDriver>,
        outputs: Vec<StreamDecl>,
        fields: I,
        restore: Option<&TestCheckpoint>,
        inputs: &[(&str, usize)],
    ) -> BoltTester
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        BoltTester::make_with(
            driver,
            outputs,
            fields,
            restore,
            inputs,
            Config::default(),
            false,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn make_with<I, S>(
        driver: Box<dyn DynDriver>,
        outputs: Vec<StreamDecl>,
        fields: I,
        restore: Option<&TestCheckpoint>,
        inputs: &[(&str, usize)],
        config: Config,
        checkpointed: bool,
    ) -> BoltTester
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let fields: Vec<SmolStr> = fields.into_iter().map(Into::into).collect();
        let input = StreamSchema::intern("__input", crate::DEFAULT_STREAM, &fields, false);
        let metrics = Arc::new(TaskMetrics::new(0));
        let sink_task = TaskId(1);
        let mut captured = Vec::new();
        let mut targets = Vec::new();
        let mut streams = Vec::new();
        for d in &outputs {
            let (tx, rx) = flume::unbounded();
            targets.push(Target::new(
                tx,
                Arc::new(QueueGauge::default()),
                1024,
                crate::collector::BatchPool::new(),
            ));
            captured.push((d.name.clone(), rx));
            let slot = targets.len() - 1;
            let grouping = if d.direct {
                Grouping::Direct
            } else {
                Grouping::All
            };
            streams.push(OutStream {
                schema: StreamSchema::intern("__tested", &d.name, &d.fields, d.direct),
                subs: vec![Subscription {
                    router: Router::new(
                        &grouping,
                        Default::default(),
                        &[sink_task],
                        &"__capture".into(),
                        0,
                        128,
                    ),
                    tasks: vec![sink_task],
                    slots: vec![slot],
                    loads: vec![targets[slot].gauge.clone()],
                    sent: 0,
                    edge: Default::default(),
                }],
            });
        }
        let (ack_tx, acks) = flume::unbounded();
        let ackers = vec![AckerLink {
            buf: Vec::new(),
            tx: ack_tx,
            gauge: Arc::new(QueueGauge::default()),
        }];
        let emitter = Emitter::new(TaskId(0), streams, targets, ackers, 1024, metrics.clone());
        let mut next = FIRST_INPUT_TASK;
        let inputs: Vec<(SmolStr, Vec<TaskId>)> = inputs
            .iter()
            .map(|&(from, n)| {
                let tasks = (next..next + n as u32).map(TaskId).collect();
                next += n as u32;
                (SmolStr::new(from), tasks)
            })
            .collect();
        let mut components = vec![
            ("__tested".into(), vec![TaskId(0)]),
            ("__capture".into(), vec![sink_task]),
            // The task inputs come from by default (`execute`).
            (DEFAULT_INPUT.into(), vec![DEFAULT_INPUT_TASK]),
        ];
        components.extend(inputs.iter().cloned());
        let subscribed = if inputs.is_empty() {
            vec![DEFAULT_INPUT.into()]
        } else {
            inputs.iter().map(|(from, _)| from.clone()).collect()
        };
        let ctx = TaskContext {
            inner: Arc::new(ContextShared {
                topology: "test".into(),
                config,
                components,
                inputs: vec![("__tested".into(), subscribed)],
                tick_intervals: Vec::new(),
                checkpointed,
            }),
            component: "__tested".into(),
            task: TaskId(0),
            task_index: 0,
            parallelism: 1,
        };
        let mut env = TaskEnv {
            ctx,
            emitter,
            metrics,
            checkpoints: None,
            restore: None,
            fatal: Default::default(),
            stop: Default::default(),
            batch_pool: None,
        };
        let mut driver = driver;
        env.restore = restore.map(|c| Restore {
            source: Arc::new(RestoreSource {
                storage: c.storage.clone(),
                checkpoint: c.id,
                key_groups: 128,
                old: vec![OldTask {
                    parts: c
                        .task
                        .parts
                        .iter()
                        .map(|(n, p)| (SmolStr::new(n), (p.kind, p.files.clone())))
                        .collect(),
                }],
            }),
            index: 0,
            parallelism: 1,
        });
        runtime.block_on(driver.start(&mut env));
        if let Some(e) = env.fatal.get() {
            panic!("the bolt could not be restored: {}", e.why);
        }
        BoltTester {
            runtime,
            driver,
            env,
            input,
            captured,
            acks,
            next_root: 1,
            checkpoints: Arc::default(),
            chains: Chains::default(),
            next_checkpoint: restore.map_or(1, |c| c.id + 1),
            inputs,
        }
    }

    /// Takes a checkpoint as a barrier would: `input_drained` (what it emits or acks is in the
    /// returned [`Executed`]), then the bolt's `snapshot`, written to memory. Start another
    /// tester from it with [`restore_basic`](BoltTester::restore_basic). An error is the bolt's `snapshot`
    /// error, or one writing its parts.
    pub fn checkpoint(&mut self) -> Result<(TestCheckpoint, Executed), String> {
        let id = self.next_checkpoint;
        self.next_checkpoint += 1;
        self.runtime
            .block_on(self.driver.input_drained(&mut self.env));
        self.runtime.block_on(self.env.emitter.flush(true));
        let executed = self.collect(None);
        let mut snap = Snapshot::new(id, 128, false);
        self.driver.snapshot(&mut snap, &mut self.env)?;
        if let Some(e) = snap.error.take() {
            return Err(e);
        }
        let task = write_parts(
            &*self.checkpoints,
            id,
            "__tested",
            0,
            std::mem::take(&mut snap.parts),
            &mut self.chains,
        )?;
        Ok((
            TestCheckpoint {
                id,
                storage: self.checkpoints.clone(),
                task,
            },
            executed,
        ))
    }

    /// A tester for a [`BasicBolt`] made fresh and restored from `checkpoint` (`restore` after
    /// `prepare`), as a task resumes after a crash. Panics if the bolt's `restore` fails.
    pub fn restore_basic<B, F, I, S>(make: F, fields: I, checkpoint: &TestCheckpoint) -> BoltTester
    where
        B: BasicBolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(BasicDriver::new(Arc::new(make)));
        BoltTester::make(driver, decl, fields, Some(checkpoint), &[])
    }

    /// A tester for a full [`Bolt`] restored from `checkpoint`; see
    /// [`restore_basic`](BoltTester::restore_basic).
    pub fn restore_full<B, F, I, S>(make: F, fields: I, checkpoint: &TestCheckpoint) -> BoltTester
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(FullDriver::new(Arc::new(make)));
        BoltTester::make(driver, decl, fields, Some(checkpoint), &[])
    }

    /// Tells the bolt that checkpoint `id` completed (as the coordinator does once every task
    /// wrote its part): a two-phase-commit sink commits what that checkpoint covers.
    pub fn checkpoint_complete(&mut self, id: CheckpointId) -> Executed {
        let driver = &mut self.driver;
        let env = &mut self.env;
        self.runtime.block_on(async {
            driver.checkpoint_complete(id, env).await;
            env.emitter.flush(true).await;
        });
        self.collect(None)
    }

    /// A tester for a full [`Bolt`] subscribed to `inputs` (see
    /// [`full_with_inputs`](BoltTester::full_with_inputs)), restored from `checkpoint`: a
    /// restart in a topology whose upstream components may run other numbers of tasks than
    /// when the checkpoint was taken.
    pub fn restore_full_with_inputs<B, F, I, S>(
        make: F,
        fields: I,
        inputs: &[(&str, usize)],
        checkpoint: &TestCheckpoint,
    ) -> BoltTester
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let decl = declare(|d| make().declare_outputs(d));
        let driver = Box::new(FullDriver::new(Arc::new(make)));
        BoltTester::make(driver, decl, fields, Some(checkpoint), inputs)
    }

    /// Executes one tracked input tuple with these values, from the default input (one task of
    /// a component `__input`; not one of the bolt's inputs when others were declared).
    pub fn execute(&mut self, values: Values) -> Executed {
        self.execute_tuple(self.input, DEFAULT_INPUT_TASK, values)
    }

    /// Executes one tracked input tuple as if it came from `component`'s `stream` with `fields`
    /// — for bolts that tell their inputs apart (a join's sides, a bolt reading an `error`
    /// stream). It comes from the component's first task if it is a declared input
    /// ([`full_with_inputs`](BoltTester::full_with_inputs)), else from the default input's.
    pub fn execute_from<I, S>(
        &mut self,
        component: &str,
        stream: &str,
        fields: I,
        values: Values,
    ) -> Executed
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let fields: Vec<SmolStr> = fields.into_iter().map(Into::into).collect();
        let schema = StreamSchema::intern(component, stream, &fields, false);
        let task = self
            .inputs
            .iter()
            .find(|(from, _)| from == component)
            .and_then(|(_, tasks)| tasks.first().copied())
            .unwrap_or(DEFAULT_INPUT_TASK);
        self.execute_tuple(schema, task, values)
    }

    /// Executes one tracked input tuple with these values (the tester's input fields, on the
    /// default stream) from task `task` (an index from 0) of `component`, a declared input
    /// ([`full_with_inputs`](BoltTester::full_with_inputs)). Panics, naming the declared
    /// inputs, if there is no such input or task.
    pub fn execute_from_task(&mut self, component: &str, task: usize, values: Values) -> Executed {
        let Some(id) = self
            .inputs
            .iter()
            .find(|(from, _)| from == component)
            .and_then(|(_, tasks)| tasks.get(task).copied())
        else {
            let declared: Vec<String> = self
                .inputs
                .iter()
                .map(|(from, tasks)| format!("{from} ({} tasks)", tasks.len()))
                .collect();
            panic!(
                "execute_from_task: no task {task} of an input `{component}`; the declared \
                 inputs are [{}]",
                declared.join(", ")
            );
        };
        let schema =
            StreamSchema::intern(component, crate::DEFAULT_STREAM, self.input.fields(), false);
        self.execute_tuple(schema, id, values)
    }

    fn execute_tuple(
        &mut self,
        schema: &'static StreamSchema,
        source: TaskId,
        values: Values,
    ) -> Executed {
        let root = self.next_root;
        self.next_root += 1;
        let id = 0x5eed_0000 + root;
        let mut tuple = Tuple::new(schema, source, values);
        tuple.anchors.push((root, id));
        let driver = &mut self.driver;
        let env = &mut self.env;
        self.runtime.block_on(async {
            driver.execute(vec![tuple], env).await;
            env.emitter.flush(true).await;
        });
        self.collect(Some((root, id)))
    }

    /// Executes several inputs in turn; one report per input.
    pub fn execute_all(&mut self, inputs: impl IntoIterator<Item = Values>) -> Vec<Executed> {
        inputs.into_iter().map(|v| self.execute(v)).collect()
    }

    /// Delivers a tick.
    pub fn tick(&mut self) -> Executed {
        let driver = &mut self.driver;
        let env = &mut self.env;
        self.runtime.block_on(async {
            driver.tick(env).await;
            env.emitter.flush(true).await;
        });
        self.collect(None)
    }

    /// Tells the bolt its input queue ran dry, as a task does when no more input is waiting
    /// (see [`Bolt::input_drained`]); a batching sink writes its pending batch.
    pub fn input_drained(&mut self) -> Executed {
        let driver = &mut self.driver;
        let env = &mut self.env;
        self.runtime.block_on(async {
            driver.input_drained(env).await;
            env.emitter.flush(true).await;
        });
        self.collect(None)
    }

    /// Stops the runtime's clock for this tester: from now on time moves only by
    /// [`advance`](BoltTester::advance) (and [`clock::now_millis`](crate::clock::now_millis)
    /// with it), so time-driven bolts — processing-time windows, sink flush intervals — are tested
    /// deterministically.
    pub fn pause_time(&mut self) {
        self.runtime.block_on(async { tokio::time::pause() });
    }

    /// Moves the paused clock forward by `by` (see [`pause_time`](BoltTester::pause_time)).
    pub fn advance(&mut self, by: std::time::Duration) {
        self.runtime.block_on(tokio::time::advance(by));
    }

    /// The tester's wall-clock time in milliseconds, as the bolt sees it
    /// ([`clock::now_millis`](crate::clock::now_millis)).
    pub fn now_millis(&self) -> i64 {
        self.runtime.block_on(async { crate::clock::now_millis() })
    }

    /// Runs a future on the tester's runtime (to reach a server the bolt writes to, say).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Ends the bolt (`finish`, then `cleanup`; a full bolt's inputs still held are failed) and
    /// reports what that did.
    pub fn finish(&mut self) -> Executed {
        let driver = &mut self.driver;
        let env = &mut self.env;
        self.runtime.block_on(async {
            driver.finish(env).await;
            env.emitter.flush(true).await;
        });
        self.collect(None)
    }

    fn collect(&mut self, input: Option<(u64, u64)>) -> Executed {
        let mut out = Executed::default();
        for (stream, rx) in &self.captured {
            let batches = rx.try_iter().filter_map(|m| match m {
                Inbound::Tuples(b) => Some(b),
                Inbound::Barrier(_) => None,
            });
            for t in batches.flatten() {
                out.emitted.push(Emitted {
                    stream: stream.clone(),
                    anchored: t.is_tracked(),
                    values: t.into_values(),
                });
            }
        }
        for msg in self.acks.try_iter().flatten() {
            match msg {
                AckMsg::Ack { root, .. } => {
                    out.acked |= input.is_some_and(|(r, _)| r == root);
                    out.acked_inputs.push(root as usize - 1);
                }
                AckMsg::Fail { root } => {
                    out.failed |= input.is_some_and(|(r, _)| r == root);
                    out.failed_inputs.push(root as usize - 1);
                }
                _ => {}
            }
        }
        out.errors = self.env.metrics.errors.swap(0, Relaxed);
        out.restarts = self.env.metrics.restarts.swap(0, Relaxed);
        out
    }
}

fn declare(f: impl FnOnce(&mut OutputDeclarer)) -> Vec<StreamDecl> {
    let mut d = OutputDeclarer::default();
    f(&mut d);
    d.streams
}

/// The shared state of a [`VecSpout`]: the messages to emit, and what happened to each.
struct VecSpoutState {
    fields: Vec<SmolStr>,
    values: Vec<Values>,
    queue: Mutex<VecDeque<u64>>,
    acked: Mutex<Vec<u32>>,
    failed: Mutex<Vec<u32>>,
    emitted: AtomicU64,
    replay: bool,
    tracked: bool,
    /// Fresh messages emitted per call into one shared tree (0: one per call, each its own).
    shared: usize,
}

/// An in-memory spout: emits each of a list of tuples with its index as message id, replays
/// failed ones (unless told not to), and counts acks and fails per message. All its tasks share
/// one list, so each message is emitted by one task at a time.
#[derive(Clone)]
pub struct VecSpout {
    state: Arc<VecSpoutState>,
}

impl VecSpout {
    /// A spout emitting `values` on the default stream with `fields`, tracked, replaying fails.
    pub fn new<I, S>(fields: I, values: Vec<Values>) -> VecSpout
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        let n = values.len();
        VecSpout {
            state: Arc::new(VecSpoutState {
                fields: fields.into_iter().map(Into::into).collect(),
                values,
                queue: Mutex::new((0..n as u64).collect()),
                acked: Mutex::new(vec![0; n]),
                failed: Mutex::new(vec![0; n]),
                emitted: AtomicU64::new(0),
                replay: true,
                tracked: true,
                shared: 0,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut VecSpoutState)) -> VecSpout {
        f(Arc::get_mut(&mut self.state).expect("configure a VecSpout before sharing it"));
        self
    }

    /// Do not replay failed messages.
    pub fn without_replay(self) -> VecSpout {
        self.with(|s| s.replay = false)
    }

    /// Emit without message ids (untracked).
    pub fn untracked(self) -> VecSpout {
        self.with(|s| s.tracked = false)
    }

    /// Emit up to `per_call` fresh messages per call into the call's shared tree
    /// ([`SpoutCollector::emit_shared`]); a replay (a message failed before) is emitted alone,
    /// in a tree of its own.
    pub fn shared_trees(self, per_call: usize) -> VecSpout {
        self.with(|s| s.shared = per_call.max(1))
    }

    /// A factory for the builder's `set_spout`.
    pub fn factory(&self) -> SpoutFactory {
        let state = self.state.clone();
        SpoutFactory::new(move || VecSpoutTask {
            state: state.clone(),
        })
    }

    /// How many times each message was acked, by index.
    pub fn acked(&self) -> Vec<u32> {
        lock(&self.state.acked).clone()
    }

    /// How many times each message was failed, by index.
    pub fn failed(&self) -> Vec<u32> {
        lock(&self.state.failed).clone()
    }

    /// Whether every message has been acked at least once.
    pub fn all_acked(&self) -> bool {
        lock(&self.state.acked).iter().all(|&n| n > 0)
    }

    /// Tuples emitted so far, replays included.
    pub fn emitted(&self) -> u64 {
        self.state.emitted.load(Relaxed)
    }
}

/// One task of a [`VecSpout`].
pub struct VecSpoutTask {
    state: Arc<VecSpoutState>,
}

impl Spout for VecSpoutTask {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.state.fields.iter().cloned());
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let st = &self.state;
        for _ in 0..st.shared.max(1) {
            let mut queue = lock(&st.queue);
            let Some(&i) = queue.front() else { break };
            // Without shared trees every message, with them a replay, goes in a call of its own.
            let alone = st.shared == 0 || lock(&st.failed)[i as usize] > 0;
            if alone && out.emitted() > 0 {
                break;
            }
            queue.pop_front();
            drop(queue);
            st.emitted.fetch_add(1, Relaxed);
            let values = st.values[i as usize].clone();
            if alone || !st.tracked {
                out.emit(values, st.tracked.then_some(i));
                if alone {
                    break;
                }
            } else {
                out.emit_shared(values, i);
            }
        }
        Ok(())
    }

    fn ack(&mut self, i: u64) {
        lock(&self.state.acked)[i as usize] += 1;
    }

    fn fail(&mut self, i: u64) {
        lock(&self.state.failed)[i as usize] += 1;
        if self.state.replay {
            lock(&self.state.queue).push_back(i);
        }
    }

    fn is_exhausted(&self) -> bool {
        lock(&self.state.queue).is_empty()
    }
}

/// One tuple received by a [`CaptureBolt`].
#[derive(Clone, Debug, PartialEq)]
pub struct Captured {
    /// The values.
    pub values: Values,
    /// The stream it came on.
    pub stream: SmolStr,
    /// The component that emitted it.
    pub source: SmolStr,
    /// The task that received it.
    pub task: TaskId,
}

/// A sink that records every tuple it receives (and acks it). All its tasks share one record.
#[derive(Clone, Default)]
pub struct CaptureBolt {
    seen: Arc<Mutex<Vec<Captured>>>,
}

impl CaptureBolt {
    /// A new, empty capture.
    pub fn new() -> CaptureBolt {
        CaptureBolt::default()
    }

    /// A factory for the builder's `set_bolt`.
    pub fn factory(&self) -> BoltFactory {
        let seen = self.seen.clone();
        BoltFactory::basic(move || CaptureTask {
            seen: seen.clone(),
            task: TaskId(u32::MAX),
        })
    }

    /// Everything received so far.
    pub fn tuples(&self) -> Vec<Captured> {
        lock(&self.seen).clone()
    }

    /// How many tuples were received so far.
    pub fn len(&self) -> usize {
        lock(&self.seen).len()
    }

    /// Whether nothing was received yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One task of a [`CaptureBolt`].
pub struct CaptureTask {
    seen: Arc<Mutex<Vec<Captured>>>,
    task: TaskId,
}

impl BasicBolt for CaptureTask {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.task = ctx.task_id();
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        lock(&self.seen).push(Captured {
            values: input.values().into(),
            stream: input.stream().into(),
            source: input.source_component().into(),
            task: self.task,
        });
        Ok(())
    }
}
