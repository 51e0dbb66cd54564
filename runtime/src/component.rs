//! The component traits users implement: [`Spout`] (a source), [`BasicBolt`] (synchronous, acked
//! for you) and [`Bolt`] (async, manual ack/fail), with the [`TaskContext`] each task is given and
//! the [`OutputDeclarer`] that names a component's output streams.
//!
//! Each trait doc is the lifecycle contract: who calls which method, on which task, what must not
//! block, and what the component owes the runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use smol_str::SmolStr;

use crate::checkpoint::CheckpointId;
use crate::collector::{BasicCollector, OutputCollector, SpoutCollector};
use crate::config::Config;
use crate::state::{Restore, Snapshot};
use crate::tuple::{DEFAULT_STREAM, TaskId, Tuple};

/// The error type components return: any error, boxed. Use `?` on anything that implements
/// `std::error::Error`, or `"message".into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One output stream a component declares: its name, its fields, and whether it is direct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDecl {
    /// The stream name ([`DEFAULT_STREAM`] unless named).
    pub name: SmolStr,
    /// Field names, in emit order.
    pub fields: Vec<SmolStr>,
    /// A direct stream: every emit names the receiving task (`emit_direct`), and consumers must
    /// subscribe with the direct grouping.
    pub direct: bool,
    /// The stream passes its input through: its fields are those of the component's input
    /// streams (which must all have the same fields), filled in when the topology is validated
    /// ([`OutputDeclarer::declare_pass_through`]).
    pub pass_through: bool,
}

/// Collects the output streams of a component; passed to `declare_outputs`.
#[derive(Debug, Default)]
pub struct OutputDeclarer {
    pub(crate) streams: Vec<StreamDecl>,
}

impl OutputDeclarer {
    /// Declares the `default` stream with these fields.
    pub fn declare<I, S>(&mut self, fields: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        self.declare_stream(DEFAULT_STREAM, fields)
    }

    /// Declares a named stream with these fields.
    pub fn declare_stream<I, S>(&mut self, stream: &str, fields: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        self.push(stream, fields, false)
    }

    /// Declares a direct stream: each emit names its receiving task (`emit_direct`).
    pub fn declare_direct_stream<I, S>(&mut self, stream: &str, fields: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        self.push(stream, fields, true)
    }

    /// Declares a stream whose fields are those of this bolt's inputs — a filter, a sampler, a
    /// router: anything that emits its input values unchanged. When the topology is validated the
    /// stream gets the fields of the bolt's input streams, which must all have the same fields
    /// (an error names them otherwise).
    pub fn declare_pass_through(&mut self, stream: &str) -> &mut Self {
        self.push(stream, Vec::<SmolStr>::new(), false);
        if let Some(last) = self.streams.last_mut() {
            last.pass_through = true;
        }
        self
    }

    fn push<I, S>(&mut self, stream: &str, fields: I, direct: bool) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<SmolStr>,
    {
        self.streams.push(StreamDecl {
            name: stream.into(),
            fields: fields.into_iter().map(Into::into).collect(),
            direct,
            pass_through: false,
        });
        self
    }

    /// The streams declared so far.
    pub fn streams(&self) -> &[StreamDecl] {
        &self.streams
    }
}

/// What a component declares about itself on its declaration instance.
pub(crate) struct Declared {
    pub(crate) streams: Vec<StreamDecl>,
    /// The tick interval a bolt asks for when the topology sets none.
    pub(crate) tick: Option<Duration>,
    /// A bolt keeps state ([`BasicBolt::has_state`]); a spout can rewind ([`Spout::rewinds`]).
    pub(crate) state: bool,
}

/// Calls a factory once to read what the component declares; a panic becomes an error.
pub(crate) fn declared<C>(
    make: &dyn Fn() -> C,
    declare: impl FnOnce(&C, &mut OutputDeclarer) -> (Option<Duration>, bool),
) -> Result<Declared, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let c = make();
        let mut d = OutputDeclarer::default();
        let (tick, state) = declare(&c, &mut d);
        Declared {
            streams: d.streams,
            tick,
            state,
        }
    }))
    .map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string())
    })
}

