//! Change events for the `file` spout: the directories its globs can match are watched through
//! the operating system's notifications (inotify on Linux, by the `notify` crate), so an append or
//! a new file is read at the spout's next call instead of at the next poll.
//!
//! ```text
//!  scan ─► directories to watch: each glob's literal prefix (recursive past it when the glob
//!          │  has more than one level or `**`), and the directory of every matched file
//!          ▼
//!  notify's thread: an event ─► data written to a path  ─► that path, noted
//!                               anything else (created, renamed, removed, overflow) ─► a rescan
//!          │  one atomic flag says "something is noted"
//!          ▼
//!  spout's next_tuple: take what is noted ─► the noted files are read again; a rescan expands
//!                                            the globs (at once, or 10 ms after the last scan)
//! ```
//!
//! Polling stays on: a file system that reports nothing (NFS, some FUSE and container mounts)
//! is still read within `poll_interval`, and so is any event lost.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// How many written paths are noted between two calls before a rescan is asked instead.
const MAX_NOTED: usize = 4096;

/// What the watcher saw since the spout last looked.
#[derive(Debug, Default)]
struct Noted {
    /// Files that were written to.
    written: HashSet<PathBuf>,
    /// Something else happened (a file created, renamed or removed, events lost): expand the
    /// globs again.
    rescan: bool,
    /// Paths removed or renamed: a watch on one of them is gone with it.
    gone: Vec<PathBuf>,
}

/// What the watcher's thread shares with the spout.
#[derive(Debug, Default)]
struct Inbox {
    /// Set when `noted` has something: checked per call without the lock.
    any: AtomicBool,
    noted: Mutex<Noted>,
}

impl Inbox {
    fn note(&self, res: notify::Result<notify::Event>) {
        let mut n = self.noted.lock().unwrap_or_else(|e| e.into_inner());
        match res {
            Ok(ev) if ev.need_rescan() => n.rescan = true,
            Ok(ev) => match ev.kind {
                // Reads, opens and closes change nothing.
                EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => return,
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                    if n.written.len() + ev.paths.len() > MAX_NOTED {
                        n.rescan = true;
                    } else {
                        n.written.extend(ev.paths.iter().map(|p| normal(p)));
                    }
                }
                _ => {
                    n.rescan = true;
                    if matches!(ev.kind, EventKind::Remove(_) | EventKind::Modify(_)) {
                        n.gone.extend(ev.paths);
                    }
                }
            },
            Err(_) => n.rescan = true,
        }
        self.any.store(true, Ordering::Release);
    }
}

/// `path` (as a glob gives it, maybe relative) as the change events name it: absolute, without
/// `.` components. An event names a file by the watched directory made absolute, joined with
/// the file's name (`/cwd/./app.log` for a watch on `.`); comparing the two needs both in this
/// form.
pub(super) fn event_path(path: &Path) -> PathBuf {
    normal(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// `path` without its `.` components (`Path::components` drops those inside a path, not a
/// leading one).
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// What happened since the last look.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// Nothing.
    Nothing,
    /// These files were written to (and nothing else happened).
    Written(HashSet<PathBuf>),
    /// Expand the globs again (files created, renamed or removed, or events lost).
    Rescan,
}

/// A task's watch on the directories of its globs.
pub(super) struct FileWatch {
    watcher: RecommendedWatcher,
    inbox: Arc<Inbox>,
    /// The directories watched, and how.
    watched: HashSet<(PathBuf, bool)>,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch")
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

impl FileWatch {
    /// The directories watched, and whether below them too.
    #[cfg(test)]
    fn watched(&self) -> &HashSet<(PathBuf, bool)> {
        &self.watched
    }

    /// A watch on nothing yet ([`FileWatch::update`] says what to watch).
    pub(super) fn new() -> notify::Result<FileWatch> {
        let inbox = Arc::new(Inbox::default());
        let theirs = inbox.clone();
        let watcher = notify::recommended_watcher(move |res| theirs.note(res))?;
        Ok(FileWatch {
            watcher,
            inbox,
            watched: HashSet::new(),
        })
    }

    /// What happened since the last call; cheap (one atomic load) when nothing did.
    pub(super) fn take(&mut self) -> Seen {
        if !self.inbox.any.swap(false, Ordering::Acquire) {
            return Seen::Nothing;
        }
        let noted =
            std::mem::take(&mut *self.inbox.noted.lock().unwrap_or_else(|e| e.into_inner()));
        for p in &noted.gone {
            // A watch on a removed directory is gone; the next update adds it again if the
            // directory is back.
            self.watched.remove(&(p.clone(), false));
            self.watched.remove(&(p.clone(), true));
        }
        if noted.rescan {
            Seen::Rescan
        } else if noted.written.is_empty() {
            Seen::Nothing
        } else {
            Seen::Written(noted.written)
        }
    }

    /// Watches the directories `patterns` can match and those of `files` (found by a scan); stops
    /// watching the others. Returns the directories that could not be watched, with why.
    pub(super) fn update<'a>(
        &mut self,
        patterns: &[String],
        files: impl IntoIterator<Item = &'a Path>,
    ) -> Vec<(PathBuf, notify::Error)> {
        let mut want: HashSet<(PathBuf, bool)> = patterns.iter().map(|p| root(p)).collect();
        // A directory below a recursive watch is covered by it (and a second watch on it would
        // be the same inotify watch: taking it away would end the recursive one's there too).
        let recursive: Vec<PathBuf> = want
            .iter()
            .filter(|(_, r)| *r)
            .map(|(d, _)| d.clone())
            .collect();
        for f in files {
            if let Some(dir) = f.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir.to_path_buf()
                };
                if !recursive.iter().any(|r| dir.starts_with(r)) {
                    want.insert((dir, false));
                }
            }
        }
        let stale: Vec<_> = self.watched.difference(&want).cloned().collect();
        for w in stale {
            // A directory already gone took its watch with it.
            let _ = self.watcher.unwatch(&w.0);
            self.watched.remove(&w);
        }
        let mut failed = Vec::new();
        for (dir, recursive) in want {
            if self.watched.contains(&(dir.clone(), recursive)) {
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match self.watcher.watch(&dir, mode) {
                Ok(()) => {
                    self.watched.insert((dir, recursive));
                }
                Err(e) => failed.push((dir, e)),
            }
        }
        failed
    }
}

