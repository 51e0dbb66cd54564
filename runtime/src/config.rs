//! Topology-wide settings, with the defaults a Storm user would expect.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// The most un-acked trees one spout task may have; the spout is not asked for more tuples
    /// until some complete. `None` = no limit (queues still bound memory). Default `Some(1000)`.
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
        }
    }
}

impl Config {
    /// Whether tuple trees are tracked (at least one acker).
    pub fn acking(&self) -> bool {
        self.ackers > 0
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