/// What a task knows about itself and the topology; given to `open`/`prepare`.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub(crate) inner: Arc<ContextShared>,
    pub(crate) component: SmolStr,
    pub(crate) task: TaskId,
    pub(crate) task_index: usize,
    pub(crate) parallelism: usize,
}

/// The part of the context every task of a topology shares.
#[derive(Debug)]
pub(crate) struct ContextShared {
    pub(crate) topology: SmolStr,
    pub(crate) config: Config,
    /// Every component and its tasks, in declaration order.
    pub(crate) components: Vec<(SmolStr, Vec<TaskId>)>,
    /// Each bolt's input components: those its declared inputs subscribe to, each once, in the
    /// order of its inputs (a component with none is absent).
    pub(crate) inputs: Vec<(SmolStr, Vec<SmolStr>)>,
    pub(crate) tick_intervals: Vec<(SmolStr, Option<Duration>)>,
    /// The topology takes checkpoints.
    pub(crate) checkpointed: bool,
}

impl TaskContext {
    /// The topology's name.
    pub fn topology(&self) -> &str {
        &self.inner.topology
    }
    /// This component's id.
    pub fn component_id(&self) -> &str {
        &self.component
    }
    /// This task's id (unique in the topology).
    pub fn task_id(&self) -> TaskId {
        self.task
    }
    /// This task's index among its component's tasks, from 0.
    pub fn task_index(&self) -> usize {
        self.task_index
    }
    /// How many tasks this component runs.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }
    /// The topology's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// The task ids of a component (for `emit_direct`), or `None` if there is no such component.
    pub fn component_tasks(&self, component: &str) -> Option<&[TaskId]> {
        self.inner
            .components
            .iter()
            .find(|(id, _)| id == component)
            .map(|(_, t)| t.as_slice())
    }
    /// Every task that can send this task tuples, by upstream component: each component this
    /// component's declared inputs subscribe to (once, however many of its streams are
    /// subscribed, in the order of the inputs) with all of its tasks — whatever the grouping, so
    /// a task listed may send this one nothing (a fields grouping routes its keys elsewhere, a
    /// direct grouping names other tasks). Empty for a spout. An event-time operator takes its
    /// watermark over these tasks, so that one that has not sent yet holds it back.
    pub fn input_tasks(&self) -> impl Iterator<Item = (&str, &[TaskId])> + '_ {
        self.inner
            .inputs
            .iter()
            .find(|(id, _)| *id == self.component)
            .map(|(_, from)| from.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|from| Some((from.as_str(), self.component_tasks(from)?)))
    }
    /// Whether this run takes checkpoints ([`takes_checkpoints`](crate::takes_checkpoints)). A
    /// spout that rewinds then keeps its position in them, and commits a position of its own
    /// (an offsets file, a consumer group's offsets) only when a checkpoint completes, with that
    /// checkpoint's position: never ahead of the state it goes with.
    pub fn checkpointed(&self) -> bool {
        self.inner.checkpointed
    }

    /// This component's tick interval, if it has one.
    pub fn tick_interval(&self) -> Option<Duration> {
        self.inner
            .tick_intervals
            .iter()
            .find(|(id, _)| *id == self.component)
            .and_then(|(_, t)| *t)
    }
}

