//! The one-line status of a running topology: per component its rate since the last line, its
//! acked / failed / timed-out counts (spouts), pending messages and queue fill.
//!
//! ```text
//! 12s sentences 98.1k/s acked 1.2M failed 0 timeout 0 pending 1000 | split 98.0k/s q 3% | count 640k/s q 0%
//! ```

use std::time::Duration;

use topo_runtime::MetricsSnapshot;
use topo_runtime::Role;

/// A count in short form: `999`, `12.3k`, `4.56M`.
pub fn short(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// The status line for `now`, with rates over the time since `before` (or since start).
pub fn line(now: &MetricsSnapshot, before: Option<&MetricsSnapshot>) -> String {
    let elapsed = now
        .uptime
        .saturating_sub(before.map_or(Duration::ZERO, |b| b.uptime));
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut parts = Vec::new();
    for c in &now.components {
        // The runtime's acker (no role) has no line of its own.
        let Some(role) = c.role else {
            continue;
        };
        let prev = before.and_then(|b| b.component(&c.id));
        let (count, prev_count) = match role {
            Role::Spout => (c.emitted(), prev.map_or(0, |p| p.emitted())),
            Role::Bolt => (c.executed(), prev.map_or(0, |p| p.executed())),
        };
        let rate = count.saturating_sub(prev_count) as f64 / secs;
        let mut s = format!("{} {}/s", c.id, short(rate));
        match role {
            Role::Spout => s.push_str(&format!(
                " acked {} failed {} timeout {} pending {}",
                short(c.acked() as f64),
                short(c.failed() as f64),
                short(c.timed_out() as f64),
                c.pending()
            )),
            Role::Bolt => {
                let capacity: usize = c.tasks.iter().map(|t| t.queue_capacity).sum();
                let fill = 100.0 * c.queue_len() as f64 / capacity.max(1) as f64;
                s.push_str(&format!(" q {fill:.0}%"));
                if c.failed() > 0 {
                    s.push_str(&format!(" failed {}", short(c.failed() as f64)));
                }
            }
        }
        if c.errors() > 0 {
            s.push_str(&format!(" errors {}", c.errors()));
        }
        parts.push(s);
    }
    if let Some(cp) = &now.checkpoints {
        parts.push(checkpoint_part(cp));
    }
    format!("{:.0}s {}", now.uptime.as_secs_f64(), parts.join(" | "))
}

/// The checkpoints of a whole run, for its end: `checkpoints: 12 completed, 0 failed, longest
/// 180 ms, longest pause 35 ms, last 42 (18.5 KiB)`.
pub fn checkpoint_summary(cp: &topo_runtime::CheckpointSnapshot) -> String {
    let mut s = format!(
        "checkpoints: {} completed, {} failed, longest {} ms, longest pause {:.1} ms",
        cp.completed,
        cp.failed,
        cp.max_duration.as_millis(),
        cp.max_pause.as_secs_f64() * 1e3
    );
    if let Some(id) = cp.last_id {
        s.push_str(&format!(
            ", last {id} ({})",
            crate::checkpoints::bytes(cp.last_bytes)
        ));
    }
    if let Some(id) = cp.restored_id {
        s.push_str(&format!(", resumed from {id}"));
    }
    s
}

/// `checkpoint 42 (3 ms, 18.5 KiB, 0.4s ago)`, with failures when there were any.
fn checkpoint_part(cp: &topo_runtime::CheckpointSnapshot) -> String {
    let mut s = match cp.last_id {
        Some(id) => format!(
            "checkpoint {id} ({} ms, {}, {:.1}s ago)",
            cp.last_duration.as_millis(),
            crate::checkpoints::bytes(cp.last_bytes),
            cp.since_last.unwrap_or_default().as_secs_f64()
        ),
        None => "checkpoint none yet".to_string(),
    };
    if cp.failed > 0 {
        s.push_str(&format!(" failed {}", cp.failed));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_counts() {
        assert_eq!(short(999.0), "999");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(4_560_000.0), "4.56M");
    }
}
