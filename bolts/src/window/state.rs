//! The per-task state of the `window` bolt: open duration windows per group (with the
//! event-time watermarks and a timer index of window starts), count windows per group, and the
//! results emitted when windows fire. The per-group parts are [`KeyedState`], checkpointed by
//! group key; the clock (watermarks, how far windows have fired) is one value per task.
//!
//! ```text
//! tuple ──► DurationState::add ──► the group's open windows containing it: accumulators (+ held)
//!       │                          a new window ──► timers[start] += group
//!       └─► CountGroup::add ──► running accumulators (tumbling) or the last `length` values
//! clock / watermark / end of input ──► fire_until (timers in order of start) / flush
//!                                  ──► one result per window and group
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_runtime::grouping::key_hash_of;
use topo_runtime::{
    BoxError, KeyedState, OutputCollector, Restore, Snapshot, StateKey, TaskContext, TaskId, Tuple,
    Value, Values,
};

use super::aggregate::{Acc, same};
use super::{Plan, Shape};

/// Per-task window state.
pub(super) enum State {
    Duration(DurationState),
    Count(KeyedState<GroupKey, CountGroup>),
}

impl State {
    /// An empty state for this plan.
    pub(super) fn new(plan: &Plan) -> State {
        match plan.shape {
            Shape::Duration { .. } => State::Duration(DurationState::default()),
            Shape::Count { .. } => State::Count(KeyedState::new()),
        }
    }
}

/// The values of the `group_by` fields of a tuple: hashed with [`Value::stable_hash`], equal when
/// the values are equal (NaN equal to NaN, so such a group is one group). Its state key hash is
/// [`key_hash_of`] the values: a fields grouping on the `group_by` fields (in that order) sends
/// the group to the task that restores its state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct GroupKey(
    #[serde(with = "topo_runtime::value::stored::values")] pub(super) Values,
);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| same(a, b))
    }
}
impl Eq for GroupKey {}
impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &self.0 {
            state.write_u64(v.stable_hash(0));
        }
    }
}

impl StateKey for GroupKey {
    fn key_hash(&self) -> u64 {
        key_hash_of(&self.0)
    }
}

/// The per-source-task watermarks of event time.
#[derive(Clone, Default)]
pub(super) struct Watermarks {
    /// Largest timestamp seen from each upstream task (and the task's component).
    max_seen: Vec<(TaskId, SmolStr, i64)>,
    current: Option<i64>,
}

impl Watermarks {
    /// Records a timestamp from `task` of `component`; returns the watermark (never lower than
    /// before).
    pub(super) fn observe(&mut self, task: TaskId, component: &str, ts: i64, lag: i64) -> i64 {
        match self.max_seen.iter_mut().find(|(t, _, _)| *t == task) {
            Some((_, _, m)) => *m = (*m).max(ts),
            None => self.max_seen.push((task, component.into(), ts)),
        }
        let low = self
            .max_seen
            .iter()
            .map(|(_, _, m)| m.saturating_sub(lag))
            .min()
            .unwrap_or(i64::MIN);
        let wm = self.current.map_or(low, |c| c.max(low));
        self.current = Some(wm);
        wm
    }
}

/// The clock of a task's duration windows as checkpointed: how far windows have fired, the
/// watermark, and the largest timestamp from each upstream task, named by component and task
/// index (task ids change when a parallelism does).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct StoredClock {
    fired_until: i64,
    current: Option<i64>,
    /// (component, task index, the component's parallelism, largest timestamp).
    seen: Vec<(SmolStr, u32, u32, i64)>,
}

/// One open window of one group: its start, accumulators, and (hold) the inputs whose last
/// window this is, with their times. Held inputs are not checkpointed (see the module docs).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Win {
    start: i64,
    accs: Vec<Acc>,
    #[serde(skip)]
    held: Vec<(i64, Tuple)>,
}

/// A group's open duration windows, by start (ascending).
#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct Open {
    windows: Vec<Win>,
}

