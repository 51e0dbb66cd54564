//! Collectors: where components emit, and where emitted tuples are routed, anchored and batched.
//!
//! ```text
//! component ── emit ──► collector ── Router::route ──► per-target batch ─┬─ whole: try_send ──► target queue
//!                          │                                              └─ queue full: ready ── flush ──┘
//!                          │ (anchors: new random edge ids, XORed into the input's ack value)
//!                          └── ack / fail / init ──► per-acker batch ── flush ──► acker queue
//! ```
//!
//! A component only ever pushes into buffers its task owns (`Emitter`) and never waits on a
//! channel. A batch that becomes whole goes into its target's queue at once if the queue has
//! room, else it waits, in order, for the task's next flush, before the next input: the flush
//! waits for room, and that wait is backpressure. The task also sends every partial batch when
//! its input runs dry (or a millisecond has passed), so batching costs no latency when the
//! topology is idle.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use smallvec::SmallVec;
use smol_str::SmolStr;

use crate::acker::{AckMsg, IdMap};
use crate::checkpoint::{Barrier, Inbound};
use crate::grouping::{Router, Targets};
use crate::metrics::{QueueGauge, TaskMetrics};
use crate::tap::TaskTaps;
use crate::tuple::{Anchors, StreamSchema, TaskId, Tuple};
use crate::value::Values;

/// Why an emit was refused. The runtime fails the input (or the spout message) and logs this.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmitError {
    /// The component declared no stream of that name.
    #[error("emit on undeclared stream `{stream}` (declared: {})", declared.join(", "))]
    UnknownStream {
        /// The stream named in the emit.
        stream: SmolStr,
        /// The streams the component declared.
        declared: Vec<SmolStr>,
    },
    /// The number of values differs from the stream's declared fields.
    #[error("emit on stream `{stream}` with {got} values, but it declares {} fields ({})", fields.len(), fields.join(", "))]
    Arity {
        /// The stream.
        stream: SmolStr,
        /// How many values were emitted.
        got: usize,
        /// The declared fields.
        fields: Vec<SmolStr>,
    },
    /// `emit` on a direct stream, or `emit_direct` on a stream that is not direct.
    #[error("stream `{stream}` is {}; use {}", if *direct { "direct" } else { "not direct" }, if *direct { "emit_direct" } else { "emit" })]
    DirectMismatch {
        /// The stream.
        stream: SmolStr,
        /// Whether the stream is declared direct.
        direct: bool,
    },
    /// `emit_direct` named a task that does not subscribe to the stream.
    #[error("emit_direct to task {task}, which does not subscribe to stream `{stream}`")]
    UnknownTask {
        /// The stream.
        stream: SmolStr,
        /// The task named.
        task: TaskId,
    },
}

/// One stream a task emits on, and who subscribes to it.
pub(crate) struct OutStream {
    pub(crate) schema: &'static StreamSchema,
    pub(crate) subs: Vec<Subscription>,
}

/// One bolt's subscription to a stream, as seen by one emitting task.
pub(crate) struct Subscription {
    pub(crate) router: Router,
    /// The subscriber's tasks, ascending.
    pub(crate) tasks: Vec<TaskId>,
    /// For each of those tasks, its position in `Emitter::targets`.
    pub(crate) slots: Vec<usize>,
    /// For each of those tasks, its receive queue's length.
    pub(crate) loads: Vec<Arc<QueueGauge>>,
    /// Tuples routed along this subscription since the last `publish`.
    pub(crate) sent: u64,
    /// The subscription's counter, shared by every emitting task.
    pub(crate) edge: Arc<AtomicU64>,
}

/// How many emptied batch buffers a bolt task's [`BatchPool`] keeps at most.
const POOLED_BATCHES: usize = 4;

/// The emptied batch buffers of one bolt task, on their way back to the tasks that send to it.
///
/// ```text
///  sender: take a buffer (or allocate) ─► fill ─► queue ─► bolt task: execute, empty ─► give back
/// ```
///
/// A batch's buffer (`batch_size` tuples, tens of KiB) is used again instead of being freed by the
/// receiving thread and allocated anew by the sending one: no allocator round trip across threads,
/// and no fresh pages to fault in after the allocator returned them to the system. Bounded: a
/// buffer given back to a full pool is freed.
#[derive(Clone, Debug)]
pub(crate) struct BatchPool {
    tx: flume::Sender<Vec<Tuple>>,
    rx: flume::Receiver<Vec<Tuple>>,
}

impl BatchPool {
    /// An empty pool.
    pub(crate) fn new() -> BatchPool {
        let (tx, rx) = flume::bounded(POOLED_BATCHES);
        BatchPool { tx, rx }
    }

    /// An empty buffer with room for `batch` tuples: a pooled one if there is one.
    #[inline]
    pub(crate) fn take(&self, batch: usize) -> Vec<Tuple> {
        match self.rx.try_recv() {
            Ok(v) if v.capacity() >= batch => v,
            _ => Vec::with_capacity(batch),
        }
    }

