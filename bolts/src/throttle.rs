//! `throttle`: passes every input on unchanged, at most `rate` tuples per second per task — for a
//! sink in front of a rate-limited API, or to make a slow stage on purpose.
//!
//! ```text
//!                   ┌──────── throttle (a token bucket per task) ────────┐
//! (any fields) ────►│ one token per input: `rate` new tokens a second,    │──► default: the input's
//!                   │ at most `burst` kept; none left → execute waits     │    values, anchored;
//! upstream waits ◄──│ for the next (nothing dropped) and the queue fills  │    then the input acked
//! (backpressure)    └─────────────────────────────────────────────────────┘
//! ```
//!
//! A token bucket per task: it starts full with `burst` tokens, gains `rate` tokens per second
//! and holds at most `burst`. Each input takes one token; when none is left, `execute` waits
//! until one has accrued. While it waits the task takes no other input, so its receive queue
//! fills, the upstream tasks wait for room ([`backpressure`](topo_runtime::TaskSnapshot::backpressure))
//! and finally the spouts slow down: the excess is held, never dropped. Over any interval of `t`
//! seconds a task passes at most `burst + rate × t` tuples.
//!
//! The wait counts as the task's busy time, so a throttled stage shows a capacity near 1 — it is
//! the bottleneck, as intended — and its execute latency includes the wait.
//!
//! The bucket is a few lines of our own rather than a rate-limiter crate because it must wait on
//! tokio's clock: a test that pauses the runtime's clock
//! ([`BoltTester::pause_time`](topo_runtime::testing::BoltTester::pause_time)) then sees exact,
//! deterministic timings.
//!
//! # Options
//! ```toml
//! [bolts.slow]
//! kind = "throttle"
//! rate = 300        # tuples per second per task (required, > 0; fractions allowed: 0.5 = one per 2 s)
//! burst = 50        # tuples a rested task passes at once; default = rate (at least 1)
//! inputs = [{ from = "counts" }]
//! ```
//!
//! # Output
//! The `default` stream carries each input's values unchanged, with the input stream's fields
//! (every input of the throttle must have the same fields), anchored to the input; the input is
//! acked right after its emit.

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{Bolt, BoxError, DEFAULT_STREAM, OutputCollector, OutputDeclarer, Tuple};

/// Options of the `throttle` bolt.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThrottleOptions {
    /// Tuples per second per task, greater than zero. Required.
    pub rate: f64,
    /// Tokens a task's bucket holds: how many tuples a task that has been idle passes at once
    /// before the rate applies. At least 1; unset = `rate` (or 1 when `rate` is below 1).
    #[serde(default)]
    pub burst: Option<f64>,
}

/// The `throttle` bolt: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Throttle {
    /// The validated rate, tokens per second.
    rate: f64,
    /// The validated bucket size.
    burst: f64,
    /// This task's bucket; made on the first input, so the bucket of a task starts full however
    /// long the topology took to start.
    bucket: Option<TokenBucket>,
}

impl Throttle {
    /// A throttle with these options, or why they are invalid (the message names the option and
    /// the value): `rate` must be a finite number above zero, `burst` a finite number of at
    /// least 1.
    pub fn new(opts: ThrottleOptions) -> Result<Throttle, String> {
        let rate = opts.rate;
        if !rate.is_finite() || rate <= 0.0 {
            return Err(format!(
                "option `rate` must be a number of tuples per second above 0, got {rate}"
            ));
        }
        let burst = opts.burst.unwrap_or(rate.max(1.0));
        if !burst.is_finite() || burst < 1.0 {
            return Err(format!(
                "option `burst` must be a number of tuples of at least 1, got {burst}"
            ));
        }
        Ok(Throttle {
            rate,
            burst,
            bucket: None,
        })
    }

    /// Tuples per second per task.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The bucket size, in tuples.
    pub fn burst(&self) -> f64 {
        self.burst
    }
}