/// Two old tasks' windows of one group (a restore of an input not grouped by `group_by`): the
/// windows' accumulators combined.
fn merge_open(mut a: Open, b: Open) -> Open {
    for w in b.windows {
        match a.windows.binary_search_by_key(&w.start, |x| x.start) {
            Ok(i) => {
                for (x, y) in a.windows[i].accs.iter_mut().zip(w.accs) {
                    x.merge(y);
                }
            }
            Err(i) => a.windows.insert(i, w),
        }
    }
    a
}

/// Duration windows: the open windows of each group, and the groups with a window open at each
/// start.
pub(super) struct DurationState {
    groups: KeyedState<GroupKey, Open>,
    /// Window start -> the groups with that window open.
    timers: BTreeMap<i64, Vec<GroupKey>>,
    /// Every window ending at or before this has fired.
    pub(super) fired_until: i64,
    pub(super) watermarks: Watermarks,
}

impl Default for DurationState {
    fn default() -> Self {
        DurationState {
            groups: KeyedState::new(),
            timers: BTreeMap::new(),
            fired_until: i64::MIN,
            watermarks: Watermarks::default(),
        }
    }
}

impl DurationState {
    /// Adds a tuple at `time` to each of its windows that has not fired.
    pub(super) fn add(
        &mut self,
        plan: &Plan,
        time: i64,
        key: GroupKey,
        input: &Tuple,
        agg_idx: &[Option<usize>],
        hold: bool,
    ) {
        let Shape::Duration { length, slide } = plan.shape else {
            return;
        };
        let last_start = time.div_euclid(slide) * slide;
        if self.groups.get(&key).is_none() {
            self.groups.insert(key.clone(), Open::default());
        }
        let Some(open) = self.groups.get_mut(&key) else {
            return;
        };
        let mut start = last_start;
        let mut first = true;
        while start.saturating_add(length) > time {
            if start.saturating_add(length) <= self.fired_until {
                break;
            }
            // Windows are few per group (length / slide): a linear search from the end.
            let pos = open.windows.iter().rposition(|w| w.start <= start);
            let i = match pos {
                Some(i) if open.windows[i].start == start => i,
                _ => {
                    let i = pos.map_or(0, |i| i + 1);
                    open.windows.insert(
                        i,
                        Win {
                            start,
                            accs: plan.aggs.iter().map(|a| Acc::new(a.kind)).collect(),
                            held: Vec::new(),
                        },
                    );
                    self.timers.entry(start).or_default().push(key.clone());
                    i
                }
            };
            let win = &mut open.windows[i];
            for (acc, i) in win.accs.iter_mut().zip(agg_idx) {
                acc.add(i.and_then(|i| input.get(i)).unwrap_or(&Value::Null));
            }
            if hold && first {
                win.held.push((time, input.clone()));
            }
            first = false;
            start = match start.checked_sub(slide) {
                Some(s) => s,
                None => break,
            };
        }
    }

    /// Fires every window whose end is at or before `until`, in order of end.
    pub(super) fn fire_until(
        &mut self,
        plan: &Plan,
        until: i64,
        hold: bool,
        out: &mut OutputCollector<'_>,
    ) {
        let Shape::Duration { length, .. } = plan.shape else {
            return;
        };
        while let Some(entry) = self.timers.first_entry() {
            let start = *entry.key();
            let end = start.saturating_add(length);
            if end > until {
                break;
            }
            let keys = entry.remove();
            for key in keys {
                let Some(open) = self.groups.get_mut(&key) else {
                    continue;
                };
                let Some(i) = open.windows.iter().position(|w| w.start == start) else {
                    continue;
                };
                let win = open.windows.remove(i);
                let vals = result_values(start, end, &key, &win.accs);
                if hold {
                    // Every input of this window and group: those whose last window this is,
                    // and those held by the group's later windows that still contain this one's
                    // span.
                    let mut anchors: Vec<&Tuple> = win.held.iter().map(|(_, t)| t).collect();
                    for later in open.windows.iter().filter(|w| w.start < end) {
                        anchors.extend(later.held.iter().filter(|(t, _)| *t < end).map(|(_, t)| t));
                    }
                    out.emit_anchored(&anchors, vals);
                    for (_, t) in &win.held {
                        out.ack(t);
                    }
                } else {
                    out.emit(vals);
                }
                if open.windows.is_empty() {
                    self.groups.remove(&key);
                }
            }
        }
        if until > self.fired_until {
            self.fired_until = until;
        }
    }

