//! Groupings: which task(s) of a subscribing bolt receive each tuple of a stream.
//!
//! **The invariant:** every tuple emitted on a stream reaches, for each bolt subscribed to that
//! stream, exactly the tasks that bolt's grouping names — no more, no fewer. `Router::route` is
//! the one place in the runtime where that choice is made; the collector only delivers what it
//! returns.
//!
//! | grouping | targets |
//! | --- | --- |
//! | shuffle, none, local-or-shuffle | one task, round robin weighted by how empty each task's queue is |
//! | fields | one task, chosen by a stable hash of the named fields: one key, always one task |
//! | partial key | one of two candidate tasks per key (two hashes), the one sent fewer tuples |
//! | all | every task |
//! | global | the task with the lowest id |
//! | direct | the task the emitter names (`emit_direct`) |
//! | custom | what a [`CustomGrouping`] returns |
//!
//! All tasks of a topology run in one process, so local-or-shuffle is the load-aware shuffle.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;
use smol_str::SmolStr;

use crate::metrics::QueueGauge;
use crate::tuple::TaskId;
use crate::value::Value;

/// How a bolt subscribes to a stream (Storm's groupings).
#[derive(Clone)]
pub enum Grouping {
    /// Even split, load-aware: tasks with fuller queues receive less.
    Shuffle,
    /// By a stable hash of these fields: equal keys always reach the same task.
    Fields(Vec<SmolStr>),
    /// Each key goes to the less loaded of two candidate tasks ("power of two choices"), so a hot
    /// key is spread over two tasks; downstream must merge the partial results.
    PartialKey(Vec<SmolStr>),
    /// Every task receives a copy.
    All,
    /// The whole stream goes to the task with the lowest id.
    Global,
    /// "Don't care": the same as shuffle.
    None,
    /// The emitter names the task with `emit_direct`; the stream must be declared direct.
    Direct,
    /// Prefer tasks in the same process, else shuffle (in one process: shuffle).
    LocalOrShuffle,
    /// User code chooses.
    Custom(Arc<dyn CustomGroupingFactory>),
}

impl Grouping {
    /// The grouping's name as written in topology files (`shuffle`, `fields`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Grouping::Shuffle => "shuffle",
            Grouping::Fields(_) => "fields",
            Grouping::PartialKey(_) => "partial_key",
            Grouping::All => "all",
            Grouping::Global => "global",
            Grouping::None => "none",
            Grouping::Direct => "direct",
            Grouping::LocalOrShuffle => "local_or_shuffle",
            Grouping::Custom(_) => "custom",
        }
    }

    /// The fields this grouping reads, if any.
    pub fn fields(&self) -> Option<&[SmolStr]> {
        match self {
            Grouping::Fields(f) | Grouping::PartialKey(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Debug for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fields() {
            Some(fields) => write!(f, "{}({})", self.name(), fields.join(", ")),
            None => f.write_str(self.name()),
        }
    }
}

/// Makes one [`CustomGrouping`] per emitting task.
pub trait CustomGroupingFactory: Send + Sync + 'static {
    /// A fresh grouping for one emitting task, told the receiving component's tasks.
    fn create(&self, targets: &[TaskId]) -> Box<dyn CustomGrouping>;
}

impl<F, G> CustomGroupingFactory for F
where
    F: Fn(&[TaskId]) -> G + Send + Sync + 'static,
    G: CustomGrouping,
{
    fn create(&self, targets: &[TaskId]) -> Box<dyn CustomGrouping> {
        Box::new(self(targets))
    }
}

/// A user-defined grouping: picks target tasks for each tuple.
pub trait CustomGrouping: Send + 'static {
    /// Pushes the chosen positions (indices into the `targets` given at creation) onto `out`.
    /// Positions out of range are dropped and logged by the runtime.
    fn choose(&mut self, values: &[Value], out: &mut Vec<usize>);
}

/// The chosen target positions for one tuple.
pub(crate) type Targets = SmallVec<[usize; 4]>;