/// A source of tuples.
///
/// # Lifecycle
/// For each task the runtime creates one instance from the component's factory (a factory is also
/// called once when the topology is built, only to read [`declare_outputs`](Spout::declare_outputs);
/// keep construction cheap and free of I/O, and do that in `open`). Then, all on that task and
/// never concurrently:
///
/// 1. [`open`](Spout::open) once;
/// 2. [`activate`](Spout::activate);
/// 3. repeatedly, [`next_tuple`](Spout::next_tuple), interleaved with [`ack`](Spout::ack) and
///    [`fail`](Spout::fail) for the trees it emitted, as they complete;
/// 4. [`deactivate`](Spout::deactivate) when the topology is stopped (acks keep arriving while
///    in-flight trees drain);
/// 5. [`close`](Spout::close) once, at the end.
///
/// # What must not block
/// `next_tuple` is async: awaiting I/O in it does not block a thread, but acks and fails are only
/// delivered between calls, so it should return within a few milliseconds when no data is ready
/// (emitting nothing); the runtime then backs off briefly. `ack`, `fail`, `activate` and
/// `deactivate` are synchronous and must return promptly.
///
/// # Delivery
/// A tuple emitted with a message id is tracked: exactly one of `ack(id)` (the whole tree was
/// processed) or `fail(id)` (a bolt failed it, it timed out, or a task failed) follows. Replaying
/// a failed message is the spout's choice. Messages emitted with
/// [`SpoutCollector::emit_shared`](crate::SpoutCollector::emit_shared) in one call share a tree:
/// each still gets one `ack` or `fail`, all of them together. With acking off, `ack` follows
/// every tracked emit at once. If the spout panics or returns an error, the instance is dropped,
/// a new one is created and opened, and every message the old one had pending is failed to the
/// new one (so it can replay).
pub trait Spout: Send + 'static {
    /// What identifies an emitted message to this spout in `ack`/`fail` (an offset, a key, ...).
    type MessageId: Send + 'static;

    /// Declares the output streams and their fields. Called on a fresh instance, on any thread.
    fn declare_outputs(&self, out: &mut OutputDeclarer);

    /// Connects to sources and sets up state. An error here is logged and counted, and the task
    /// retries with a new instance after a back-off.
    fn open(&mut self, ctx: &TaskContext) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Emits zero or more tuples through `out`. Emitting nothing tells the runtime there is
    /// no data right now. An error is logged and counted and restarts the spout (see above).
    fn next_tuple(
        &mut self,
        out: &mut SpoutCollector<'_, Self::MessageId>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// The tree of the tuple emitted with `msg_id` was fully processed.
    fn ack(&mut self, msg_id: Self::MessageId) {
        let _ = msg_id;
    }

    /// The tree of the tuple emitted with `msg_id` failed or timed out; replay it if wanted.
    fn fail(&mut self, msg_id: Self::MessageId) {
        let _ = msg_id;
    }

    /// The spout is (again) being asked for tuples.
    fn activate(&mut self) {}

    /// The spout will not be asked for tuples until activated again.
    fn deactivate(&mut self) {}

    /// Whether this spout can rewind to a position it wrote into a checkpoint
    /// ([`snapshot`](Spout::snapshot)), so that a run resuming from that checkpoint reads again
    /// everything after it. Exactly-once needs it of every spout. Read on the declaration
    /// instance. Default `false`.
    fn rewinds(&self) -> bool {
        false
    }

    /// A checkpoint is being taken: write the read position (every message emitted so far is
    /// before it; with acking on, write the position before which every message is acked).
    /// Called on the task between `next_tuple` calls; keep it quick (copy, do not do I/O).
    /// An error makes this checkpoint fail (processing goes on).
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let _ = snap;
        Ok(())
    }

    /// The run resumes from a checkpoint: take up the position it holds. Called after `open`,
    /// before the first `next_tuple`, only when a checkpoint is restored. An error stops the
    /// topology (its state would be wrong), naming the component.
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let _ = from;
        Ok(())
    }

    /// Checkpoint `id` is complete: every task stored its state. The moment to commit offsets
    /// to the source (a Kafka consumer group), as Flink's sources do.
    fn checkpoint_complete(&mut self, id: CheckpointId) {
        let _ = id;
    }

    /// True when the source has ended: nothing more will be emitted except replays of failed
    /// messages. A topology whose spouts are all exhausted with nothing pending is *idle*
    /// ([`TopologyHandle::wait_until_idle`](crate::TopologyHandle::wait_until_idle)).
    fn is_exhausted(&self) -> bool {
        false
    }

    /// Releases resources. Called once, last.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A synchronous bolt whose inputs are anchored and acked for you: the common case (filter, map,