    /// Writes the open windows (keyed by group) and the clock.
    pub(super) fn snapshot(
        &mut self,
        snap: &mut Snapshot,
        ctx: Option<&TaskContext>,
    ) -> Result<(), BoxError> {
        snap.put_keyed("windows", &mut self.groups);
        let mut seen = Vec::with_capacity(self.watermarks.max_seen.len());
        for (task, component, m) in &self.watermarks.max_seen {
            let tasks = ctx.and_then(|c| c.component_tasks(component));
            if let Some(tasks) = tasks
                && let Some(i) = tasks.iter().position(|t| t == task)
            {
                seen.push((component.clone(), i as u32, tasks.len() as u32, *m));
            }
        }
        snap.put(
            "clock",
            &StoredClock {
                fired_until: self.fired_until,
                current: self.watermarks.current,
                seen,
            },
        );
        Ok(())
    }

    /// Reads the open windows of the groups this task owns and the clock back. With another
    /// parallelism the clock is the most advanced of the old tasks' (see the module docs).
    pub(super) fn restore(
        &mut self,
        from: &Restore,
        ctx: Option<&TaskContext>,
    ) -> Result<(), BoxError> {
        from.keyed_merge("windows", &mut self.groups, merge_open)?;
        self.timers.clear();
        for (key, open) in self.groups.iter() {
            for w in &open.windows {
                self.timers.entry(w.start).or_default().push(key.clone());
            }
        }
        let clock = if from.same_parallelism() {
            from.get::<StoredClock>("clock")?
        } else {
            let mut merged: Option<StoredClock> = None;
            for old in from.get_all::<StoredClock>("clock")? {
                let c = merged.get_or_insert_with(|| StoredClock {
                    fired_until: i64::MIN,
                    ..StoredClock::default()
                });
                c.fired_until = c.fired_until.max(old.fired_until);
                c.current = c.current.max(old.current);
                for (comp, i, n, m) in old.seen {
                    match c
                        .seen
                        .iter_mut()
                        .find(|(c2, i2, n2, _)| *c2 == comp && *i2 == i && *n2 == n)
                    {
                        Some(e) => e.3 = e.3.max(m),
                        None => c.seen.push((comp, i, n, m)),
                    }
                }
            }
            merged
        };
        let Some(clock) = clock else {
            return Ok(());
        };
        self.fired_until = clock.fired_until;
        self.watermarks.current = clock.current;
        self.watermarks.max_seen.clear();
        for (component, i, n, m) in clock.seen {
            // An upstream component whose parallelism changed: its tasks are new, their
            // timestamps start again from their next tuples (the watermark does not go back).
            if let Some(tasks) = ctx.and_then(|c| c.component_tasks(&component))
                && tasks.len() == n as usize
                && let Some(task) = tasks.get(i as usize)
            {
                self.watermarks.max_seen.push((*task, component, m));
            }
        }
        Ok(())
    }
}

fn result_values(start: i64, end: i64, key: &GroupKey, accs: &[Acc]) -> Values {
    let mut vals = Values::with_capacity(2 + key.0.len() + accs.len());
    vals.push(Value::Int(start));
    vals.push(Value::Int(end));
    vals.extend(key.0.iter().cloned());
    vals.extend(accs.iter().map(Acc::result));
    vals
}

/// One entry of a sliding count window: arrival time, the aggregated values, and (hold) the
/// input until no later window contains it (not checkpointed).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Entry {
    ms: i64,
    #[serde(with = "topo_runtime::value::stored::values")]
    values: Values,
    #[serde(skip)]
    pub(super) input: Option<Tuple>,
}

/// One group of count windows; checkpointed whole but for the held inputs.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct CountGroup {
    /// Tuples since the last result.
    since: usize,
    /// Tumbling: running accumulators, first and last arrival, held inputs.
    accs: Vec<Acc>,
    first_ms: i64,
    last_ms: i64,
    #[serde(skip)]
    held: Vec<Tuple>,
    /// Sliding: the last `length` entries.
    pub(super) buf: VecDeque<Entry>,
}