/// How many picks a shuffle makes before it re-reads the queue loads.
const SHUFFLE_REFRESH: u32 = 1024;
const SEED_1: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// One emitting task's routing state for one subscription.
pub(crate) enum Router {
    Shuffle(Shuffle),
    Fields {
        /// The grouping fields' positions in the stream.
        fields: SmallVec<[usize; 2]>,
        /// The number of key groups ([`Config::max_parallelism`](crate::Config::max_parallelism)).
        key_groups: u32,
    },
    PartialKey {
        fields: SmallVec<[usize; 2]>,
        sent: Vec<u64>,
    },
    All,
    Global(usize),
    Direct,
    Custom {
        grouping: Box<dyn CustomGrouping>,
        scratch: Vec<usize>,
        component: SmolStr,
    },
}

/// Load-aware round robin: plain round robin while queue loads are alike; a weighted schedule
/// (emptier queues get more turns) when they differ.
pub(crate) struct Shuffle {
    next: usize,
    since_refresh: u32,
    /// Positions in turn order; `None` = plain round robin over all targets.
    schedule: Option<Vec<usize>>,
}

impl Router {
    /// A router for one subscription. `field_index` maps the grouping's fields to positions in the
    /// upstream stream (already validated); `targets` are the subscriber's tasks, ascending.
    pub(crate) fn new(
        grouping: &Grouping,
        field_index: SmallVec<[usize; 2]>,
        targets: &[TaskId],
        component: &SmolStr,
        start: usize,
        key_groups: usize,
    ) -> Router {
        match grouping {
            Grouping::Shuffle | Grouping::None | Grouping::LocalOrShuffle => {
                Router::Shuffle(Shuffle {
                    next: start % targets.len().max(1),
                    since_refresh: 0,
                    schedule: None,
                })
            }
            Grouping::Fields(_) => Router::Fields {
                fields: field_index,
                key_groups: key_groups.max(1) as u32,
            },
            Grouping::PartialKey(_) => Router::PartialKey {
                fields: field_index,
                sent: vec![0; targets.len()],
            },
            Grouping::All => Router::All,
            Grouping::Global => Router::Global(
                targets
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, t)| **t)
                    .map_or(0, |(i, _)| i),
            ),
            Grouping::Direct => Router::Direct,
            Grouping::Custom(f) => Router::Custom {
                grouping: f.create(targets),
                scratch: Vec::new(),
                component: component.clone(),
            },
        }
    }

    /// The one target position (an index into the subscription's targets) of a router that
    /// always picks exactly one: shuffle, fields, partial key, global. `None` for the others
    /// (all, direct, custom), which [`route`](Router::route) handles. The emit path's common
    /// case: a stream with one subscription routes here, with no list of targets built.
    #[inline(always)]
    pub(crate) fn route_one(
        &mut self,
        values: &[Value],
        loads: &[Arc<QueueGauge>],
    ) -> Option<usize> {
        let n = loads.len();
        match self {
            Router::Fields { fields, key_groups } => {
                let hash = match fields.as_slice() {
                    // One grouping field (most groupings): no fold over the fields.
                    [i] => match values.get(*i) {
                        // Text (most keys): the string hash, without the match over types.
                        Some(Value::Str(s)) => Value::str_stable_hash(s, SEED_1),
                        v => v.unwrap_or(&Value::Null).stable_hash(SEED_1),
                    },
                    several => key_hash(values, several, SEED_1),
                };
                let group = key_group(hash, *key_groups);
                Some(task_of_key_group(group, *key_groups, n))
            }
            Router::Shuffle(s) => Some(s.pick(loads)),
            Router::PartialKey { fields, sent } => {
                let first = (key_hash(values, fields, SEED_1) % n as u64) as usize;
                let chosen = if n < 2 {
                    first
                } else {
                    // A second candidate, always different from the first.
                    let step = 1 + (key_hash(values, fields, SEED_2) % (n as u64 - 1)) as usize;
                    let second = (first + step) % n;
                    if sent[second] < sent[first] {
                        second
                    } else {
                        first
                    }
                };
                sent[chosen] += 1;
                Some(chosen)
            }
            Router::Global(i) => Some(*i),
            Router::All | Router::Direct | Router::Custom { .. } => None,
        }
    }

    /// Chooses the target positions (indices into the subscription's targets) for one tuple.
    /// `loads` are the receive queues of those targets, for load-aware choices.
    pub(crate) fn route(&mut self, values: &[Value], loads: &[Arc<QueueGauge>], out: &mut Targets) {
        if let Some(i) = self.route_one(values, loads) {
            out.push(i);
            return;
        }
        let n = loads.len();
        match self {
            Router::Shuffle(_)
            | Router::Fields { .. }
            | Router::PartialKey { .. }
            | Router::Global(_) => {}
            Router::All => out.extend(0..n),
            // Direct tuples are placed by `emit_direct`, never routed by value.
            Router::Direct => {}
            Router::Custom {
                grouping,
                scratch,
                component,
            } => {
                scratch.clear();
                grouping.choose(values, scratch);
                for &i in scratch.iter() {
                    if i < n {
                        out.push(i);
                    } else {
                        tracing::error!(
                            component = %component,
                            position = i,
                            tasks = n,
                            "custom grouping chose a task position out of range; that copy is not sent"
                        );
                    }
                }
            }
        }
    }
}

