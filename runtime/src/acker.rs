//! The acker: tracks every spout tuple tree with one 64-bit XOR value (Storm's algorithm).
//!
//! ```text
//! spout task ──Init{root, xor of ids sent}──► acker (root % ackers) ◄──Ack{root, id ^ ack_val}── bolt task
//!     ▲                                          │                 ◄──Fail{root}──────────────── bolt task
//!     └────────────── Complete(root) / Failed(root) ──┘
//! ```
//!
//! **The XOR invariant.** Every tuple of a tree has a random 64-bit id. Each id enters the acker's
//! value for the tree exactly twice: once when the tuple is created (in the spout's `Init`, or in
//! the ack of the input it is anchored to, whose ack value XORs the ids of the tuples anchored to
//! it) and once when the tuple itself is acked. Since `x ^ x = 0`, the value is 0 exactly when
//! every tuple created in the tree has been acked (up to a 2⁻⁶⁴ chance of a false zero). The order
//! in which messages arrive does not matter. An acker keeps about 24 bytes per pending tree,
//! whatever the size of the tree.
//!
//! The acker does not time trees out for the spout — the spout task does that, as it knows when
//! each tree started; the acker only forgets trees older than the message timeout, so its memory
//! stays bounded when a tree's messages are lost with a failed task.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

use nohash_hasher::NoHashHasher;

use crate::metrics::{QueueGauge, TaskMetrics};
use crate::tuple::TaskId;

/// A hash map keyed by 64-bit ids that need no further hashing: tuple tree roots (random), as in
/// the acker's trees and a spout task's pending trees, or a full bolt's held inputs.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<NoHashHasher<u64>>>;

/// A message to an acker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckMsg {
    /// A spout task emitted a tree: `val` is the XOR of the ids of the tuples it sent.
    Init { root: u64, val: u64, spout: TaskId },
    /// A tuple of the tree was acked: its id XOR the ids of the tuples anchored to it.
    Ack { root: u64, val: u64 },
    /// A tuple of the tree was failed: the whole tree fails.
    Fail { root: u64 },
}

/// A message from an acker to the spout task that emitted a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpoutNotice {
    /// Every tuple of the tree was acked.
    Complete(u64),
    /// A tuple of the tree was failed.
    Failed(u64),
}

struct Entry {
    val: u64,
    /// The emitting spout task, once its `Init` has arrived.
    spout: Option<TaskId>,
    failed: bool,
    /// The sweep generation in which the entry was created.
    born: u32,
}

/// How many sweeps a tree may live; sweeps run every `message_timeout / 4`, so the acker forgets
/// a tree between 1 and 1.25 timeouts after it first heard of it.
const SWEEPS_PER_TIMEOUT: u32 = 4;
const MAX_AGE: u32 = SWEEPS_PER_TIMEOUT + 1;

/// A spout task's notice queue, and the notices gathered for it since the last flush.
type Outbox = (flume::Sender<Vec<SpoutNotice>>, Vec<SpoutNotice>);

/// The acker's state: pending trees, and what to tell which spout task.
pub(crate) struct Acker {
    trees: IdMap<Entry>,
    generation: u32,
    /// Notices per spout task, indexed by task id; `None` for tasks that are not spouts.
    outbox: Vec<Option<Outbox>>,
    completed: u64,
    failed: u64,
}

impl Acker {
    pub(crate) fn new(spouts: Vec<Option<flume::Sender<Vec<SpoutNotice>>>>) -> Acker {
        Acker {
            trees: IdMap::default(),
            generation: 0,
            outbox: spouts
                .into_iter()
                .map(|s| s.map(|tx| (tx, Vec::new())))
                .collect(),
            completed: 0,
            failed: 0,
        }
    }

    /// Applies one message.
    pub(crate) fn handle(&mut self, msg: AckMsg) {
        let root = match msg {
            AckMsg::Init { root, .. } | AckMsg::Ack { root, .. } | AckMsg::Fail { root } => root,
        };
        let born = self.generation;
        let entry = self.trees.entry(root).or_insert(Entry {
            val: 0,
            spout: None,
            failed: false,
            born,
        });
        match msg {
            AckMsg::Init { val, spout, .. } => {
                entry.val ^= val;
                entry.spout = Some(spout);
            }
            AckMsg::Ack { val, .. } => entry.val ^= val,
            AckMsg::Fail { .. } => entry.failed = true,
        }
        let Some(spout) = entry.spout else {
            return; // the Init has not arrived yet
        };
        let notice = if entry.failed {
            SpoutNotice::Failed(root)
        } else if entry.val == 0 {
            SpoutNotice::Complete(root)
        } else {
            return;
        };
        self.trees.remove(&root);
        match notice {
            SpoutNotice::Complete(_) => self.completed += 1,
            SpoutNotice::Failed(_) => self.failed += 1,
        }
        if let Some(Some((_, buf))) = self.outbox.get_mut(spout.0 as usize) {
            buf.push(notice);
        }
    }