impl CountGroup {
    pub(super) fn new(plan: &Plan, length: usize) -> CountGroup {
        let sliding = matches!(plan.shape, Shape::Count { slide, .. } if slide < length);
        CountGroup {
            since: 0,
            accs: plan.aggs.iter().map(|a| Acc::new(a.kind)).collect(),
            first_ms: 0,
            last_ms: 0,
            held: Vec::new(),
            buf: if sliding {
                VecDeque::with_capacity(length.min(4096))
            } else {
                VecDeque::new()
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        plan: &Plan,
        length: usize,
        slide: usize,
        ms: i64,
        key: &GroupKey,
        input: &Tuple,
        agg_idx: &[Option<usize>],
        hold: bool,
        out: &mut OutputCollector<'_>,
    ) {
        let value = |i: &Option<usize>| i.and_then(|i| input.get(i)).unwrap_or(&Value::Null);
        self.since += 1;
        if slide == length {
            if self.since == 1 {
                self.first_ms = ms;
            }
            self.last_ms = ms;
            for (acc, i) in self.accs.iter_mut().zip(agg_idx) {
                acc.add(value(i));
            }
            if hold {
                self.held.push(input.clone());
            }
            if self.since == length {
                self.flush(plan, length, slide, key, hold, out);
            }
        } else {
            if self.buf.len() == length
                && let Some(old) = self.buf.pop_front()
                && let Some(t) = old.input
            {
                out.ack(&t);
            }
            self.buf.push_back(Entry {
                ms,
                values: agg_idx.iter().map(|i| value(i).clone()).collect(),
                input: hold.then(|| input.clone()),
            });
            if self.since == slide {
                self.flush(plan, length, slide, key, hold, out);
                // Entries the next result will no longer cover are done: ack them now.
                let drop = (self.buf.len() + slide).saturating_sub(length);
                for e in self.buf.iter_mut().take(drop) {
                    if let Some(t) = e.input.take() {
                        out.ack(&t);
                    }
                }
            }
        }
    }

    /// Emits the current window of this group, if it received tuples since the last result.
    pub(super) fn flush(
        &mut self,
        plan: &Plan,
        length: usize,
        slide: usize,
        key: &GroupKey,
        hold: bool,
        out: &mut OutputCollector<'_>,
    ) {
        if self.since == 0 {
            return;
        }
        self.since = 0;
        if slide == length {
            let vals = result_values(self.first_ms, self.last_ms, key, &self.accs);
            if hold {
                let anchors: Vec<&Tuple> = self.held.iter().collect();
                out.emit_anchored(&anchors, vals);
                for t in self.held.drain(..) {
                    out.ack(&t);
                }
            } else {
                out.emit(vals);
            }
            for (acc, a) in self.accs.iter_mut().zip(&plan.aggs) {
                *acc = Acc::new(a.kind);
            }
        } else {
            let mut accs: Vec<Acc> = plan.aggs.iter().map(|a| Acc::new(a.kind)).collect();
            for e in &self.buf {
                for (acc, v) in accs.iter_mut().zip(&e.values) {
                    acc.add(v);
                }
            }
            let first = self.buf.front().map_or(0, |e| e.ms);
            let last = self.buf.back().map_or(0, |e| e.ms);
            let vals = result_values(first, last, key, &accs);
            if hold {
                let anchors: Vec<&Tuple> =
                    self.buf.iter().filter_map(|e| e.input.as_ref()).collect();
                out.emit_anchored(&anchors, vals);
            } else {
                out.emit(vals);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_slowest_task_and_never_goes_back() {
        let mut w = Watermarks::default();
        assert_eq!(w.observe(TaskId(1), "a", 100, 10), 90);
        assert_eq!(w.observe(TaskId(2), "a", 50, 10), 90);
        assert_eq!(w.observe(TaskId(2), "a", 95, 10), 90);
        assert_eq!(w.observe(TaskId(2), "a", 120, 10), 90);
        assert_eq!(w.observe(TaskId(1), "a", 200, 10), 110);
    }
}