    /// Empties `buf` (its tuples are dropped here) and keeps it for a sender, if there is room.
    #[inline]
    pub(crate) fn give(&self, mut buf: Vec<Tuple>) {
        buf.clear();
        let _ = self.tx.try_send(buf);
    }
}

/// A downstream task this task sends to: its batch being filled, whole batches waiting for room
/// in its queue, and the queue.
pub(crate) struct Target {
    pub(crate) buf: Vec<Tuple>,
    /// Whole batches its full queue could not take yet, oldest first; sent before `buf`.
    pub(crate) ready: std::collections::VecDeque<Vec<Tuple>>,
    pub(crate) tx: flume::Sender<Inbound>,
    pub(crate) gauge: Arc<QueueGauge>,
    /// Where the next batch's buffer comes from: the receiving task gives its emptied ones back.
    pool: BatchPool,
}

impl Target {
    /// A target sending into `tx`, whose queue length `gauge` shows, taking its buffers from the
    /// receiver's `pool`.
    pub(crate) fn new(
        tx: flume::Sender<Inbound>,
        gauge: Arc<QueueGauge>,
        batch: usize,
        pool: BatchPool,
    ) -> Target {
        Target {
            buf: pool.take(batch),
            ready: std::collections::VecDeque::new(),
            tx,
            gauge,
            pool,
        }
    }

    /// `buf` holds a whole batch: it goes into the queue now if the queue has room and nothing
    /// waits before it, else it waits in `ready` (in order) for the next flush. A batch is
    /// never copied, however many a call emits (a window fired, a count's final map). Returns
    /// whether a batch waits.
    #[inline]
    fn seal(&mut self, batch: usize) -> bool {
        let full = std::mem::replace(&mut self.buf, self.pool.take(batch));
        if !self.ready.is_empty() {
            self.ready.push_back(full);
            return true;
        }
        let n = full.len();
        self.gauge.add(n);
        match self.tx.try_send(Inbound::Tuples(full)) {
            Ok(()) => false,
            Err(flume::TrySendError::Full(Inbound::Tuples(full))) => {
                self.gauge.sub(n);
                self.ready.push_back(full);
                true
            }
            // A queue whose receiver is gone (the topology is being torn down) drops the batch.
            Err(_) => {
                self.gauge.sub(n);
                false
            }
        }
    }
}

/// An acker task this task reports to.
pub(crate) struct AckerLink {
    pub(crate) buf: Vec<AckMsg>,
    pub(crate) tx: flume::Sender<Vec<AckMsg>>,
    pub(crate) gauge: Arc<QueueGauge>,
}

/// A task's output side: streams, routers, batches and acker links. Owned by the task; survives
/// restarts of the component instance.
pub(crate) struct Emitter {
    pub(crate) task: TaskId,
    pub(crate) streams: Vec<OutStream>,
    pub(crate) default_stream: Option<usize>,
    pub(crate) targets: Vec<Target>,
    pub(crate) ackers: Vec<AckerLink>,
    pub(crate) batch_size: usize,
    pub(crate) rng: fastrand::Rng,
    pub(crate) metrics: Arc<TaskMetrics>,
    /// The first emit error since it was last taken.
    pub(crate) error: Option<EmitError>,
    /// When the oldest tuple still buffered was buffered (for the time-based flush).
    pub(crate) oldest_buffered: Option<Instant>,
    /// Whole batches wait for room in a full queue: send them (waiting: backpressure) before
    /// executing more input, so a queue's capacity bounds what a task has in flight.
    pub(crate) has_full_batch: bool,
    /// This task's taps (see [`crate::tap`]); off unless someone watches.
    pub(crate) taps: TaskTaps,
    scratch: Targets,
    deliveries: SmallVec<[usize; 8]>,
    // Counts not yet added to `metrics`.
    emitted: u64,
    transferred: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
}

impl Emitter {
    pub(crate) fn new(
        task: TaskId,
        streams: Vec<OutStream>,
        targets: Vec<Target>,
        ackers: Vec<AckerLink>,
        batch_size: usize,
        metrics: Arc<TaskMetrics>,
    ) -> Emitter {
        let default_stream = streams
            .iter()
            .position(|s| s.schema.stream() == crate::DEFAULT_STREAM);
        Emitter {
            task,
            streams,
            default_stream,
            targets,
            ackers,
            batch_size,
            rng: fastrand::Rng::new(),
            metrics,
            error: None,
            oldest_buffered: None,
            has_full_batch: false,
            taps: TaskTaps::default(),
            scratch: Targets::new(),
            deliveries: SmallVec::new(),
            emitted: 0,
            transferred: 0,
            acked: 0,
            failed: 0,
        }
    }

    /// Whether tuple trees are tracked.
    pub(crate) fn acking(&self) -> bool {
        !self.ackers.is_empty()
    }

    /// A new random id; never 0, which would vanish in the XOR.
    pub(crate) fn new_id(&mut self) -> u64 {
        new_id(&mut self.rng)
    }

    pub(crate) fn take_error(&mut self) -> Option<EmitError> {
        self.error.take()
    }

