//! Retries and back-off, one set of options for every connector: a sink's failed writes, a
//! source's reconnections and failed API calls, a Kafka record's replays.
//!
//! ```text
//!  failure ──► wait `backoff` ──► try again ──► failure ──► wait 2 × backoff ... ≤ `max_backoff`
//!                                    │                          │ `attempts` tries in all
//!                                    ▼ success: wait reset      ▼ then give up (0 = never)
//! ```
//!
//! Written as `retry = { ... }` (sinks, `kinesis`, `kafka`) or `reconnect = { ... }` (`socket`,
//! `mqtt`) in topology files.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

/// The tries of a sink's write when `attempts` is unset.
pub const SINK_ATTEMPTS: u32 = 5;

/// How a connector retries what failed: waits doubling from `backoff` up to `max_backoff`, and
/// how many tries before it gives up.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryOptions {
    /// The first wait after a failure; doubles after each failure in a row, up to
    /// `max_backoff`.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub backoff: Duration,
    /// The longest wait between tries.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub max_backoff: Duration,
    /// Tries (of a write, a connection, a call, a record's delivery) after which the connector
    /// gives up; 0 = never give up. Unset = the connector's default: 5 for the sinks (which
    /// accept no 0), 0 (never) for the sources.
    pub attempts: Option<u32>,
    /// The same limit counted in retries after the first failure, as the `kafka` spout's
    /// `retry` wrote it: `max_retries = n` is `attempts = n + 1`, 0 = never give up. Give one of
    /// `attempts` and `max_retries`.
    pub max_retries: Option<u32>,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            attempts: None,
            max_retries: None,
        }
    }
}

impl RetryOptions {
    /// The number of tries after which to give up (0 = never): `attempts`, else `max_retries
    /// + 1` (0 stays 0), else `default`.
    pub fn attempts_or(&self, default: u32) -> u32 {
        match (self.attempts, self.max_retries) {
            (Some(n), _) => n,
            (None, Some(0)) => 0,
            (None, Some(r)) => r.saturating_add(1),
            (None, None) => default,
        }
    }

    /// Whether `failures` in a row reach the limit (`attempts_or(default)`; never when 0).
    pub fn exhausted(&self, failures: u32, default: u32) -> bool {
        let attempts = self.attempts_or(default);
        attempts != 0 && failures >= attempts
    }

    /// The wait after the one of `current`: twice as long, at most `max_backoff`.
    pub fn next_backoff(&self, current: Duration) -> Duration {
        (current * 2).min(self.max_backoff)
    }

    /// Checks that the limit is given once; the error names the option, under the table `key`
    /// (`retry`, `reconnect`).
    pub fn check(&self, key: &str) -> Result<(), String> {
        if self.attempts.is_some() && self.max_retries.is_some() {
            return Err(format!(
                "options `{key}.attempts` and `{key}.max_retries` say the same; give one"
            ));
        }
        Ok(())
    }

    /// [`check`](RetryOptions::check), for a source's reconnections: `backoff` is more than
    /// zero and `max_backoff` at least `backoff`.
    pub fn check_reconnect(&self, key: &str) -> Result<(), String> {
        self.check(key)?;
        if self.backoff.is_zero() {
            return Err(format!(
                "option `{key}.backoff` = \"0s\": expected more than zero"
            ));
        }
        if self.max_backoff < self.backoff {
            return Err(format!(
                "option `{key}.max_backoff` = {:?}: expected at least `{key}.backoff` ({:?})",
                humantime::format_duration(self.max_backoff).to_string(),
                humantime::format_duration(self.backoff).to_string()
            ));
        }
        Ok(())
    }

    /// [`check`](RetryOptions::check), for a sink: it gives up at some point (its held inputs
    /// are failed, and replayed, in the end), and `backoff` does not exceed `max_backoff`.
    /// Unset, the sinks try 5 times ([`SINK_ATTEMPTS`]).
    pub fn check_sink(&self, key: &str) -> Result<(), String> {
        self.check(key)?;
        if self.attempts_or(SINK_ATTEMPTS) == 0 {
            return Err(format!("option `{key}.attempts` must be at least 1"));
        }
        if self.backoff > self.max_backoff {
            return Err(format!(
                "option `{key}.backoff` ({}) must not exceed `{key}.max_backoff` ({})",
                humantime::format_duration(self.backoff),
                humantime::format_duration(self.max_backoff)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_retries_counts_retries_and_attempts_counts_tries() {
        let r = |attempts, max_retries| RetryOptions {
            attempts,
            max_retries,
            ..RetryOptions::default()
        };
        assert_eq!(r(None, None).attempts_or(5), 5);
        assert_eq!(r(Some(3), None).attempts_or(5), 3);
        assert_eq!(r(None, Some(5)).attempts_or(0), 6);
        assert_eq!(r(None, Some(0)).attempts_or(5), 0);
        assert!(r(Some(1), Some(1)).check("retry").is_err());
        assert!(r(Some(0), None).check_sink("retry").is_err());
        assert!(r(None, Some(0)).check_sink("retry").is_err());
        assert!(r(None, None).check_sink("retry").is_ok());
        assert!(r(Some(0), None).check("reconnect").is_ok());
    }

    #[test]
    fn the_wait_doubles_up_to_max_backoff() {
        let r = RetryOptions {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..RetryOptions::default()
        };
        assert_eq!(r.next_backoff(r.backoff), Duration::from_millis(200));
        assert_eq!(
            r.next_backoff(Duration::from_millis(200)),
            Duration::from_millis(300)
        );
    }
}