impl Bolt for Throttle {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_pass_through(DEFAULT_STREAM);
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self
            .bucket
            .get_or_insert_with(|| TokenBucket::full(rate, burst, Instant::now()));
        let wait = bucket.take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        out.emit_anchored(&[&input], input.values().iter().cloned().collect());
        out.ack(&input);
        Ok(())
    }
}

/// A token bucket that lends: [`take`](TokenBucket::take) always takes a token and says how
/// long to wait until it is covered, so waiting callers are served in order and the time slept
/// past a deadline (timers have millisecond steps) is credited, not lost.
#[derive(Clone, Debug)]
struct TokenBucket {
    /// Tokens per second.
    rate: f64,
    /// Most tokens held.
    burst: f64,
    /// Tokens at `at`; below zero while tokens are lent.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl TokenBucket {
    fn full(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token at `now`; returns how long to wait before using it (zero if it was there).
    fn take(&mut self, now: Instant) -> Duration {
        let accrued = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + accrued).min(self.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The `throttle` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "throttle",
            "passes every input on unchanged (same fields, anchored, then acked) at most `rate` tuples per second per task; the excess is held, not dropped, so backpressure reaches upstream — for sinks in front of rate-limited APIs",
            Throttle::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components throttle`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.to_api]
kind = "throttle"
rate = 300                # tuples per second per task; the excess waits (upstream sees backpressure)
burst = 50                # a rested task passes this many at once; default = rate
parallelism = 1           # the limit is per task: 2 tasks pass up to 600/s together
inputs = [{ from = "counts" }]
"#;

impl FromOptions for Throttle {
    type Options = ThrottleOptions;
    fn from_options(options: ThrottleOptions) -> Result<Self, String> {
        Throttle::new(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo_runtime::testing::BoltTester;
    use topo_runtime::{Value, values};

    /// The tested input's fields.
    const FIELDS: [&str; 2] = ["word", "count"];

    /// The throttle with its output declared as [`FIELDS`]: the tester does not resolve
    /// pass-through streams (a topology does: `tests/throttle.rs` runs the bolt in one).
    struct Declared(Throttle);

    impl Bolt for Declared {
        fn declare_outputs(&self, out: &mut OutputDeclarer) {
            out.declare(FIELDS);
        }

        async fn execute(
            &mut self,
            input: Tuple,
            out: &mut OutputCollector<'_>,
        ) -> Result<(), BoxError> {
            self.0.execute(input, out).await
        }
    }

    fn throttle(rate: f64, burst: Option<f64>) -> Throttle {
        Throttle::new(ThrottleOptions { rate, burst }).expect("valid options")
    }

    /// A tester on a paused clock: a wait takes no real time and ends exactly when due.
    fn tester(rate: f64, burst: Option<f64>) -> BoltTester {
        let mut t = BoltTester::full(move || Declared(throttle(rate, burst)), FIELDS);
        t.pause_time();
        t
    }

    /// Executes one input, which must pass unchanged and anchored and be acked.
    fn pass(t: &mut BoltTester, i: i64) {
        let run = t.execute(values!["w", i]);
        assert!(run.acked && !run.failed, "input {i}: {run:?}");
        assert_eq!(run.emitted.len(), 1, "input {i} passed, not dropped");
        assert_eq!(run.emitted[0].values[1], Value::from(i));
    }

    #[test]
    fn passes_each_input_unchanged_anchored_and_acks_it() {
        let mut t = tester(1000.0, None);
        let run = t.execute(values!["cow", 3]);
        assert!(run.acked && !run.failed);
        assert_eq!(run.emitted.len(), 1);
        assert_eq!(run.emitted[0].stream, DEFAULT_STREAM);
        assert_eq!(
            run.emitted[0].values.as_slice(),
            [Value::from("cow"), Value::from(3)]
        );
        assert!(
            run.emitted[0].anchored,
            "the output is anchored to its input"
        );
        assert_eq!(run.errors, 0);
    }

    #[test]
    fn a_rested_task_passes_its_burst_at_once_then_one_tuple_per_interval() {
        // 10 per second, burst 5: five at once, then one every 100 ms.
        let mut t = tester(10.0, Some(5.0));
        let start = t.now_millis();
        for i in 0..5 {
            pass(&mut t, i);
        }
        assert_eq!(t.now_millis() - start, 0, "the burst waits for nothing");
        for n in 1..=20 {
            pass(&mut t, n);
            // Timers fire on whole milliseconds: at most 1 ms late, and never more.
            let at = t.now_millis() - start;
            assert!(
                (n * 100..=n * 100 + 1).contains(&at),
                "tuple {n} after the burst passed at {at} ms"
            );
        }
    }

    #[test]
    fn the_default_burst_is_the_rate_and_the_bucket_refills_only_to_it() {
        assert_eq!(throttle(4.0, None).burst(), 4.0);
        let mut t = tester(4.0, None);
        let start = t.now_millis();
        for i in 0..4 {
            pass(&mut t, i);
        }
        assert_eq!(t.now_millis(), start, "a full bucket of 4");
        // A long rest fills the bucket to its 4 tokens, no more: the 5th tuple waits 250 ms.
        t.advance(Duration::from_secs(60));
        let rested = t.now_millis();
        for i in 0..4 {
            pass(&mut t, i);
        }
        assert_eq!(t.now_millis(), rested);
        pass(&mut t, 5);
        let waited = t.now_millis() - rested;
        assert!((250..=251).contains(&waited), "waited {waited} ms");
    }

    #[test]
    fn a_rate_below_one_spaces_tuples_by_seconds() {
        assert_eq!(throttle(0.5, None).burst(), 1.0, "at least one token");
        let mut t = tester(0.5, None);
        let start = t.now_millis();
        for i in 0..3 {
            pass(&mut t, i);
        }
        let took = t.now_millis() - start;
        assert!(
            (4000..=4001).contains(&took),
            "one tuple every 2 s: {took} ms"
        );
    }

    #[test]
    fn sustained_rate_holds_with_millisecond_timers() {
        // 300/s: 3.33 ms between tuples, which timers round up to 4 ms; the extra time is
        // credited to the bucket, so 3000 tuples past the first take 10 s, not 12 s.
        let mut t = tester(300.0, Some(1.0));
        let start = t.now_millis();
        for i in 0..3001 {
            pass(&mut t, i);
        }
        let took = t.now_millis() - start;
        assert!((10_000..=10_004).contains(&took), "took {took} ms");
    }

    #[test]
    fn bad_options_name_the_option_and_the_value() {
        let err = |rate: f64, burst: Option<f64>| {
            Throttle::new(ThrottleOptions { rate, burst }).expect_err("invalid")
        };
        assert_eq!(
            err(0.0, None),
            "option `rate` must be a number of tuples per second above 0, got 0"
        );
        assert!(err(-3.0, None).contains("option `rate`"));
        assert!(err(f64::NAN, None).contains("option `rate`"));
        assert!(err(f64::INFINITY, None).contains("option `rate`"));
        assert_eq!(
            err(10.0, Some(0.5)),
            "option `burst` must be a number of tuples of at least 1, got 0.5"
        );
        assert!(err(10.0, Some(f64::INFINITY)).contains("option `burst`"));
        let unknown = toml::from_str::<ThrottleOptions>("rate = 3\nburts = 4")
            .expect_err("an unknown option");
        assert!(unknown.to_string().contains("burts"), "{unknown}");
        let missing = toml::from_str::<ThrottleOptions>("burst = 4").expect_err("no rate");
        assert!(missing.to_string().contains("rate"), "{missing}");
        let ok: ThrottleOptions = toml::from_str("rate = 300").expect("an integer rate");
        assert_eq!(ok.rate, 300.0);
    }
}
