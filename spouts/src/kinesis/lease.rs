//! Leases on shards among the workers that share a state directory: the spout tasks of one
//! process, or of several processes running the same topology on one host (or on a shared file
//! system whose locks work, such as a local disk; not NFS without lock support).
//!
//! ```text
//!  <state_dir>/worker-<random>.lock   one per live worker, locked while it lives
//!  <state_dir>/shard-<id>.lock        locked by the worker that reads the shard
//!
//!  every refresh, each worker:  live = workers whose file is locked (stale files removed)
//!                               fair = ceil(readable shards / live)
//!                               holds < fair: try to lock free shards
//!                               holds > fair: hand the extra shards back (drained first)
//! ```
//!
//! Locks are `flock(2)` locks held through open files, so the kernel drops them when their
//! holder exits, however it exits (`kill -9` included): another worker takes the shards over at
//! its next refresh. A lock is taken before the shard's checkpoint is read and released only
//! after the holder's last checkpoint of it is written, so two workers never read one shard at
//! once and a new holder resumes where the old one stopped (the Kinesis Client Library's lease
//! model, with the file system in place of its DynamoDB table).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// This worker's presence: a locked `worker-*.lock` file, removed when dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    path: PathBuf,
    _file: File,
}

impl Worker {
    /// Registers a worker in `dir`.
    pub(crate) fn register(dir: &Path) -> io::Result<Worker> {
        let path = dir.join(format!("worker-{:016x}.lock", fastrand::u64(..)));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Worker { path, _file: file }),
            Err(TryLockError::WouldBlock) => Err(io::Error::other(format!(
                "{} is locked by another worker",
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// The workers alive in `dir` (this one included); files of workers that are gone are
    /// removed.
    pub(crate) fn live_workers(&self, dir: &Path) -> io::Result<usize> {
        let mut live = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let is_worker = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("worker-") && n.ends_with(".lock"));
            if !is_worker {
                continue;
            }
            if path == self.path {
                live += 1;
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue; // removed meanwhile
            };
            match file.try_lock() {
                Err(TryLockError::WouldBlock) => live += 1,
                // Nobody holds it: its worker is gone.
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(TryLockError::Error(_)) => {}
            }
        }
        Ok(live)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Removed while still locked, so nobody takes it for a stale file of a live worker.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A held lease on one shard; dropping it hands the shard back.
#[derive(Debug)]
pub(crate) struct Lease {
    _file: File,
}

/// Takes the lease whose lock file is `path` (created if missing) if no worker holds it.
pub(crate) fn try_take(path: &Path) -> io::Result<Option<Lease>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Lease { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// How many shards each of `workers` should read: `shards` spread evenly, rounded up.
pub(crate) fn fair_share(shards: usize, workers: usize) -> usize {
    shards.div_ceil(workers.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_by_one_worker_until_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (zero, one) = (dir.path().join("s0.lock"), dir.path().join("s1.lock"));
        let a = try_take(&zero).expect("io").expect("free");
        assert!(try_take(&zero).expect("io").is_none(), "held by a");
        assert!(try_take(&one).expect("io").is_some());
        drop(a);
        assert!(try_take(&zero).expect("io").is_some(), "handed back");
    }

    #[test]
    fn live_workers_are_counted_and_stale_files_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = Worker::register(dir.path()).expect("register");
        let b = Worker::register(dir.path()).expect("register");
        assert_eq!(a.live_workers(dir.path()).expect("count"), 2);
        // A worker that died without removing its file: present, but unlocked.
        let stale = dir.path().join("worker-00000000000000ff.lock");
        std::fs::write(&stale, b"").expect("write");
        assert_eq!(a.live_workers(dir.path()).expect("count"), 2);
        assert!(!stale.exists(), "the stale file is removed");
        drop(b);
        assert_eq!(a.live_workers(dir.path()).expect("count"), 1);
    }

    #[test]
    fn the_fair_share_rounds_up() {
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(3, 2), 2);
        assert_eq!(fair_share(2, 3), 1);
        assert_eq!(fair_share(0, 2), 0);
        assert_eq!(fair_share(5, 0), 5);
    }
}
