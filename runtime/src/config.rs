//! Topology-wide settings, with the defaults a Storm user would expect.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a topology promises about each input's effect, after failures, crashes and restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Every spout tuple's tree is tracked (XOR acking, [`Config::ackers`]) and a failed or
    /// timed-out tree is replayed: each input reaches every bolt at least once. State is
    /// checkpointed when a component keeps any; after a crash it is restored and the spouts
    /// rewind to their checkpointed positions, so aggregates never reset, but an input processed
    /// after the last checkpoint counts again (as in Storm). The default.
    #[default]
    AtLeastOnce,
    /// Aligned checkpoint barriers carry every spout's read position and every task's state into
    /// one checkpoint; after a crash the state is restored and the spouts rewind, so each input
    /// affects state exactly once. No per-tuple acking (it is what makes this mode fast). Every
    /// spout must be able to rewind (kafka, kinesis, file, generator, feed).
    ExactlyOnce,
}

impl Guarantee {
    /// The name used in topology files: `at_least_once`, `exactly_once`.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at_least_once",
            Guarantee::ExactlyOnce => "exactly_once",
        }
    }
}

/// Settings of one topology run. `Config::default()` is a sensible start; every field says why it
/// exists and what its default is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of acker tasks. `0` turns acking off: spout tuples count as acked as soon as they
    /// are emitted, and nothing is replayed. Default `1`.
    pub ackers: usize,
    /// A spout tuple whose tree is not complete within this time is failed (`Spout::fail`) and
    /// counted as timed out. Default 30 s.
    #[serde(with = "duration_secs")]
    pub message_timeout: Duration,
    /// The most un-acked messages one spout task may have (the messages of a shared tree count
    /// one each); the spout is not asked for more tuples until some complete. `None` = no
    /// limit (queues still bound memory). Default `Some(1000)`.
    pub max_spout_pending: Option<usize>,
    /// Threads of the runtime that runs the tasks ([`LocalCluster`](crate::LocalCluster)).
    /// Default: the number of cores.
    pub worker_threads: usize,
    /// Capacity of each task's receive queue, in tuples. A producer that finds a queue full waits,
    /// which slows it and finally the spouts (backpressure). Default 8192.
    pub queue_capacity: usize,
    /// Tuples are sent between tasks in batches of up to this many; a task flushes partial
    /// batches whenever its input runs dry, so batching adds no latency when idle. Default 256.
    pub batch_size: usize,
    /// What the topology promises (see [`Guarantee`]). Default at-least-once.
    pub guarantee: Guarantee,
    /// How often a checkpoint is started. A checkpoint is taken when the guarantee is
    /// exactly-once or when a component keeps state. Zero turns checkpoints off. Default 1 s.
    #[serde(with = "duration_secs")]
    pub checkpoint_interval: Duration,
    /// Where checkpoints are kept. `None`: `$TOPO_STATE_DIR/<topology>/checkpoints`,
    /// `TOPO_STATE_DIR` defaulting to `.topo/state`.
    pub checkpoint_dir: Option<PathBuf>,
    /// How many completed checkpoints are kept; older ones are deleted. Default 3.
    pub checkpoints_retained: usize,
    /// The number of key groups keyed state is split into: the most tasks a keyed component
    /// can ever be scaled to from a checkpoint. Fields groupings route by key group, so a
    /// restore with another parallelism hands whole key groups to the new tasks. Default 128.
    pub max_parallelism: usize,
    /// The most tuples a task with several inputs holds back while it waits for a checkpoint's
    /// barrier on its slower inputs. Past it the task declines that checkpoint (counted and
    /// logged; processing goes on, and the next checkpoint is tried). Default 1,000,000.
    pub alignment_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ackers: 1,
            message_timeout: Duration::from_secs(30),
            max_spout_pending: Some(1000),
            worker_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_capacity: 8192,
            batch_size: 256,
            guarantee: Guarantee::AtLeastOnce,
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_dir: None,
            checkpoints_retained: 3,
            max_parallelism: 128,
            alignment_buffer: 1_000_000,
        }
    }
}

impl Config {
    /// Whether tuple trees are tracked: at least one acker, and not exactly-once (whose
    /// checkpoints replace acking).
    pub fn acking(&self) -> bool {
        self.ackers > 0 && self.guarantee != Guarantee::ExactlyOnce
    }

    /// The directory checkpoints of `topology` are kept in: [`checkpoint_dir`](Config::checkpoint_dir)
    /// if set, else `$TOPO_STATE_DIR/<topology>/checkpoints` (`TOPO_STATE_DIR` defaulting to
    /// `.topo/state`).
    pub fn checkpoint_dir_for(&self, topology: &str) -> PathBuf {
        match &self.checkpoint_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("TOPO_STATE_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(".topo/state"), PathBuf::from)
                .join(topology)
                .join("checkpoints"),
        }
    }

    /// Problems with these settings, each as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.message_timeout.is_zero() {
            out.push(("message_timeout", "must be greater than zero".to_string()));
        }
        if self.max_spout_pending == Some(0) {
            out.push((
                "max_spout_pending",
                "must be at least 1 (or unset for no limit)".to_string(),
            ));
        }
        if self.worker_threads == 0 {
            out.push(("worker_threads", "must be at least 1".to_string()));
        }
        if self.batch_size == 0 {
            out.push(("batch_size", "must be at least 1".to_string()));
        }
        if self.max_parallelism == 0 || self.max_parallelism > u16::MAX as usize {
            out.push((
                "max_parallelism",
                format!("must be from 1 to 65535, got {}", self.max_parallelism),
            ));
        }
        if self.checkpoints_retained == 0 {
            out.push(("checkpoints_retained", "must be at least 1".to_string()));
        }
        if self.queue_capacity < self.batch_size.max(1) {
            out.push((
                "queue_capacity",
                format!(
                    "must be at least batch_size ({}), got {}",
                    self.batch_size, self.queue_capacity
                ),
            ));
        }
        out
    }

    /// Queue slots per task: each slot holds one batch.
    pub(crate) fn queue_slots(&self) -> usize {
        (self.queue_capacity / self.batch_size.max(1)).max(1)
    }
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_problems_name_the_key() {
        assert!(Config::default().problems().is_empty());
        let bad = Config {
            batch_size: 512,
            queue_capacity: 100,
            max_spout_pending: Some(0),
            ..Config::default()
        };
        let keys: Vec<_> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["max_spout_pending", "queue_capacity"]);
    }
}
