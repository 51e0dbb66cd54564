//! The machine's CPU figures the word-count benches take (`benches/user_path.rs` of `topo`,
//! `runtime/benches/word_count.rs` of `topo-runtime`, which includes this file with
//! `#[path = "../../benches/machine.rs"] mod machine;`): the CPU every process used, to flag a
//! run another process disturbed, and a wait for a quiet machine before a run.

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/stat` (`USER_HZ`).
pub const TICKS_PER_S: f64 = 100.0;

/// CPU time used by every process of the machine (`/proc/stat`), in clock ticks.
pub fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal ...
    cpu.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// Waits (up to two minutes) until the machine's CPUs are at least 90% idle over half a second.
pub fn wait_until_idle() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let start = Instant::now();
    loop {
        let before = machine_busy_ticks();
        std::thread::sleep(Duration::from_millis(500));
        let busy = machine_busy_ticks().saturating_sub(before) as f64 / TICKS_PER_S / 0.5 / cpus;
        if busy < 0.10 || start.elapsed() > Duration::from_secs(120) {
            if start.elapsed() > Duration::from_secs(1) {
                eprintln!(
                    "waited {:.0} s for the machine to be idle (now {:.0}% busy)",
                    start.elapsed().as_secs_f64(),
                    busy * 100.0
                );
            }
            return;
        }
    }
}