    fn record_error(&mut self, e: EmitError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Routes `values` on `stream` (None = default) to every target its subscriptions name,
    /// giving each delivered copy the anchors `anchor` makes. Returns how many copies were
    /// delivered, or `None` if the emit was refused (the error is recorded).
    pub(crate) fn emit_with(
        &mut self,
        stream: Option<&str>,
        direct: Option<TaskId>,
        values: Values,
        mut anchor: impl FnMut(&mut fastrand::Rng) -> Anchors,
    ) -> Option<usize> {
        let index = match stream {
            None => self.default_stream,
            Some(name) => self.streams.iter().position(|s| s.schema.stream() == name),
        };
        let Some(index) = index else {
            let declared = self
                .streams
                .iter()
                .map(|s| SmolStr::new(s.schema.stream()))
                .collect();
            self.record_error(EmitError::UnknownStream {
                stream: stream.unwrap_or(crate::DEFAULT_STREAM).into(),
                declared,
            });
            return None;
        };
        let out = &mut self.streams[index];
        let schema = out.schema;
        if values.len() != schema.fields().len() {
            self.record_error(EmitError::Arity {
                stream: schema.stream().into(),
                got: values.len(),
                fields: schema.fields().to_vec(),
            });
            return None;
        }
        if schema.is_direct() != direct.is_some() {
            self.record_error(EmitError::DirectMismatch {
                stream: schema.stream().into(),
                direct: schema.is_direct(),
            });
            return None;
        }

        // The common case: one subscription whose router picks one target. No list of targets
        // is built and the values move once, into the target's batch.
        if direct.is_none()
            && let [sub] = out.subs.as_mut_slice()
            && let Some(pos) = sub.router.route_one(&values, &sub.loads)
        {
            sub.sent += 1;
            let slot = sub.slots[pos];
            self.taps.emitted(schema, &values);
            self.emitted += 1;
            self.transferred += 1;
            let anchors = anchor(&mut self.rng);
            self.deliver(slot, schema, values, anchors);
            return Some(1);
        }

        // Choose every target first, so the last copy can take the values without a clone.
        self.deliveries.clear();
        for sub in &mut out.subs {
            match direct {
                Some(task) => {
                    if let Ok(pos) = sub.tasks.binary_search(&task) {
                        self.deliveries.push(sub.slots[pos]);
                        sub.sent += 1;
                    }
                }
                None => {
                    self.scratch.clear();
                    sub.router.route(&values, &sub.loads, &mut self.scratch);
                    self.deliveries
                        .extend(self.scratch.iter().map(|&pos| sub.slots[pos]));
                    sub.sent += self.scratch.len() as u64;
                }
            }
        }
        if let (Some(task), true) = (direct, self.deliveries.is_empty()) {
            self.record_error(EmitError::UnknownTask {
                stream: schema.stream().into(),
                task,
            });
            return None;
        }
        self.taps.emitted(schema, &values);

        self.emitted += 1;
        let n = self.deliveries.len();
        self.transferred += n as u64;
        for i in 0..n.saturating_sub(1) {
            let anchors = anchor(&mut self.rng);
            self.deliver(self.deliveries[i], schema, values.clone(), anchors);
        }
        if let Some(&last) = self.deliveries.last() {
            let anchors = anchor(&mut self.rng);
            self.deliver(last, schema, values, anchors);
        }
        Some(n)
    }

    /// Appends one copy of a tuple to the batch of the target at `slot`, and seals the batch
    /// when it is whole.
    #[inline(always)]
    fn deliver(
        &mut self,
        slot: usize,
        schema: &'static StreamSchema,
        values: Values,
        anchors: Anchors,
    ) {
        if self.oldest_buffered.is_none() {
            self.oldest_buffered = Some(Instant::now());
        }
        let batch = self.batch_size;
        let target = &mut self.targets[slot];
        Tuple::push_new(&mut target.buf, schema, self.task, values, anchors);
        if target.buf.len() >= batch {
            self.has_full_batch |= target.seal(batch);
        }
    }

    #[inline]
    fn acker_for(&mut self, root: u64) -> &mut AckerLink {
        let n = self.ackers.len() as u64;
        &mut self.ackers[crate::grouping::modulo(root, n) as usize]
    }

    /// Registers a new spout tree with its acker.
    pub(crate) fn ack_init(&mut self, root: u64, val: u64) {
        let spout = self.task;
        self.acker_for(root)
            .buf
            .push(AckMsg::Init { root, val, spout });
    }

    /// Notes that acker messages were buffered, so that they go out with the next time-based
    /// flush (within a millisecond) even when no tuple is emitted — a sink that acks a whole
    /// batch after a slow write must not leave the acks waiting for its input to run dry.
    #[inline]
    fn acker_buffered(&mut self) {
        if self.oldest_buffered.is_none() {
            self.oldest_buffered = Some(Instant::now());
        }
    }

    /// Acks an input: for each of its trees, its id XOR the ids of the tuples anchored to it.
    /// Consecutive acks for one tree are combined into one message (XOR is associative).
    pub(crate) fn ack(&mut self, anchors: &Anchors, ack_val: u64) {
        self.acked += 1;
        if self.ackers.is_empty() {
            return;
        }
        let batch = self.batch_size;
        let mut full = false;
        for &(root, id) in anchors {
            let buf = &mut self.acker_for(root).buf;
            match buf.last_mut() {
                Some(AckMsg::Ack { root: r, val }) if *r == root => *val ^= id ^ ack_val,
                _ => buf.push(AckMsg::Ack {
                    root,
                    val: id ^ ack_val,
                }),
            }
            full |= buf.len() >= batch;
        }
        self.has_full_batch |= full;
        if !anchors.is_empty() {
            self.acker_buffered();
        }
    }

    /// Fails an input: each of its trees fails at once.
    pub(crate) fn fail(&mut self, anchors: &Anchors) {
        self.failed += 1;
        if self.ackers.is_empty() {
            return;
        }
        let batch = self.batch_size;
        let mut full = false;
        for &(root, _) in anchors {
            let buf = &mut self.acker_for(root).buf;
            buf.push(AckMsg::Fail { root });
            full |= buf.len() >= batch;
        }
        self.has_full_batch |= full;
        if !anchors.is_empty() {
            self.acker_buffered();
        }
    }

    /// Whether a time-based flush is due: something has been buffered for over a millisecond.
    pub(crate) fn flush_due(&self, now: Instant) -> bool {
        self.oldest_buffered
            .is_some_and(|t| now.duration_since(t).as_micros() >= 1000)
    }

    /// Sends buffered batches: every acker message, and all tuple batches if `all`, else only
    /// full ones. Waits while a target queue is full (backpressure), and counts the time waited.
    pub(crate) async fn flush(&mut self, all: bool) {
        let batch = self.batch_size;
        let mut waited = std::time::Duration::ZERO;
        let mut pending = false;
        // Acker messages first, so a tree's init reaches its acker before any ack of it can.
        // They go out at every flush (a bolt flushes after each input batch, a spout after each
        // round of calls), never waiting to fill a batch: a tree completes, and its spout may
        // emit more, as soon as the last task of the tree is done with it. Combined acks of
        // shared trees are few per input batch and would otherwise wait for the time-based flush.
        for a in &mut self.ackers {
            if !a.buf.is_empty() {
                waited += send(&a.tx, &mut a.buf, &a.gauge, batch).await;
            }
        }
        self.has_full_batch = false;
        for t in &mut self.targets {
            while let Some(mut full) = t.ready.pop_front() {
                waited += send_one(&t.tx, &mut full, &t.gauge, batch).await;
            }
            if !t.buf.is_empty() {
                if all || t.buf.len() >= batch {
                    waited += send(&t.tx, &mut t.buf, &t.gauge, batch).await;
                } else {
                    pending = true;
                }
            }
        }
        if !pending {
            self.oldest_buffered = None;
        }
        if !waited.is_zero() {
            TaskMetrics::add(&self.metrics.backpressure_ns, waited.as_nanos() as u64);
        }
        self.publish();
    }

    /// Sends every buffered batch, then `barrier` to every downstream task: behind everything
    /// this task emitted before it. Waits while a queue is full.
    pub(crate) async fn barrier(&mut self, barrier: Barrier) {
        self.flush(true).await;
        for t in &self.targets {
            // A queue whose receiver is gone (the topology is being torn down) is skipped.
            let _ = t.tx.send_async(Inbound::Barrier(barrier)).await;
        }
    }

    /// Adds the counts gathered since the last call to the task's metrics.
    pub(crate) fn publish(&mut self) {
        let m = &self.metrics;
        TaskMetrics::add(&m.emitted, std::mem::take(&mut self.emitted));
        TaskMetrics::add(&m.transferred, std::mem::take(&mut self.transferred));
        TaskMetrics::add(&m.acked, std::mem::take(&mut self.acked));
        TaskMetrics::add(&m.failed, std::mem::take(&mut self.failed));
        for sub in self.streams.iter_mut().flat_map(|s| s.subs.iter_mut()) {
            TaskMetrics::add(&sub.edge, std::mem::take(&mut sub.sent));
        }
    }
}

/// Sends one batch, waiting while the queue is full; returns the time waited. A queue whose
/// receiver is gone (the topology is being torn down) drops the batch.
async fn send<T, M: From<Vec<T>>>(
    tx: &flume::Sender<M>,
    buf: &mut Vec<T>,
    gauge: &QueueGauge,
    batch: usize,
) -> std::time::Duration {
    if buf.len() <= batch {
        return send_one(tx, buf, gauge, batch).await;
    }
    // A burst (an acker link's messages of a tick or `finish` that acked many inputs) goes out
    // in batches, so a queue's capacity in batches still bounds what it holds. A target's
    // buffer never gets here: `Target::seal` cuts it at each whole batch.
    let mut waited = std::time::Duration::ZERO;
    let mut rest = std::mem::replace(buf, Vec::with_capacity(batch)).into_iter();
    loop {
        let mut chunk: Vec<T> = rest.by_ref().take(batch).collect();
        if chunk.is_empty() {
            return waited;
        }
        waited += send_one(tx, &mut chunk, gauge, batch).await;
    }
}

/// Sends `buf` (at most one batch) as one message; see [`send`].
async fn send_one<T, M: From<Vec<T>>>(
    tx: &flume::Sender<M>,
    buf: &mut Vec<T>,
    gauge: &QueueGauge,
    batch: usize,
) -> std::time::Duration {
    let n = buf.len();
    let full = std::mem::replace(buf, Vec::with_capacity(batch));
    gauge.add(n);
    match tx.try_send(M::from(full)) {
        Ok(()) => std::time::Duration::ZERO,
        Err(flume::TrySendError::Full(full)) => {
            let start = Instant::now();
            if tx.send_async(full).await.is_err() {
                gauge.sub(n);
            }
            start.elapsed()
        }
        Err(flume::TrySendError::Disconnected(_)) => {
            gauge.sub(n);
            std::time::Duration::ZERO
        }
    }
}

/// A random tuple id: odd, so never 0 (which would vanish in the XOR); a false zero of a tree's
/// XOR stays a 2⁻⁶³ chance.
#[inline]
fn new_id(rng: &mut fastrand::Rng) -> u64 {
    rng.u64(..) | 1
}

/// XORs `id` into the entry for `root`, adding one if missing (Storm's `putXor`).
fn put_xor(anchors: &mut Anchors, root: u64, id: u64) {
    match anchors.iter_mut().find(|(r, _)| *r == root) {
        Some((_, v)) => *v ^= id,
        None => anchors.push((root, id)),
    }
}

/// A root → position index of an [`Anchors`] list being built.
type RootIndex = IdMap<usize>;

/// [`put_xor`] for lists that may grow long (a window result anchored to thousands of trees):
/// past a few entries, roots are found through `index` instead of a scan, so building the list
/// stays linear.
fn put_xor_indexed(anchors: &mut Anchors, index: &mut RootIndex, root: u64, id: u64) {
    const SCAN: usize = 16;
    if anchors.len() < SCAN {
        return put_xor(anchors, root, id);
    }
    if index.is_empty() {
        index.extend(anchors.iter().enumerate().map(|(i, &(r, _))| (r, i)));
    }
    match index.entry(root) {
        std::collections::hash_map::Entry::Occupied(e) => anchors[*e.get()].1 ^= id,
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(anchors.len());
            anchors.push((root, id));
        }
    }
}

