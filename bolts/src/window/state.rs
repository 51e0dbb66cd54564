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

/// The event-time watermark of a task: the minimum, over every upstream task, of (largest
/// timestamp from it − lag), never going back. An upstream task that has sent nothing holds it
/// at none; one silent for the idle timeout (see [`check_idle`](Watermarks::check_idle)) is left
/// out until its timestamps catch up with the watermark again (Flink's rule for idle inputs).
#[derive(Clone, Default)]
pub(super) struct Watermarks {
    /// Every upstream task: those the context declares (set in `prepare`), then any other that
    /// sent (a context declaring none).
    inputs: Vec<Upstream>,
    /// The input the last tuple came from (tuples arrive in batches from one sender).
    last: usize,
    /// The smallest largest timestamp over the inputs not left out; `None` while one of them
    /// has sent nothing, or all are left out.
    low: Option<i64>,
    current: Option<i64>,
}

/// One upstream task, as the watermark sees it.
#[derive(Clone)]
struct Upstream {
    task: TaskId,
    component: SmolStr,
    /// Largest timestamp from it; `None` until it sends.
    max: Option<i64>,
    /// It sent since the last idleness check.
    sent: bool,
    /// Processing time (ms) at which it was last found to have sent (or the checks began).
    heard: Option<i64>,
    /// Left out of the minimum: it was silent for the idle timeout, and its largest timestamp −
    /// lag has not reached the watermark since.
    out: bool,
}

impl Upstream {
    fn new(task: TaskId, component: &str, heard: Option<i64>) -> Upstream {
        Upstream {
            task,
            component: component.into(),
            max: None,
            sent: false,
            heard,
            out: false,
        }
    }
}