/// split, count) with no per-tuple boxing or futures.
///
/// # Lifecycle
/// One instance per task, created from the factory (which is also called once at build time to
/// read [`declare_outputs`](BasicBolt::declare_outputs)). On that task, never concurrently:
/// [`prepare`](BasicBolt::prepare) once, then [`execute`](BasicBolt::execute) for each input
/// tuple, [`tick`](BasicBolt::tick) at the component's tick interval and
/// [`input_drained`](BasicBolt::input_drained) each time the input queue runs dry after input,
/// then, when the topology stops and its inputs are drained, [`finish`](BasicBolt::finish) and
/// [`cleanup`](BasicBolt::cleanup) once each.
///
/// # Acking
/// Every tuple emitted during `execute` is anchored to the input. When `execute` returns `Ok`, the
/// input is acked; when it returns `Err`, the input is failed (its spout sees `fail` and may
/// replay), and the error is logged and counted. A panic fails the input too, and the task
/// continues with a fresh instance (`prepare` again). Tuples emitted from `tick` are not anchored.
///
/// # Failures under checkpoints and exactly-once
/// With checkpoints, a panic of a bolt that [`has_state`](BasicBolt::has_state) stops the run:
/// a fresh instance would start empty, so the run resumes from the newest checkpoint (`topo
/// run` does so by itself, as Flink restarts a job). Under `guarantee = "exactly_once"` no input
/// is tracked, so nothing replays what a panicking instance was processing or held: a panic in
/// any bolt stops the run that way. An `Err` from `execute` under exactly-once is that input's
/// outcome, counted and logged, not replayed (a run resumed from an earlier checkpoint decides
/// the same again): a bolt that must not lose an input to a passing error (a write that failed)
/// keeps it and tries again, as the sinks do.
///
/// # What must not block
/// All methods run on a runtime worker thread: they must not block on I/O or sleep. A bolt that
/// needs I/O is a [`Bolt`].
pub trait BasicBolt: Send + 'static {
    /// Declares the output streams; the default declares none (a sink).
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        let _ = out;
    }

    /// Sets up state before the first tuple. An error is logged and counted, and the task retries
    /// with a new instance after a back-off.
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one input tuple.
    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError>;

    /// Called at the component's tick interval (windows, periodic flushes).
    fn tick(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let _ = out;
        Ok(())
    }

    /// The tick interval this bolt needs when the topology sets none for it (a window's slide, a
    /// sink's flush interval). Read once, on the declaration instance; `None` = no ticks.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// The task's input queue has run dry: nothing more is waiting right now. Called on the
    /// task, between inputs, when the task has executed input since the last call and finds its
    /// queue empty, just before it waits for more; see [`Bolt::input_drained`] for the whole
    /// contract. Tuples emitted here are not anchored. An error is logged and counted, as a
    /// tick's is.
    fn input_drained(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let _ = out;
        Ok(())
    }

    /// Whether this bolt keeps state that must survive a crash (counts, windows, a join's
    /// buffers), written by [`snapshot`](BasicBolt::snapshot). A topology with such a bolt
    /// takes checkpoints. Read on the declaration instance. Default `false`.
    fn has_state(&self) -> bool {
        false
    }

    /// A checkpoint is being taken: write the state ([`Snapshot::put`],
    /// [`Snapshot::put_keyed`]). Every input before the checkpoint's barriers has been
    /// executed, none after, and [`input_drained`](BasicBolt::input_drained) was called just
    /// before (a sink writes its batch there: what it received before the barrier must be
    /// durable, or in its state, when the checkpoint completes). Keep it quick: copy, do not
    /// do I/O (the files are written off the task). An error makes this checkpoint fail
    /// (processing goes on).
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let _ = snap;
        Ok(())
    }

    /// The run resumes from a checkpoint: read the state back ([`Restore::get`],
    /// [`Restore::keyed`]). Called after `prepare`, before the first input, only when a
    /// checkpoint is restored. An error stops the topology, naming the component.
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let _ = from;
        Ok(())
    }

    /// Checkpoint `id` is complete. Tuples emitted here are not anchored.
    fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        out: &mut BasicCollector<'_>,
    ) -> Result<(), BoxError> {
        let _ = (id, out);
        Ok(())
    }

    /// Every input has ended: emit what is still held — open windows, partial batches. Tuples
    /// emitted here are not anchored. Called at most once, before
    /// [`cleanup`](BasicBolt::cleanup), when the sources are exhausted or the topology stops.
    ///
    /// With checkpoints, a stop before the end of input takes a savepoint (Flink's stop with a
    /// savepoint): when it completes, a bolt that [`has_state`](BasicBolt::has_state) is *not*
    /// finished, as what it holds is in the savepoint and the run resuming from it goes on with
    /// it (fired at the stop too, a window's results would be emitted twice); nor is it after a
    /// failure the newest checkpoint repairs. Under exactly-once, from the moment such a stop
    /// asks for its savepoint, a stateful bolt gets no more ticks (a tick would fire what the
    /// savepoint keeps; under at-least-once ticks go on, as firing a window completes the trees
    /// the stop waits for). Stateless bolts are finished (a sink writes what it still holds). A stateful
    /// bolt is finished at the end of the sources, on a drained stop
    /// ([`StopMode::Drain`](crate::StopMode::Drain), `topo run --drain`), without checkpoints,
    /// and when the stop's savepoint failed (nothing durable covers its state).
    fn finish(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let _ = out;
        Ok(())
    }

    /// After [`finish`](BasicBolt::finish): emits the next part of what the bolt still has to
    /// emit at the end and returns whether more is left. It is called again, each time after
    /// what the previous call emitted went into the downstream queues (waiting for room there:
    /// backpressure), until it returns `false` (or fails). A bolt with a large final output (a
    /// count's whole map) emits it here a part at a time, so its task holds one part in memory
    /// rather than all of it. Tuples emitted here are not anchored. Default: nothing more.
    fn finish_next(&mut self, out: &mut BasicCollector<'_>) -> Result<bool, BoxError> {
        let _ = out;
        Ok(false)
    }

    /// Releases resources when the task ends.
    fn cleanup(&mut self) {}
}

