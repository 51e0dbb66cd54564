//! The Kafka spout's consumer context: what librdkafka calls back into from inside `poll` —
//! rebalances (on revocation the acked prefix is committed before the partitions go; on
//! assignment each partition gets a queue of its own and a [`Part`](super::offsets::Part) that
//! starts where `first_poll` says), client errors and log lines.
//!
//! ```text
//!  consumer.poll ──► SpoutContext::pre_rebalance / post_rebalance ──► Parts (live, incoming)
//!                └─► error / log ──► KafkaCounters, tracing
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use smol_str::SmolStr;

use super::forward_log;
use super::offsets::{Part, Parts};
use super::source::{FirstPoll, KafkaCounters};
use crate::connector::warn::lock;

/// The consumer's context: rebalances (commit on revoke, a queue of its own per assigned
/// partition), errors, logs.
pub(super) struct SpoutContext {
    pub(super) parts: Arc<Mutex<Parts>>,
    /// The consumer itself, for splitting off partition queues in the rebalance callback.
    pub(super) consumer: OnceLock<Weak<BaseConsumer<SpoutContext>>>,
    pub(super) first_poll: FirstPoll,
    pub(super) counters: Arc<KafkaCounters>,
    pub(super) component: SmolStr,
    pub(super) brokers: String,
    /// What explains the client's errors.
    pub(super) failures: super::Failures,
    /// The `OAUTHBEARER` login, if `sasl` asks for it.
    pub(super) oauth: Option<Arc<super::OAuthLogin>>,
}

impl ClientContext for SpoutContext {
    super::answer_token_refreshes!();

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.failures.note(fac, log_message);
        forward_log(&self.component, level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            // The end of a partition: expected, handled through `poll`.
            return;
        }
        self.counters.error(
            &self.component,
            self.failures.describe(&self.brokers, &error, reason),
        );
    }
}

impl SpoutContext {
    /// Takes the partitions of `tpl` (assigned by the group, or chosen by `assignment =
    /// "static"`): sets where each starts, gives each a queue of its own and its state.
    /// Returns their names; the caller assigns `tpl` to the consumer.
    ///
    /// With `fixed` (a run that takes checkpoints), the start of each partition is given: an
    /// offset (from a restored checkpoint, or the group's committed one), or the beginning or
    /// end; the group is not asked.
    pub(super) fn take(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        fixed: Option<&HashMap<(String, i32), Offset>>,
    ) -> Vec<String> {
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let first_time: HashSet<(String, i32)> = {
            let mut parts = lock(&self.parts);
            elements
                .iter()
                .filter(|(t, p)| {
                    let slot = parts.slot(t, *p);
                    !parts.started.contains(&slot)
                })
                .cloned()
                .collect()
        };
        let committed = match fixed {
            None => self.starting_offsets(consumer, tpl, &first_time),
            Some(fixed) => {
                let mut known = HashMap::new();
                for (key, at) in fixed {
                    let _ = tpl.set_partition_offset(&key.0, key.1, *at);
                    if let Offset::Offset(o) = at
                        && *o >= 0
                    {
                        known.insert(key.clone(), *o as u64);
                    }
                }
                known
            }
        };
        // Each partition gets a queue of its own, so that one at its uncommitted cap is simply
        // not read (librdkafka stops fetching it when its queue is full) rather than paused,
        // which drops what was fetched and fetches again from the middle of a record batch.
        // Split before assigning: no record reaches the common queue first.
        let me = self.consumer.get().and_then(Weak::upgrade);
        let mut parts = lock(&self.parts);
        let mut names = Vec::new();
        for (topic, partition) in elements {
            let slot = parts.slot(&topic, partition);
            names.push(format!("{topic}/{partition}"));
            let start = committed.get(&(topic.clone(), partition)).copied();
            parts.live.insert(slot, Part::new(start));
            parts.started.insert(slot);
            match me
                .as_ref()
                .and_then(|c| c.split_partition_queue(&topic, partition))
            {
                Some(q) => parts.incoming.push((slot, q)),
                None => self.counters.error(
                    &self.component,
                    format!("cannot give {topic}/{partition} a queue of its own"),
                ),
            }
        }
        parts.assigned_once = true;
        parts.rebalancing = false;
        drop(parts);
        drop(me);
        names
    }