/// What a spout task remembers of one pending tree: its spout message, or the messages that
/// share it (see [`SpoutCollector::emit_shared`]).
pub(crate) struct PendingTree<M> {
    pub(crate) msgs: SmallVec<[M; 1]>,
    pub(crate) emitted_at: Instant,
}

/// The tree that this call's shared emits go into, until the call returns.
pub(crate) struct SharedTree<M> {
    root: u64,
    /// XOR of the ids of the tuples sent in it.
    seed: u64,
    /// Its messages that reached at least one task (others are acked after the call).
    msgs: SmallVec<[M; 1]>,
}

/// Where a spout emits. Given to [`Spout::next_tuple`](crate::Spout::next_tuple).
///
/// An emit with a message id starts a tracked tree: the spout later gets exactly one
/// `ack(id)` or `fail(id)`. An emit without one (`None`) is not tracked.
pub struct SpoutCollector<'a, M> {
    pub(crate) emitter: &'a mut Emitter,
    pub(crate) pending: &'a mut IdMap<PendingTree<M>>,
    /// Messages in `pending` (a shared tree holds several).
    pub(crate) pending_msgs: &'a mut usize,
    /// The tree of this call's shared emits, registered when the call returns.
    pub(crate) shared: Option<SharedTree<M>>,
    /// The most messages one shared tree takes; past it, the next shared emit starts another.
    pub(crate) shared_limit: usize,
    /// When this call first emitted a tracked tuple (read once per call, only when needed).
    pub(crate) now: Option<Instant>,
    /// Messages to ack right after this call (acking off, or a tree with no receivers).
    pub(crate) ack_now: &'a mut Vec<M>,
    /// Messages to fail right after this call (the emit was refused).
    pub(crate) fail_now: &'a mut Vec<M>,
    pub(crate) emitted: usize,
}