impl Shuffle {
    fn pick(&mut self, loads: &[Arc<QueueGauge>]) -> usize {
        let n = loads.len();
        if n == 1 {
            return 0;
        }
        self.since_refresh += 1;
        if self.since_refresh >= SHUFFLE_REFRESH {
            self.since_refresh = 0;
            self.refresh(loads);
        }
        match &self.schedule {
            None => {
                let i = self.next;
                self.next = if i + 1 == n { 0 } else { i + 1 };
                i
            }
            Some(turns) => {
                let i = turns[self.next % turns.len()];
                self.next = (self.next + 1) % turns.len();
                i
            }
        }
    }

    /// Re-reads the queue lengths: alike (within 64 tuples) -> round robin; otherwise each task
    /// gets turns in proportion to how empty its queue is, by smooth weighted round robin.
    fn refresh(&mut self, loads: &[Arc<QueueGauge>]) {
        let lens: SmallVec<[usize; 16]> = loads.iter().map(|g| g.get()).collect();
        let (min, max) = lens
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), &l| (lo.min(l), hi.max(l)));
        if max - min <= 64 {
            if self.schedule.take().is_some() {
                self.next = 0;
            }
            return;
        }
        // Weight 1..=16: 16 for the emptiest queue, down to 1 for the fullest.
        let span = (max - min) as f64;
        let weights: SmallVec<[i64; 16]> = lens
            .iter()
            .map(|&l| 1 + (15.0 * (max - l) as f64 / span).round() as i64)
            .collect();
        let total: i64 = weights.iter().sum();
        let mut current: SmallVec<[i64; 16]> = SmallVec::from_elem(0, lens.len());
        let mut turns = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for i in 0..current.len() {
                current[i] += weights[i];
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            turns.push(best);
        }
        self.schedule = Some(turns);
        self.next = 0;
    }
}

/// The stable hash of a key: the values of a tuple's grouping fields, in the grouping's order.
/// A fields grouping routes a tuple by the [`key_group`] of this hash, so keyed state stored
/// under `key_hash_of(key)` lands, after a restore with any parallelism, on the task that
/// receives that key.
pub fn key_hash_of(key: &[Value]) -> u64 {
    key.iter().fold(SEED_1, |acc, v| v.stable_hash(acc))
}

/// [`key_hash_of`] a key of one string, without building its [`Value`].
#[inline]
pub(crate) fn key_hash_of_str(key: &str) -> u64 {
    Value::str_stable_hash(key, SEED_1)
}

/// `x % n` (`n` > 0), by mask when `n` is a power of two: routing takes one per tuple, and a
/// 64-bit division costs tens of cycles.
#[inline]
pub(crate) fn modulo(x: u64, n: u64) -> u64 {
    if n.is_power_of_two() {
        x & (n - 1)
    } else {
        x % n
    }
}

/// The key group of a key's hash: one of `key_groups` (the topology's
/// [`max_parallelism`](crate::Config::max_parallelism)) fixed buckets keyed state is split into.
#[inline]
pub fn key_group(hash: u64, key_groups: u32) -> u32 {
    modulo(hash, key_groups.max(1) as u64) as u32
}