/// The directory to watch for a glob, and whether below it too: the glob's literal prefix
/// (its nearest existing ancestor while it does not exist), recursive when the part after the
/// prefix has more than one level or a `**`. A pattern without wildcards names a directory (its
/// files) or a file (its directory is watched).
fn root(pattern: &str) -> (PathBuf, bool) {
    let path = Path::new(pattern);
    let parts: Vec<Component<'_>> = path.components().collect();
    let wild = parts.iter().position(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.contains(['*', '?', '[']))
    });
    let (mut base, recursive) = match wild {
        Some(i) => {
            let base: PathBuf = parts[..i].iter().collect();
            let rest = &parts[i..];
            (
                base,
                rest.len() > 1 || rest.iter().any(|c| c.as_os_str() == "**"),
            )
        }
        None if path.is_dir() => (path.to_path_buf(), false),
        None => (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            false,
        ),
    };
    if base.as_os_str().is_empty() {
        base = PathBuf::from(".");
    }
    // A directory not there yet: its creation shows in the nearest ancestor that is.
    let mut dir = base.as_path();
    while !dir.is_dir() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p,
            _ => return (PathBuf::from("."), false),
        }
    }
    if dir != base {
        return (dir.to_path_buf(), false);
    }
    (base, recursive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    // Guards which directory a glob watches: the literal prefix, recursive only past one level
    // or with `**`; a missing prefix falls back to its nearest existing ancestor.
    #[test]
    fn a_glob_watches_its_literal_prefix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir(d.join("logs")).expect("mkdir");
        std::fs::write(d.join("logs/app.log"), "x\n").expect("write");
        let s = |p: &str| d.join(p).to_string_lossy().into_owned();
        assert_eq!(root(&s("logs/*.log")), (d.join("logs"), false));
        assert_eq!(root(&s("logs/**/*.log")), (d.join("logs"), true));
        assert_eq!(root(&s("logs/*/app.log")), (d.join("logs"), true));
        assert_eq!(root(&s("logs")), (d.join("logs"), false));
        assert_eq!(root(&s("logs/app.log")), (d.join("logs"), false));
        assert_eq!(root(&s("missing/deeper/*.log")), (d.to_path_buf(), false));
        assert_eq!(root("*.log"), (PathBuf::from("."), false));
    }

    fn wait_for(w: &mut FileWatch, what: &str, mut ok: impl FnMut(&Seen) -> bool) {
        let start = Instant::now();
        loop {
            let seen = w.take();
            if ok(&seen) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no event for {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    // Guards the set of watches: a file's directory is watched unless a recursive watch covers
    // it, and a directory no longer wanted is let go.
    #[test]
    fn a_recursive_watch_covers_the_directories_below_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("deep/a")).expect("mkdir");
        std::fs::create_dir_all(d.join("flat")).expect("mkdir");
        let deep_file = d.join("deep/a/x.log");
        let flat_file = d.join("flat/y.log");
        let s = |p: &str| d.join(p).to_string_lossy().into_owned();
        let mut w = FileWatch::new().expect("a watcher");
        let patterns = [s("deep/**/*.log"), s("flat/*.log")];
        assert!(
            w.update(&patterns, [deep_file.as_path(), flat_file.as_path()])
                .is_empty()
        );
        let want: HashSet<(PathBuf, bool)> =
            [(d.join("deep"), true), (d.join("flat"), false)].into();
        assert_eq!(w.watched(), &want);
        // `flat` no longer matched: its watch goes.
        assert!(w.update(&patterns[..1], [deep_file.as_path()]).is_empty());
        let want: HashSet<(PathBuf, bool)> = [(d.join("deep"), true)].into();
        assert_eq!(w.watched(), &want);
    }

    // Guards the events: a write to a watched file is reported as that file written; a new
    // file asks for a rescan.
    #[test]
    fn writes_and_new_files_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("app.log");
        std::fs::write(&log, "a\n").expect("write");
        let mut w = FileWatch::new().expect("a watcher");
        let pattern = dir.path().join("*.log").to_string_lossy().into_owned();
        assert!(w.update(&[pattern], [log.as_path()]).is_empty());
        assert_eq!(w.take(), Seen::Nothing);

        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        std::io::Write::write_all(&mut f, b"b\n").expect("append");
        wait_for(&mut w, "the append", |s| match s {
            Seen::Written(p) => p.contains(&log),
            _ => false,
        });

        std::fs::write(dir.path().join("new.log"), "c\n").expect("write");
        wait_for(&mut w, "the new file", |s| *s == Seen::Rescan);
    }
}