impl<M> SpoutCollector<'_, M> {
    /// Emits on the `default` stream; pass a message id to track the tuple, or `None`.
    pub fn emit(&mut self, values: Values, msg_id: impl Into<Option<M>>) {
        self.emit_inner(None, None, values, msg_id.into());
    }

    /// Emits on a named stream.
    pub fn emit_to(&mut self, stream: &str, values: Values, msg_id: impl Into<Option<M>>) {
        self.emit_inner(Some(stream), None, values, msg_id.into());
    }

    /// Emits on a direct stream to one task of a subscribing bolt.
    pub fn emit_direct(
        &mut self,
        task: TaskId,
        stream: &str,
        values: Values,
        msg_id: impl Into<Option<M>>,
    ) {
        self.emit_inner(Some(stream), Some(task), values, msg_id.into());
    }

    /// Emits a tracked tuple on the `default` stream in the tree this call shares: the
    /// messages emitted with `emit_shared` during one `next_tuple` call are one tuple tree for
    /// the acker and the spout task (a call that emits more than a sixteenth of
    /// `max_spout_pending` starts another tree there). Each message still gets exactly one
    /// `ack` or `fail`, but together: when every tuple of the tree is acked, each message is
    /// acked; when one fails or the tree times out, each message is failed.
    ///
    /// That spares the per-message bookkeeping of acking (one acker entry, one pending entry
    /// and, as a bolt's consecutive acks of one tree are combined, far fewer ack messages per
    /// call instead of per message), at the price of replaying a whole call's messages when
    /// one of them fails. A spout that counts retries should emit its replays with
    /// [`emit`](Self::emit), so that a message that keeps failing fails alone. Untracked
    /// (acking off, exactly-once), it is [`emit`](Self::emit).
    pub fn emit_shared(&mut self, values: Values, msg_id: M) {
        if !self.emitter.acking() {
            return self.emit_inner(None, None, values, Some(msg_id));
        }
        if self
            .shared
            .as_ref()
            .is_some_and(|t| t.msgs.len() >= self.shared_limit)
        {
            self.close_shared();
        }
        let root = match &self.shared {
            Some(tree) => tree.root,
            None => self.emitter.new_id(),
        };
        let Some((msg_id, seed)) = self.emit_in_tree(None, None, values, root, msg_id) else {
            return;
        };
        self.now.get_or_insert_with(Instant::now);
        let tree = self.shared.get_or_insert_with(|| SharedTree {
            root,
            seed: 0,
            msgs: SmallVec::new(),
        });
        tree.seed ^= seed;
        tree.msgs.push(msg_id);
    }

    /// Emits `values` as a tuple of the tree `root` for message `id`. If it reached a task,
    /// returns the message and the XOR of the ids sent, counted pending, for the caller to
    /// register; else settles the message after the call (failed if refused, acked if no task
    /// subscribes).
    fn emit_in_tree(
        &mut self,
        stream: Option<&str>,
        direct: Option<TaskId>,
        values: Values,
        root: u64,
        id: M,
    ) -> Option<(M, u64)> {
        let mut seed = 0u64;
        let sent = self.emitter.emit_with(stream, direct, values, |rng| {
            let edge = new_id(rng);
            seed ^= edge;
            smallvec::smallvec![(root, edge)]
        });
        match sent {
            None => {
                self.fail_now.push(id);
                None
            }
            Some(0) => {
                self.emitted += 1;
                self.ack_now.push(id);
                None
            }
            Some(_) => {
                self.emitted += 1;
                *self.pending_msgs += 1;
                Some((id, seed))
            }
        }
    }

    /// Registers this call's shared tree, if it has one; the task calls it when the call
    /// returns.
    pub(crate) fn close_shared(&mut self) {
        let Some(tree) = self.shared.take() else {
            return;
        };
        self.emitter.ack_init(tree.root, tree.seed);
        self.pending.insert(
            tree.root,
            PendingTree {
                msgs: tree.msgs,
                emitted_at: *self.now.get_or_insert_with(Instant::now),
            },
        );
    }

    /// How many tuples have been emitted in this call so far.
    pub fn emitted(&self) -> usize {
        self.emitted
    }

    /// How many messages this spout task has pending (emitted with an id, not yet acked or
    /// failed), those of this call included.
    pub fn pending(&self) -> usize {
        *self.pending_msgs
    }

    /// Whether an emit with a message id starts a tracked tree (acking is on). When it does not
    /// (no ackers, or exactly-once), the message is acked right after this call whatever
    /// happens downstream, so a spout may count it done at once and emit it without an id,
    /// sparing the bookkeeping of a pending message.
    pub fn tracking(&self) -> bool {
        self.emitter.acking()
    }

    fn emit_inner(
        &mut self,
        stream: Option<&str>,
        direct: Option<TaskId>,
        values: Values,
        msg_id: Option<M>,
    ) {
        let tracked = msg_id.is_some() && self.emitter.acking();
        if !tracked {
            let sent = self
                .emitter
                .emit_with(stream, direct, values, |_| Anchors::new());
            if let Some(id) = msg_id {
                if sent.is_some() {
                    self.ack_now.push(id);
                } else {
                    self.fail_now.push(id);
                }
            }
            self.emitted += sent.is_some() as usize;
            return;
        }
        let Some(id) = msg_id else { return };
        let root = self.emitter.new_id();
        let Some((id, seed)) = self.emit_in_tree(stream, direct, values, root, id) else {
            return;
        };
        self.emitter.ack_init(root, seed);
        self.pending.insert(
            root,
            PendingTree {
                msgs: smallvec::smallvec![id],
                emitted_at: *self.now.get_or_insert_with(Instant::now),
            },
        );
    }
}