    /// Sends the notices gathered so far. Spout queues are unbounded (their length is bounded by
    /// the spouts' pending trees), so this never waits; a spout that has ended is skipped.
    pub(crate) fn flush(&mut self) {
        for (tx, buf) in self.outbox.iter_mut().flatten() {
            if !buf.is_empty() {
                let _ = tx.send(std::mem::take(buf));
            }
        }
    }

    /// Forgets trees older than the message timeout.
    pub(crate) fn sweep(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        let now = self.generation;
        self.trees.retain(|_, e| now.wrapping_sub(e.born) < MAX_AGE);
    }

    /// Trees pending.
    pub(crate) fn pending(&self) -> usize {
        self.trees.len()
    }
}

/// Runs one acker task until every sender to it is gone.
pub(crate) async fn run(
    mut acker: Acker,
    inbox: flume::Receiver<Vec<AckMsg>>,
    gauge: Arc<QueueGauge>,
    message_timeout: Duration,
    metrics: Arc<TaskMetrics>,
) {
    let period = (message_timeout / SWEEPS_PER_TIMEOUT).max(Duration::from_millis(1));
    let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut done, mut completed, mut failed) = (0u64, 0u64, 0u64);
    loop {
        let batch = tokio::select! {
            biased;
            b = inbox.recv_async() => match b {
                Ok(b) => b,
                Err(_) => break,
            },
            _ = sweep.tick() => {
                acker.sweep();
                metrics.pending.store(acker.pending() as u64, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
        };
        gauge.sub(batch.len());
        done += batch.len() as u64;
        for msg in batch {
            acker.handle(msg);
        }
        acker.flush();
        TaskMetrics::add(&metrics.executed, std::mem::take(&mut done));
        TaskMetrics::add(&metrics.acked, acker.completed - completed);
        TaskMetrics::add(&metrics.failed, acker.failed - failed);
        (completed, failed) = (acker.completed, acker.failed);
        metrics
            .pending
            .store(acker.pending() as u64, std::sync::atomic::Ordering::Relaxed);
        tokio::task::coop::consume_budget().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acker_with_spout() -> (Acker, flume::Receiver<Vec<SpoutNotice>>) {
        let (tx, rx) = flume::unbounded();
        (Acker::new(vec![None, Some(tx)]), rx)
    }

    fn notices(rx: &flume::Receiver<Vec<SpoutNotice>>) -> Vec<SpoutNotice> {
        rx.try_iter().flatten().collect()
    }

    #[test]
    fn a_tree_completes_when_every_id_is_acked_in_any_order() {
        let (mut a, rx) = acker_with_spout();
        let spout = TaskId(1);
        // Spout sends tuple id 5; a bolt acks it, anchoring children 6 and 9; both are acked.
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]] {
            let msgs = [
                AckMsg::Init {
                    root: 7,
                    val: 5,
                    spout,
                },
                AckMsg::Ack {
                    root: 7,
                    val: 5 ^ 6 ^ 9,
                },
                AckMsg::Ack { root: 7, val: 6 },
                AckMsg::Ack { root: 7, val: 9 },
            ];
            for (step, &i) in order.iter().enumerate() {
                a.flush();
                assert!(notices(&rx).is_empty(), "completed early at step {step}");
                a.handle(msgs[i]);
            }
            a.flush();
            assert_eq!(notices(&rx), [SpoutNotice::Complete(7)]);
            assert_eq!(a.pending(), 0);
        }
    }

    #[test]
    fn a_fail_fails_the_tree_once_its_spout_is_known() {
        let (mut a, rx) = acker_with_spout();
        a.handle(AckMsg::Fail { root: 3 });
        a.flush();
        assert!(notices(&rx).is_empty());
        a.handle(AckMsg::Init {
            root: 3,
            val: 1,
            spout: TaskId(1),
        });
        a.flush();
        assert_eq!(notices(&rx), [SpoutNotice::Failed(3)]);
        // A late ack of the failed tree creates an orphan that the sweep forgets.
        a.handle(AckMsg::Ack { root: 3, val: 1 });
        for _ in 0..MAX_AGE {
            a.sweep();
        }
        assert_eq!(a.pending(), 0);
        a.flush();
        assert!(notices(&rx).is_empty());
    }
}