impl Watermarks {
    /// Sets the upstream tasks the watermark waits for (`TaskContext::input_tasks`), silent
    /// since `now` (processing time, ms); each keeps what it had (a restore before).
    pub(super) fn declare<'a>(
        &mut self,
        tasks: impl IntoIterator<Item = (&'a str, &'a [TaskId])>,
        now: i64,
    ) {
        for (component, ids) in tasks {
            for &task in ids {
                if !self.inputs.iter().any(|u| u.task == task) {
                    self.inputs.push(Upstream::new(task, component, Some(now)));
                }
            }
        }
        self.recompute();
    }

    /// Records a timestamp from `task` of `component` (a late tuple's too: it shows the task is
    /// not idle); returns the watermark (never lower than before), `None` while an upstream
    /// task not left out has sent nothing.
    #[inline]
    pub(super) fn observe(
        &mut self,
        task: TaskId,
        component: &str,
        ts: i64,
        lag: i64,
    ) -> Option<i64> {
        let i = match self.inputs.get(self.last) {
            Some(u) if u.task == task => self.last,
            _ => match self.inputs.iter().position(|u| u.task == task) {
                Some(i) => i,
                None => {
                    self.inputs.push(Upstream::new(task, component, None));
                    self.inputs.len() - 1
                }
            },
        };
        self.last = i;
        let u = &mut self.inputs[i];
        u.sent = true;
        let old = u.max;
        let max = old.map_or(ts, |m| m.max(ts));
        if u.out {
            // Back from idleness: it counts again once it has caught up with the watermark.
            u.max = Some(max);
            if self.current.is_some_and(|c| max.saturating_sub(lag) < c) {
                return self.current;
            }
            u.out = false;
        } else {
            if old.is_some_and(|m| m >= ts) {
                return self.current;
            }
            u.max = Some(max);
            if let Some(m) = old
                && self.low.is_none_or(|low| m > low)
            {
                // It was not at the minimum (or another has sent nothing): the minimum stays.
                return self.current;
            }
        }
        self.recompute();
        self.advance(lag)
    }

    /// The idleness check, on a tick at processing time `now` (ms): an upstream task that has
    /// not sent since `idle_ms` ago (as far as checks every tick interval can tell) is left out
    /// of the minimum (see [`observe`](Watermarks::observe) for its return). Returns the
    /// watermark if it moved.
    pub(super) fn check_idle(&mut self, now: i64, idle_ms: i64, lag: i64) -> Option<i64> {
        let mut changed = false;
        for u in &mut self.inputs {
            if std::mem::take(&mut u.sent) {
                u.heard = Some(now);
                continue;
            }
            match u.heard {
                None => u.heard = Some(now),
                Some(h) if !u.out && now.saturating_sub(h) >= idle_ms => {
                    u.out = true;
                    changed = true;
                }
                Some(_) => {}
            }
        }
        if !changed {
            return None;
        }
        self.recompute();
        let before = self.current;
        let wm = self.advance(lag);
        (wm != before).then_some(wm).flatten()
    }

    /// Recomputes the minimum over the inputs not left out.
    fn recompute(&mut self) {
        let mut low = None;
        for u in self.inputs.iter().filter(|u| !u.out) {
            match u.max {
                None => {
                    self.low = None;
                    return;
                }
                Some(m) => low = Some(low.map_or(m, |l: i64| l.min(m))),
            }
        }
        self.low = low;
    }

    /// Moves the watermark up to the minimum − `lag` (never back).
    fn advance(&mut self, lag: i64) -> Option<i64> {
        if let Some(low) = self.low {
            let wm = low.saturating_sub(lag);
            self.current = Some(self.current.map_or(wm, |c| c.max(wm)));
        }
        self.current
    }

    /// Each upstream task that has sent, with its component and largest timestamp.
    fn seen(&self) -> impl Iterator<Item = (TaskId, &SmolStr, i64)> {
        self.inputs
            .iter()
            .filter_map(|u| Some((u.task, &u.component, u.max?)))
    }

    /// Takes up a restored largest timestamp of `task` of `component`: for a declared upstream
    /// task; for any, when the context declares none.
    fn restore_seen(&mut self, task: TaskId, component: SmolStr, max: i64) {
        let declared = !self.inputs.is_empty();
        match self.inputs.iter_mut().find(|u| u.task == task) {
            Some(u) => u.max = Some(u.max.map_or(max, |m| m.max(max))),
            None if !declared => {
                let mut u = Upstream::new(task, &component, None);
                u.max = Some(max);
                self.inputs.push(u);
            }
            None => {}
        }
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
        let mut seen = Vec::new();
        for (task, component, m) in self.watermarks.seen() {
            let tasks = ctx.and_then(|c| c.component_tasks(component));
            if let Some(tasks) = tasks
                && let Some(i) = tasks.iter().position(|t| *t == task)
            {
                seen.push((component.clone(), i as u32, tasks.len() as u32, m));
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

    /// Reads the open windows of the groups this task owns and the clock back (event time: with
    /// `lag`, after the upstream tasks were declared). With another parallelism the clock is the
    /// most advanced of the old tasks' (see the module docs).
    pub(super) fn restore(
        &mut self,
        from: &Restore,
        ctx: Option<&TaskContext>,
        lag: i64,
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
        for (component, i, n, m) in clock.seen {
            // An upstream component whose parallelism changed: its tasks are new and hold the
            // watermark where it was until each has sent (the watermark does not go back).
            if let Some(tasks) = ctx.and_then(|c| c.component_tasks(&component))
                && tasks.len() == n as usize
                && let Some(task) = tasks.get(i as usize)
            {
                self.watermarks.restore_seen(*task, component, m);
            }
        }
        // Merged from several old tasks, the largest timestamps may put the watermark past the
        // one restored: windows up to it fire with the next tuple.
        self.watermarks.recompute();
        self.watermarks.advance(lag);
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

    // Guards the fallback with no declared inputs: the tasks that sent count.
    #[test]
    fn watermark_is_the_slowest_task_and_never_goes_back() {
        let mut w = Watermarks::default();
        assert_eq!(w.observe(TaskId(1), "a", 100, 10), Some(90));
        assert_eq!(w.observe(TaskId(2), "a", 50, 10), Some(90));
        assert_eq!(w.observe(TaskId(2), "a", 95, 10), Some(90));
        assert_eq!(w.observe(TaskId(2), "a", 120, 10), Some(90));
        assert_eq!(w.observe(TaskId(1), "a", 200, 10), Some(110));
    }

    fn declared(tasks: &[u32], now: i64) -> Watermarks {
        let ids: Vec<TaskId> = tasks.iter().map(|&t| TaskId(t)).collect();
        let mut w = Watermarks::default();
        w.declare([("up", ids.as_slice())], now);
        w
    }

    // Guards that an upstream task that has not sent holds the watermark at none, however far
    // the others are.
    #[test]
    fn a_declared_task_that_has_not_sent_holds_the_watermark() {
        let mut w = declared(&[1, 2, 3], 0);
        assert_eq!(w.observe(TaskId(1), "up", 100, 0), None);
        assert_eq!(w.observe(TaskId(1), "up", 5_000, 0), None);
        assert_eq!(w.observe(TaskId(3), "up", 300, 0), None);
        assert_eq!(w.observe(TaskId(2), "up", 200, 0), Some(200));
        assert_eq!(w.observe(TaskId(2), "up", 400, 0), Some(300));
        // A task not declared (not one of the inputs) counts once it sends.
        assert_eq!(w.observe(TaskId(9), "other", 250, 0), Some(300));
        assert_eq!(w.observe(TaskId(3), "up", 1_000, 0), Some(300));
        assert_eq!(w.observe(TaskId(9), "other", 900, 0), Some(400));
        assert_eq!(w.current, Some(400));
    }

    // Guards Flink's withIdleness: a task silent for the timeout is left out, and counts again
    // once it has caught up with the watermark (behind it, it does not hold it); a task that
    // sends between checks is never idle.
    #[test]
    fn an_idle_task_is_left_out_until_it_catches_up() {
        let mut w = declared(&[1, 2], 0);
        assert_eq!(w.observe(TaskId(1), "up", 100, 10), None);
        assert_eq!(w.check_idle(500, 1_000, 10), None);
        assert_eq!(w.observe(TaskId(1), "up", 120, 10), None);
        // Task 1 sent since the last check: heard at 999; task 2 silent since 0.
        assert_eq!(w.check_idle(999, 1_000, 10), None);
        assert_eq!(w.check_idle(1_000, 1_000, 10), Some(110));
        assert_eq!(w.observe(TaskId(1), "up", 200, 10), Some(190));
        // Task 2 is back, behind the watermark: left out until it catches up.
        assert_eq!(w.observe(TaskId(2), "up", 150, 10), Some(190));
        assert_eq!(w.observe(TaskId(1), "up", 300, 10), Some(290));
        assert_eq!(w.observe(TaskId(2), "up", 305, 10), Some(290));
        // Caught up: it holds the watermark again.
        assert_eq!(w.observe(TaskId(1), "up", 400, 10), Some(295));
        // Task 1 stays active (it sends between checks); task 2 goes idle again, at 1999 + 1000.
        assert_eq!(w.check_idle(1_999, 1_000, 10), None);
        assert_eq!(w.observe(TaskId(1), "up", 500, 10), Some(295));
        assert_eq!(w.check_idle(2_998, 1_000, 10), None);
        assert_eq!(w.observe(TaskId(1), "up", 600, 10), Some(295));
        assert_eq!(w.check_idle(2_999, 1_000, 10), Some(590));
        // A task back from idleness with nothing behind the watermark counts at once.
        assert_eq!(w.observe(TaskId(2), "up", 650, 10), Some(590));
        assert_eq!(w.observe(TaskId(1), "up", 700, 10), Some(640));
    }

    // Guards that with every upstream task idle the watermark stays where it is.
    #[test]
    fn every_task_idle_keeps_the_watermark() {
        let mut w = declared(&[1, 2], 0);
        w.observe(TaskId(1), "up", 100, 0);
        assert_eq!(w.observe(TaskId(2), "up", 50, 0), Some(50));
        // Both sent since the start: heard at the first check, idle at the second.
        assert_eq!(w.check_idle(10_000, 1_000, 0), None);
        assert_eq!(w.check_idle(11_000, 1_000, 0), None);
        assert_eq!(w.current, Some(50));
        assert_eq!(w.observe(TaskId(1), "up", 150, 0), Some(150));
    }

    // Guards the shortcut of `observe` (recompute only when the sender was at the minimum)
    // against recomputing from scratch, with idleness and undeclared senders mixed in.
    #[test]
    fn observe_matches_a_naive_minimum() {
        let mut r = 0x5eed_u64;
        let mut next = |n: u64| {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) % n
        };
        let mut idle_moves = 0;
        let mut rejoins = 0;
        for round in 0..50 {
            let tasks = 1 + next(5) as u32;
            let ids: Vec<u32> = (0..tasks).collect();
            let mut w = declared(&ids, 0);
            let lag = next(50) as i64;
            // (task, largest timestamp, left out, sent since the check) per task, as a naive
            // model: declared ones, then others.
            let mut model: Vec<(u32, Option<i64>, bool, bool)> =
                ids.iter().map(|&t| (t, None, false, false)).collect();
            let mut heard: Vec<i64> = vec![0; ids.len()];
            let mut wm: Option<i64> = None;
            let mut now = 0;
            for _ in 0..300 {
                if next(10) == 0 {
                    now += next(700) as i64;
                    for (i, m) in model.iter_mut().enumerate() {
                        if heard.len() <= i {
                            heard.push(now);
                        }
                        if std::mem::take(&mut m.3) {
                            heard[i] = now;
                        } else if now - heard[i] >= 1_000 {
                            m.2 = true;
                        }
                    }
                    let before = wm;
                    let low = naive_low(&model);
                    if let Some(low) = low {
                        wm = Some(wm.map_or(low - lag, |c| c.max(low - lag)));
                    }
                    let moved = (wm != before).then_some(wm).flatten();
                    idle_moves += usize::from(moved.is_some());
                    assert_eq!(w.check_idle(now, 1_000, lag), moved, "round {round}");
                    continue;
                }
                let task = next(tasks as u64 + 1) as u32;
                let ts = next(10_000) as i64;
                let i = match model.iter().position(|m| m.0 == task) {
                    Some(i) => i,
                    None => {
                        model.push((task, None, false, false));
                        model.len() - 1
                    }
                };
                let m = &mut model[i];
                let max = m.1.map_or(ts, |x| x.max(ts));
                m.1 = Some(max);
                // Left out until caught up with the watermark.
                if m.2 && wm.is_none_or(|c| max - lag >= c) {
                    m.2 = false;
                    rejoins += 1;
                }
                m.3 = true;
                if let Some(low) = naive_low(&model) {
                    wm = Some(wm.map_or(low - lag, |c| c.max(low - lag)));
                }
                assert_eq!(w.observe(TaskId(task), "up", ts, lag), wm, "round {round}");
            }
        }
        assert!(idle_moves > 10 && rejoins > 10, "{idle_moves} {rejoins}");
    }

    /// The smallest largest timestamp over the tasks not left out, if every one of them sent.
    fn naive_low(model: &[(u32, Option<i64>, bool, bool)]) -> Option<i64> {
        let active: Vec<_> = model.iter().filter(|m| !m.2).collect();
        if active.is_empty() || active.iter().any(|m| m.1.is_none()) {
            return None;
        }
        active.iter().filter_map(|m| m.1).min()
    }
}