/// Where a [`BasicBolt`](crate::BasicBolt) emits. Every emit during `execute` is anchored to the
/// input; the runtime acks or fails the input when `execute` returns.
pub struct BasicCollector<'a> {
    pub(crate) emitter: &'a mut Emitter,
    pub(crate) anchors: &'a Anchors,
    pub(crate) ack_val: u64,
}

impl BasicCollector<'_> {
    /// Emits on the `default` stream.
    pub fn emit(&mut self, values: Values) {
        self.emit_inner(None, None, values);
    }

    /// Emits on a named stream.
    pub fn emit_to(&mut self, stream: &str, values: Values) {
        self.emit_inner(Some(stream), None, values);
    }

    /// Emits on a direct stream to one task of a subscribing bolt.
    pub fn emit_direct(&mut self, task: TaskId, stream: &str, values: Values) {
        self.emit_inner(Some(stream), Some(task), values);
    }

    fn emit_inner(&mut self, stream: Option<&str>, direct: Option<TaskId>, values: Values) {
        let anchors = self.anchors;
        if anchors.is_empty() {
            self.emitter
                .emit_with(stream, direct, values, |_| Anchors::new());
            return;
        }
        let ack_val = &mut self.ack_val;
        self.emitter.emit_with(stream, direct, values, |rng| {
            let edge = new_id(rng);
            *ack_val ^= edge;
            match anchors.as_slice() {
                // One tree (most inputs): no iterator to collect.
                [(root, _)] => smallvec::smallvec![(*root, edge)],
                _ => anchors.iter().map(|&(root, _)| (root, edge)).collect(),
            }
        });
    }
}

