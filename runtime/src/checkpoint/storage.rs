//! Where checkpoint files live: [`CheckpointStorage`], a small put/get/list/delete interface, and
//! [`LocalDir`], its implementation on a local directory. Another backend (an object store, for
//! several machines) implements the same four calls.

use std::io;
use std::path::{Path, PathBuf};

/// A flat namespace of immutable files, written whole. Names use `/` to separate parts
/// (`data/count.0.7.counts`); a backend maps them as it likes.
pub trait CheckpointStorage: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `name`, atomically and durably: when this returns `Ok`, a crash
    /// leaves either the whole file or none (never a part), and it survives a power loss.
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// The bytes stored under `name`.
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Every name under `prefix` (`""` for all), in no particular order.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Removes `name`; a missing name is not an error.
    fn delete(&self, name: &str) -> io::Result<()>;
    /// Where `name` is, for messages (a path, a URL).
    fn locate(&self, name: &str) -> String;
}

/// Checkpoint files in a local directory. Each file is written to a temporary name, flushed to
/// disk, renamed into place, and its directory flushed (the file spout's recipe).
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A store rooted at `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> LocalDir {
        LocalDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Flushes a directory's entries to disk (a rename is durable only then).
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl CheckpointStorage for LocalDir {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let path = self.path(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|f| f.to_str()).unwrap_or("file")
        ));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        sync_dir(&dir)
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(name))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let hidden = rel
                    .file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with('.'));
                if !hidden && name.starts_with(prefix) {
                    out.push(name);
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn locate(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = std::env::temp_dir().join(format!("topo-localdir-{}", std::process::id()));
        let s = LocalDir::new(&dir);
        s.put("data/a.bin", b"one").expect("put");
        s.put("chk-1.json", b"{}").expect("put");
        s.put("data/a.bin", b"two").expect("overwrite");
        assert_eq!(s.get("data/a.bin").expect("get"), b"two");
        let mut all = s.list("").expect("list");
        all.sort();
        assert_eq!(all, ["chk-1.json", "data/a.bin"]);
        assert_eq!(s.list("data/").expect("list"), ["data/a.bin"]);
        s.delete("data/a.bin").expect("delete");
        s.delete("data/a.bin").expect("a missing file is no error");
        assert_eq!(s.list("data/").expect("list"), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).ok();
    }
}
