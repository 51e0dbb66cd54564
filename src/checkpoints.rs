//! `topo checkpoints list|show`: the checkpoints a topology's runs left, read from its
//! checkpoint directory (`[config] checkpoint_dir`, else `$TOPO_STATE_DIR/<topology>/checkpoints`).
//!
//! ```text
//!  topology file ─► name + [config] ─► checkpoint directory ─► chk-<id>.json manifests
//!                                                              └─► list: id, time, duration, size
//!                                                              └─► show: per component and task
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use topo_runtime::Topology;
use topo_runtime::checkpoint::manifest::{Checkpoints, Manifest};
use topo_runtime::checkpoint::storage::LocalDir;

/// A byte count for people: `512 B`, `25.9 KiB`, `3.1 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn when(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn store(topology: &Topology) -> (Checkpoints, String) {
    let dir = topology.config().checkpoint_dir_for(topology.name());
    let shown = dir.display().to_string();
    (Checkpoints::new(Arc::new(LocalDir::new(dir))), shown)
}

/// The table of `topo checkpoints list`, newest last.
pub fn list_text(topology: &Topology) -> Result<String, String> {
    let (store, dir) = store(topology);
    let ids = store
        .ids()
        .map_err(|e| format!("cannot list checkpoints in {dir}: {e}"))?;
    let mut out = String::new();
    if ids.is_empty() {
        let _ = writeln!(
            out,
            "no checkpoints of {} in {dir} (a run takes them with guarantee = \"exactly_once\" or a stateful component)",
            topology.name()
        );
        return Ok(out);
    }
    let _ = writeln!(out, "checkpoints of {} in {dir}", topology.name());
    let _ = writeln!(
        out,
        "{:>10}  {:<24}  {:>9}  {:>10}  {:<13}  kind",
        "id", "completed", "took", "written", "guarantee"
    );
    for id in ids {
        match store.load(id) {
            Ok(m) => {
                let _ = writeln!(
                    out,
                    "{:>10}  {:<24}  {:>7} ms  {:>10}  {:<13}  {}",
                    m.id,
                    when(m.completed_at_ms),
                    m.duration_ms,
                    bytes(m.bytes()),
                    m.guarantee.name(),
                    if m.savepoint { "savepoint" } else { "periodic" }
                );
            }
            Err(e) => {
                let _ = writeln!(out, "{id:>10}  unreadable: {e}");
            }
        }
    }
    Ok(out)
}

/// The description of one checkpoint: `topo checkpoints show`.
pub fn show_text(m: &Manifest, dir: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "checkpoint {} of {} ({}), completed {}, took {} ms, {} written, {} key groups{}",
        m.id,
        m.topology,
        m.guarantee.name(),
        when(m.completed_at_ms),
        m.duration_ms,
        bytes(m.bytes()),
        m.max_parallelism,
        if m.savepoint { ", a savepoint" } else { "" }
    );
    let _ = writeln!(out, "in {dir}");
    for (id, c) in &m.components {
        let parts: usize = c.tasks.iter().map(|t| t.parts.len()).sum();
        if parts == 0 {
            let _ = writeln!(out, "{id} ({} tasks): no state", c.parallelism);
            continue;
        }
        let _ = writeln!(out, "{id} ({} tasks):", c.parallelism);
        for (i, t) in c.tasks.iter().enumerate() {
            for (name, p) in &t.parts {
                let kind = match p.kind {
                    topo_runtime::checkpoint::manifest::PartKind::Value => "value",
                    topo_runtime::checkpoint::manifest::PartKind::Keyed => "keyed",
                };
                let _ = writeln!(
                    out,
                    "  [{i}] {name}: {kind}, {} written, {} file{}: {}",
                    bytes(p.bytes),
                    p.files.len(),
                    if p.files.len() == 1 { "" } else { "s" },
                    p.files.join(", ")
                );
            }
        }
    }
    out
}

/// `topo checkpoints list`.
pub fn list(topology: &Topology) -> ExitCode {
    match list_text(topology) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `topo checkpoints show ID` (`latest` for the newest); `json` prints the manifest itself.
pub fn show(topology: &Topology, id: &str, json: bool) -> ExitCode {
    let (store, dir) = store(topology);
    let id = if id == "latest" {
        match store.ids().map(|ids| ids.last().copied()) {
            Ok(Some(id)) => id,
            Ok(None) => {
                eprintln!("error: no checkpoints of {} in {dir}", topology.name());
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("error: cannot list checkpoints in {dir}: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        match id.parse() {
            Ok(id) => id,
            Err(_) => {
                eprintln!("error: checkpoint id: expected a number or \"latest\", got {id:?}");
                return ExitCode::from(2);
            }
        }
    };
    match store.load(id) {
        Ok(m) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&m).unwrap_or_else(|e| e.to_string())
            );
            ExitCode::SUCCESS
        }
        Ok(m) => {
            print!("{}", show_text(&m, &dir));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: checkpoint {id}: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(26_521), "25.9 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 100_000), "3.1 MiB");
    }
}