/// A held input of a full bolt: its trees and the XOR of the ids anchored to it so far.
pub(crate) struct Held {
    pub(crate) anchors: Anchors,
    pub(crate) ack_val: u64,
}

/// The inputs a full bolt's task has received and not yet acked or failed.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) held: IdMap<Held>,
    next_seq: u64,
}

impl Ledger {
    /// Records a tracked input; returns its sequence number (never 0).
    pub(crate) fn hold(&mut self, anchors: &Anchors) -> u64 {
        self.next_seq += 1;
        self.held.insert(
            self.next_seq,
            Held {
                anchors: anchors.clone(),
                ack_val: 0,
            },
        );
        self.next_seq
    }
}

/// Where a full [`Bolt`](crate::Bolt) emits, acks and fails.
pub struct OutputCollector<'a> {
    pub(crate) emitter: &'a mut Emitter,
    pub(crate) ledger: &'a mut Ledger,
}

impl OutputCollector<'_> {
    /// Emits on the `default` stream, unanchored (not part of any tree).
    pub fn emit(&mut self, values: Values) {
        self.emit_inner(None, None, &[], values);
    }

    /// Emits on the `default` stream, anchored to `anchors`: the trees of those inputs complete
    /// only when this tuple is acked too.
    pub fn emit_anchored(&mut self, anchors: &[&Tuple], values: Values) {
        self.emit_inner(None, None, anchors, values);
    }

    /// Emits on a named stream, anchored to `anchors` (may be empty).
    pub fn emit_to(&mut self, stream: &str, anchors: &[&Tuple], values: Values) {
        self.emit_inner(Some(stream), None, anchors, values);
    }

    /// Emits on a direct stream to one task, anchored to `anchors` (may be empty).
    pub fn emit_direct(&mut self, task: TaskId, stream: &str, anchors: &[&Tuple], values: Values) {
        self.emit_inner(Some(stream), Some(task), anchors, values);
    }

    /// Acks an input: it and everything anchored to it so far are done. Acking a tuple twice,
    /// or after failing it, does nothing.
    pub fn ack(&mut self, input: &Tuple) {
        if input.seq == 0 {
            self.emitter.acked += 1;
        } else if let Some(h) = self.ledger.held.remove(&input.seq) {
            self.emitter.ack(&h.anchors, h.ack_val);
        }
    }

    /// Fails an input: its spout trees fail at once (the spouts see `fail`). Failing a tuple
    /// twice, or after acking it, does nothing.
    pub fn fail(&mut self, input: &Tuple) {
        if input.seq == 0 {
            self.emitter.failed += 1;
        } else if let Some(h) = self.ledger.held.remove(&input.seq) {
            self.emitter.fail(&h.anchors);
        }
    }

    /// How many inputs this task holds un-acked.
    pub fn held(&self) -> usize {
        self.ledger.held.len()
    }

    fn emit_inner(
        &mut self,
        stream: Option<&str>,
        direct: Option<TaskId>,
        anchors: &[&Tuple],
        values: Values,
    ) {
        let ledger = &mut *self.ledger;
        self.emitter.emit_with(stream, direct, values, |rng| {
            let mut out = Anchors::new();
            let mut index = RootIndex::default();
            for input in anchors {
                if let Some(h) = ledger.held.get_mut(&input.seq) {
                    let edge = new_id(rng);
                    h.ack_val ^= edge;
                    for &(root, _) in &h.anchors {
                        put_xor_indexed(&mut out, &mut index, root, edge);
                    }
                }
            }
            out
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the batch pool: a buffer given back is emptied and taken again (the same
    // allocation), a smaller one is not used for a larger batch, and the pool keeps at most
    // `POOLED_BATCHES` buffers.
    #[test]
    fn emptied_batches_are_taken_again_up_to_the_pool_size() {
        let schema = StreamSchema::intern("pool", crate::DEFAULT_STREAM, &["n".into()], false);
        let pool = BatchPool::new();
        let mut buf = pool.take(8);
        assert!(buf.capacity() >= 8);
        buf.push(Tuple::new(schema, TaskId(0), crate::values![1]));
        let at = buf.as_ptr();
        pool.give(buf);
        let again = pool.take(8);
        assert!(again.is_empty(), "given back empty");
        assert_eq!(again.as_ptr(), at, "the same buffer again");
        pool.give(again);
        assert!(
            pool.take(1000).capacity() >= 1000,
            "too small a buffer is not used"
        );
        for _ in 0..POOLED_BATCHES + 3 {
            pool.give(Vec::with_capacity(8));
        }
        assert_eq!(pool.rx.len(), POOLED_BATCHES);
    }

    // Guards the copy-free batching: a call that emits far more than its target's queue holds
    // leaves whole batches waiting in order; the flush sends them as the (slow) receiver makes
    // room, and every tuple arrives once, in order, in batches of `batch`.
    #[test]
    fn whole_batches_wait_in_order_for_a_full_queue() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let batch = 4;
        let (tx, rx) = flume::bounded(2);
        let gauge = Arc::new(QueueGauge::default());
        let schema = StreamSchema::intern("burst", crate::DEFAULT_STREAM, &["n".into()], false);
        let stream = OutStream {
            schema,
            subs: vec![Subscription {
                router: Router::new(
                    &crate::grouping::Grouping::Global,
                    SmallVec::new(),
                    &[TaskId(1)],
                    &"sink".into(),
                    0,
                    1,
                ),
                tasks: vec![TaskId(1)],
                slots: vec![0],
                loads: vec![gauge.clone()],
                sent: 0,
                edge: Arc::new(AtomicU64::new(0)),
            }],
        };
        let targets = vec![Target::new(tx, gauge.clone(), batch, BatchPool::new())];
        let metrics = Arc::new(TaskMetrics::new(0));
        let mut e = Emitter::new(TaskId(0), vec![stream], targets, Vec::new(), batch, metrics);
        let n = 1000;
        for i in 0..n {
            e.emit_with(None, None, crate::values![i], |_| Anchors::new())
                .expect("emitted");
        }
        assert!(e.has_full_batch, "batches wait for the flush");
        assert_eq!(rx.len(), 2, "the queue took what it had room for");
        let receiver = rt.spawn(async move {
            let mut got = Vec::new();
            while let Ok(m) = rx.recv_async().await {
                let Inbound::Tuples(b) = m else { continue };
                assert!(b.len() <= batch, "a batch of {}", b.len());
                got.extend(b.iter().map(|t| t.values()[0].as_i64().expect("an int")));
                tokio::time::sleep(std::time::Duration::from_micros(50)).await;
            }
            got
        });
        rt.block_on(e.flush(true));
        drop(e);
        let got = rt.block_on(receiver).expect("the receiver");
        assert_eq!(got, (0..n).collect::<Vec<i64>>());
    }

    #[test]
    fn a_burst_goes_out_in_batches() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (tx, rx) = flume::unbounded::<Vec<u32>>();
        let gauge = QueueGauge::default();
        let mut buf: Vec<u32> = (0..1000).collect();
        rt.block_on(send(&tx, &mut buf, &gauge, 64));
        let sizes: Vec<usize> = rx.try_iter().map(|b| b.len()).collect();
        assert_eq!(sizes.len(), 16);
        assert!(sizes[..15].iter().all(|&n| n == 64));
        assert_eq!(sizes[15], 1000 - 15 * 64);
        assert!(buf.is_empty());
    }

    #[test]
    fn buffered_acks_make_a_flush_due_and_go_out_at_any_flush() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (tx, rx) = flume::unbounded();
        let ackers = vec![AckerLink {
            buf: Vec::new(),
            tx,
            gauge: Arc::new(QueueGauge::default()),
        }];
        let metrics = Arc::new(TaskMetrics::new(0));
        let mut e = Emitter::new(TaskId(0), Vec::new(), Vec::new(), ackers, 256, metrics);
        let now = Instant::now();
        assert!(!e.flush_due(now + std::time::Duration::from_millis(5)));
        let anchors: crate::tuple::Anchors = smallvec::smallvec![(7, 9)];
        e.ack(&anchors, 0);
        e.fail(&smallvec::smallvec![(8, 3)]);
        assert!(e.flush_due(Instant::now() + std::time::Duration::from_millis(2)));
        // Even a partial flush (the one after each input batch) sends them, not waiting to fill
        // a batch: a tree completes as soon as its last task is done with it.
        rt.block_on(e.flush(false));
        assert_eq!(rx.try_recv().map(|b| b.len()).ok(), Some(2));
        assert!(!e.flush_due(Instant::now() + std::time::Duration::from_millis(5)));
    }

    #[test]
    fn indexed_put_xor_equals_the_scan() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut scanned = Anchors::new();
        let mut indexed = Anchors::new();
        let mut index = RootIndex::default();
        for _ in 0..5000 {
            let root = rng.u64(..200);
            let id = rng.u64(..);
            put_xor(&mut scanned, root, id);
            put_xor_indexed(&mut indexed, &mut index, root, id);
        }
        assert_eq!(scanned, indexed);
        assert_eq!(indexed.len(), 200);
    }
}