    /// Where each newly assigned partition starts, set in `tpl`: `earliest`/`latest` the first
    /// time, else the group's committed offset, asked for here so that the first record can be
    /// checked against it. Returns the committed offset of each `(topic, partition)` it found.
    pub(super) fn starting_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        first_time: &HashSet<(String, i32)>,
    ) -> HashMap<(String, i32), u64> {
        let mut found = HashMap::new();
        let asked = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                // librdkafka asks for them itself; the first record is then taken as the start.
                self.counters.error(
                    &self.component,
                    format!("cannot read the committed offsets: {e}"),
                );
                TopicPartitionList::new()
            }
        };
        let first = self.first_poll.ignoring_commits();
        for el in asked.elements() {
            let key = (el.topic().to_string(), el.partition());
            let at = match (first_time.contains(&key), first, el.offset()) {
                (true, Some(o), _) => o,
                (_, _, Offset::Offset(c)) if c >= 0 => {
                    found.insert(key.clone(), c as u64);
                    Offset::Offset(c)
                }
                _ => self.first_poll.without_commit(),
            };
            let _ = tpl.set_partition_offset(&key.0, key.1, at);
        }
        // On a failure above, only `earliest`/`latest` of a first assignment are set.
        if asked.count() == 0
            && let Some(o) = first
        {
            for (topic, partition) in first_time {
                let _ = tpl.set_partition_offset(topic, *partition, o);
            }
        }
        found
    }
}

impl ConsumerContext for SpoutContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.counters.rebalances.fetch_add(1, Relaxed);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let names = self.take(consumer, tpl, None);
                tracing::info!(component = %self.component, partitions = ?names, "kafka partitions assigned");
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    self.counters
                        .error(&self.component, format!("cannot take the assignment: {e}"));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let mut parts = lock(&self.parts);
                let slots: Vec<u32> = tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        parts
                            .slot_of
                            .get(&(SmolStr::new(e.topic()), e.partition()))
                            .copied()
                    })
                    .collect();
                // Commit what is acked before another member takes the partitions.
                let offsets =
                    parts.to_commit(slots.iter().copied(), true, &self.counters, &self.component);
                if !offsets.is_empty() && !consumer.assignment_lost() {
                    let commit = parts.tpl(&offsets);
                    match consumer.commit(&commit, CommitMode::Sync) {
                        Ok(()) => {
                            self.counters.commits.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            self.counters.commit_errors.fetch_add(1, Relaxed);
                            self.counters
                                .error(&self.component, format!("commit on revoke failed: {e}"));
                        }
                    }
                }
                for s in &slots {
                    parts.live.remove(s);
                }
                parts.incoming.retain(|(s, _)| !slots.contains(s));
                parts.replay.retain(|(_, s, _)| !slots.contains(s));
                parts.rebalancing = !cooperative || parts.live.is_empty();
                drop(parts);
                tracing::info!(component = %self.component, partitions = slots.len(), "kafka partitions revoked");
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    self.counters.error(
                        &self.component,
                        format!("cannot give up the assignment: {e}"),
                    );
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                self.counters
                    .error(&self.component, format!("rebalance error: {code}"));
                let mut parts = lock(&self.parts);
                parts.live.clear();
                parts.incoming.clear();
                drop(parts);
                let _ = consumer.unassign();
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.counters.commits.fetch_add(1, Relaxed);
            }
            Err(e) => {
                // Not committed after all: the next commit sends these offsets again.
                let mut parts = lock(&self.parts);
                for el in offsets.elements() {
                    let key = (SmolStr::new(el.topic()), el.partition());
                    if let Some(slot) = parts.slot_of.get(&key).copied()
                        && let Some(p) = parts.live.get_mut(&slot)
                        && let Offset::Offset(o) = el.offset()
                        && p.committed == Some(o as u64)
                    {
                        p.committed = None;
                    }
                }
                drop(parts);
                self.counters.commit_errors.fetch_add(1, Relaxed);
                self.counters
                    .error(&self.component, format!("commit failed: {e}"));
            }
        }
    }
}