/// A bolt with manual anchoring, ack and fail, and async I/O: sinks that ack after a durable
/// write, joins and windows that hold tuples.
///
/// # Lifecycle
/// As [`BasicBolt`]: [`prepare`](Bolt::prepare) once, then [`execute`](Bolt::execute) per input,
/// [`tick`](Bolt::tick) per tick and [`input_drained`](Bolt::input_drained) each time the input
/// queue runs dry after input, never concurrently, then [`finish`](Bolt::finish) and
/// [`cleanup`](Bolt::cleanup).
///
/// # What the bolt owes the runtime
/// Every input must eventually be acked ([`OutputCollector::ack`]) or failed
/// ([`OutputCollector::fail`]), in `execute` or later (a bolt may keep tuples and ack them in a
/// later `execute` or `tick`). An input never acked times out at its spout. Emits are anchored to
/// the tuples named in [`OutputCollector::emit_anchored`]. An `Err` from `execute` fails that input
/// if it is not yet acked or failed. A panic fails every input the bolt still holds and the task
/// continues with a fresh instance (`prepare` again). When the task ends, inputs still held are
/// failed.
///
/// With checkpoints, a panic of a stateful bolt, and under `guarantee = "exactly_once"` a panic
/// of any bolt (no input is tracked, so failing its inputs replays nothing), stops the run to
/// resume from the newest checkpoint; an `Err` under exactly-once is counted and logged, and
/// the input is not replayed: see [`BasicBolt`]'s "Failures under checkpoints and
/// exactly-once".
///
/// # What must not block
/// The methods are async: await I/O freely, but do not block the thread (no blocking I/O, no
/// `std::thread::sleep`); while `execute` awaits, this task takes no other input.
pub trait Bolt: Send + 'static {
    /// Declares the output streams; the default declares none (a sink).
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        let _ = out;
    }

    /// Sets up state and connections before the first tuple. An error is logged and counted, and
    /// the task retries with a new instance after a back-off.
    fn prepare(&mut self, ctx: &TaskContext) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Processes one input tuple; it is the bolt's until acked or failed.
    fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Called at the component's tick interval (windows, batch flushes).
    fn tick(
        &mut self,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = out;
        async { Ok(()) }
    }

    /// The tick interval this bolt needs when the topology sets none for it (a window's slide, a
    /// sink's flush interval). Read once, on the declaration instance; `None` = no ticks.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// The task's input queue has run dry: nothing more is waiting right now. The moment for a
    /// bolt that holds inputs to write them (a sink's pending batch) rather than wait for more
    /// that may never come: with acking on, a spout stops emitting at `max_spout_pending`, so a
    /// batch that waits to fill can wait out its whole interval.
    ///
    /// # When it is called
    /// On the task, never concurrently with another method: after the task has executed at least
    /// one input since the last call, when it finds its input queue empty, just before it waits
    /// for more input. So it is called at most once each time the queue runs dry, and never
    /// while input keeps waiting: under load, when the queue is never empty, it is not called at
    /// all, and batches fill. When input trickles in, it can be called as often as once per
    /// input transfer batch; it must then be cheap when nothing is pending (return at once, no
    /// allocation, no lock). It is not called at the end of input ([`finish`](Bolt::finish) is).
    ///
    /// # What may be done here
    /// Anything `tick` may do: write, ack or fail held inputs, emit (anchored to held inputs or
    /// not), await I/O. Input that arrives meanwhile waits in the queue. An `Err` is logged and
    /// counted, as a tick's is; a panic fails every input the bolt holds, as in `execute`.
    fn input_drained(
        &mut self,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = out;
        async { Ok(()) }
    }

    /// Whether this bolt keeps state that must survive a crash; see [`BasicBolt::has_state`].
    fn has_state(&self) -> bool {
        false
    }

    /// A checkpoint is being taken: write the state; see [`BasicBolt::snapshot`]
    /// ([`input_drained`](Bolt::input_drained) was awaited just before: a sink's batch is
    /// written then). Inputs the bolt holds un-acked are its own business: a bolt that holds
    /// inputs across a checkpoint (a window) writes them into its state.
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let _ = snap;
        Ok(())
    }

    /// The run resumes from a checkpoint: read the state back; see [`BasicBolt::restore`].
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let _ = from;
        Ok(())
    }

    /// Checkpoint `id` is complete: a two-phase-commit sink publishes what it wrote before
    /// that checkpoint's barrier (pending files renamed into place, a transaction committed).
    fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (id, out);
        async { Ok(()) }
    }

    /// Every input has ended: emit, write and ack what is still held — open windows, a sink's
    /// last batch. Called at most once, before [`cleanup`](Bolt::cleanup); inputs still held
    /// afterwards are failed. As for [`BasicBolt::finish`], a stateful bolt is not finished
    /// when a stop ended in a savepoint (the run resuming from it goes on with what the bolt
    /// holds) or after a failure the newest checkpoint repairs; stateless bolts always are.
    fn finish(
        &mut self,
        out: &mut OutputCollector<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = out;
        async { Ok(()) }
    }

    /// Releases resources when the task ends.
    fn cleanup(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