/// The index of the task, among `parallelism`, that owns a key group: groups are dealt out in
/// contiguous ranges (Flink's assignment), so a change of parallelism moves whole groups.
#[inline]
pub fn task_of_key_group(group: u32, key_groups: u32, parallelism: usize) -> usize {
    let scaled = group as u64 * parallelism as u64;
    if key_groups.is_power_of_two() {
        // The same as `/`: a shift, not a division.
        (scaled >> key_groups.trailing_zeros()) as usize
    } else {
        (scaled / key_groups.max(1) as u64) as usize
    }
}

/// The key groups task `index` of `parallelism` owns: the inverse of [`task_of_key_group`].
pub fn key_groups_of_task(
    index: usize,
    parallelism: usize,
    key_groups: u32,
) -> std::ops::Range<u32> {
    let start =
        |i: usize| (i as u64 * key_groups as u64).div_ceil(parallelism.max(1) as u64) as u32;
    start(index)..start(index + 1)
}

/// The stable hash of the grouping fields of one tuple.
fn key_hash(values: &[Value], fields: &[usize], seed: u64) -> u64 {
    fields.iter().fold(seed, |acc, &i| {
        values.get(i).unwrap_or(&Value::Null).stable_hash(acc)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges(lens: &[usize]) -> Vec<Arc<QueueGauge>> {
        lens.iter()
            .map(|&l| {
                let g = Arc::new(QueueGauge::default());
                g.add(l);
                g
            })
            .collect()
    }

    fn tasks(n: u32) -> Vec<TaskId> {
        (10..10 + n).map(TaskId).collect()
    }

    fn route_once(r: &mut Router, v: &[Value], loads: &[Arc<QueueGauge>]) -> Targets {
        let mut out = Targets::new();
        r.route(v, loads, &mut out);
        out
    }

    // Guards the mask and shift taken for a power-of-two number of key groups: the same group
    // and task as the division for every count of groups and tasks.
    #[test]
    fn key_groups_by_mask_match_the_division() {
        let mut rng = fastrand::Rng::with_seed(7);
        for groups in [1u32, 2, 3, 64, 100, 128, 1000, 1 << 15] {
            for _ in 0..2000 {
                let hash = rng.u64(..);
                let group = key_group(hash, groups);
                assert_eq!(group as u64, hash % groups as u64);
                for parallelism in [1usize, 2, 3, 7, 128] {
                    assert_eq!(
                        task_of_key_group(group, groups, parallelism) as u64,
                        group as u64 * parallelism as u64 / groups as u64
                    );
                }
            }
        }
    }

    #[test]
    fn fields_sends_one_key_to_one_task_always() {
        let loads = gauges(&[0; 5]);
        let mut a = Router::new(
            &Grouping::Fields(vec!["k".into()]),
            smallvec::smallvec![0],
            &tasks(5),
            &"c".into(),
            0,
            128,
        );
        let mut b = Router::new(
            &Grouping::Fields(vec!["k".into()]),
            smallvec::smallvec![0],
            &tasks(5),
            &"c".into(),
            3,
            128,
        );
        let mut used = std::collections::HashSet::new();
        for i in 0..1000 {
            let v = [Value::from(format!("key{}", i % 50))];
            let x = route_once(&mut a, &v, &loads);
            assert_eq!(x, route_once(&mut b, &v, &loads), "two emitters disagree");
            assert_eq!(x, route_once(&mut a, &v, &loads), "one key moved");
            used.insert(x[0]);
        }
        assert_eq!(used.len(), 5, "50 keys should reach all 5 tasks");
    }

    // Guards the one-field shortcut of `route_one` (text keys hashed without the match over
    // types): every kind of key, on one field or two, reaches the task that owns the key group
    // of `key_hash_of(key)`, where keyed state stored under that key is restored.
    #[test]
    fn fields_routes_every_key_to_the_task_owning_its_key_group() {
        let keys = [
            Value::from("word"),
            Value::from("a text longer than twenty-three bytes"),
            Value::from(""),
            Value::Int(-7),
            Value::Float(2.5),
            Value::Bool(true),
            Value::Null,
            Value::from(bytes::Bytes::from_static(b"\x01\x02")),
        ];
        for p in [1u32, 2, 3, 5] {
            let loads = gauges(&vec![0; p as usize]);
            for groups in [128usize, 100] {
                let router = |fields: SmallVec<[usize; 2]>| {
                    let names = fields
                        .iter()
                        .map(|i| SmolStr::new(format!("f{i}")))
                        .collect();
                    Router::new(
                        &Grouping::Fields(names),
                        fields,
                        &tasks(p),
                        &"c".into(),
                        0,
                        groups,
                    )
                };
                let mut one = router(smallvec::smallvec![1]);
                let mut two = router(smallvec::smallvec![1, 0]);
                for (i, key) in keys.iter().enumerate() {
                    let values = [keys[(i + 1) % keys.len()].clone(), key.clone()];
                    let owner = |hash| {
                        task_of_key_group(key_group(hash, groups as u32), groups as u32, p as usize)
                    };
                    let want = owner(key_hash_of(&values[1..]));
                    assert_eq!(one.route_one(&values, &loads), Some(want), "{key:?}, p={p}");
                    assert_eq!(route_once(&mut one, &values, &loads).as_slice(), [want]);
                    let pair = [values[1].clone(), values[0].clone()];
                    let want = owner(key_hash_of(&pair));
                    assert_eq!(
                        two.route_one(&values, &loads),
                        Some(want),
                        "{pair:?}, p={p}"
                    );
                }
            }
        }
    }

    #[test]
    fn shuffle_is_even_when_loads_are_alike_and_favours_empty_queues() {
        let loads = gauges(&[0; 4]);
        let mut r = Router::new(
            &Grouping::Shuffle,
            SmallVec::new(),
            &tasks(4),
            &"c".into(),
            1,
            128,
        );
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[route_once(&mut r, &[], &loads)[0]] += 1;
        }
        assert_eq!(counts, [1000; 4]);

        let loads = gauges(&[0, 5000, 5000, 5000]);
        let mut counts = [0usize; 4];
        for _ in 0..(SHUFFLE_REFRESH as usize * 4) {
            counts[route_once(&mut r, &[], &loads)[0]] += 1;
        }
        assert!(counts[0] > 3 * counts[1], "{counts:?}");
        assert!(counts[1] > 0, "a loaded task still gets some: {counts:?}");
    }

    #[test]
    fn partial_key_spreads_a_hot_key_over_exactly_two_tasks() {
        let loads = gauges(&[0; 6]);
        let g = Grouping::PartialKey(vec!["k".into()]);
        let mut r = Router::new(&g, smallvec::smallvec![0], &tasks(6), &"c".into(), 0, 128);
        let mut counts = [0usize; 6];
        for _ in 0..1000 {
            counts[route_once(&mut r, &[Value::from("hot")], &loads)[0]] += 1;
        }
        let used: Vec<_> = counts.iter().filter(|c| **c > 0).collect();
        assert_eq!(used, [&500, &500], "{counts:?}");
    }

    #[test]
    fn all_global_and_custom() {
        let loads = gauges(&[0; 3]);
        let t = [TaskId(7), TaskId(5), TaskId(9)];
        let mut all = Router::new(&Grouping::All, SmallVec::new(), &t, &"c".into(), 0, 128);
        assert_eq!(route_once(&mut all, &[], &loads).as_slice(), &[0, 1, 2]);
        let mut global = Router::new(&Grouping::Global, SmallVec::new(), &t, &"c".into(), 0, 128);
        assert_eq!(route_once(&mut global, &[], &loads).as_slice(), &[1]);

        struct EvenOdd;
        impl CustomGrouping for EvenOdd {
            fn choose(&mut self, values: &[Value], out: &mut Vec<usize>) {
                let n = values[0].as_i64().unwrap_or(0);
                out.push((n % 2) as usize);
                out.push(99); // out of range: dropped
            }
        }
        let g = Grouping::Custom(Arc::new(|_: &[TaskId]| EvenOdd));
        let mut custom = Router::new(&g, SmallVec::new(), &t, &"c".into(), 0, 128);
        assert_eq!(
            route_once(&mut custom, &[Value::Int(3)], &loads).as_slice(),
            &[1]
        );
        assert_eq!(
            route_once(&mut custom, &[Value::Int(4)], &loads).as_slice(),
            &[0]
        );
    }
}
