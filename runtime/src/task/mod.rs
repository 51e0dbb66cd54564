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
//!
//! - this module: what both loops share — [`Control`], [`TaskEnv`], the task starters, the
//!   error log and the restart back-off;
//! - [`spout`]: the spout loop (acker notices, `next_tuple` rounds, timeouts, stop);
//! - [`bolt`]: the bolt loop and its two drivers (basic bolts acked for them, full bolts).

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::acker::SpoutNotice;
use crate::collector::Emitter;
use crate::component::{BasicBolt, Bolt, Declared, Spout, TaskContext, declared};
use crate::metrics::TaskMetrics;
use crate::tuple::Tuple;

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
