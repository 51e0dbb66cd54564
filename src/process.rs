//! The process's own figures on `/metrics`, with the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from `/proc/self`
//! at each scrape. On systems without `/proc` the family is left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Adds the process figures to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

/// Reads `/proc/self` at each scrape.
#[derive(Debug)]
struct ProcessCollector;

/// The figures of this process now.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The limit of open file descriptors (soft), if there is one.
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessFigures {
    /// The figures of this process, or why they cannot be read.
    #[cfg(target_os = "linux")]
    pub fn read() -> Result<ProcessFigures, String> {
        use procfs::WithCurrentSystemInfo;
        use procfs::process::{LimitValue, Process};
        let me = Process::myself().map_err(|e| format!("cannot read /proc/self: {e}"))?;
        let stat = me
            .stat()
            .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
        let ticks = procfs::ticks_per_second() as f64;
        let boot = procfs::boot_time_secs().map_err(|e| format!("cannot read /proc/stat: {e}"))?;
        let max_fds = me
            .limits()
            .ok()
            .and_then(|l| match l.max_open_files.soft_limit {
                LimitValue::Value(n) => Some(n),
                LimitValue::Unlimited => None,
            });
        Ok(ProcessFigures {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss_bytes().get(),
            virtual_bytes: stat.vsize,
            open_fds: me.fd_count().map_or(0, |n| n as u64),
            max_fds,
            threads: stat.num_threads.max(0) as u64,
            start_time_seconds: boot as f64 + stat.starttime as f64 / ticks,
        })
    }

    /// The figures of this process, or why they cannot be read.
    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Result<ProcessFigures, String> {
        Err("process figures are read from /proc, which this system does not have".into())
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(p) = ProcessFigures::read() else {
            return Ok(());
        };
        let mut cpu = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        cpu.encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
        let mut gauges: Vec<(&str, &str, f64)> = vec![
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds as f64,
            ),
            ("process_threads", "Number of OS threads.", p.threads as f64),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds,
            ),
        ];
        if let Some(max) = p.max_fds {
            gauges.push((
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            ));
        }
        for (name, help, value) in gauges {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn figures_of_this_process_are_plausible() {
        let p = ProcessFigures::read().expect("read /proc/self");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
        // stdin, stdout and stderr at least (the test harness may close stdin).
        assert!(p.open_fds >= 2, "{p:?}");
        assert!(p.threads >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0);
        let file = std::fs::File::open("Cargo.toml").expect("open a file");
        let more = ProcessFigures::read().expect("read again");
        assert!(more.open_fds >= 3, "{more:?}");
        drop(file);
    }
}
