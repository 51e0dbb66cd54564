//! The word-count corpus shared by the word-count benches (`benches/user_path.rs` of `topo`,
//! `runtime/benches/word_count.rs` of `topo-runtime`, which includes this file with
//! `#[path = "../../benches/corpus.rs"] mod corpus;`): the plain-text files under
//! [`SOURCES`], concatenated in sorted path order, cached in the cargo target directory as
//! `wordcount-corpus-<mb>mb.txt`.

use std::path::{Path, PathBuf};

/// Where the corpus of `mb` MiB is cached: the cargo target directory.
pub fn corpus_path(mb: usize) -> PathBuf {
    let name = format!("wordcount-corpus-{mb}mb.txt");
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join(name);
    }
    // A bench binary lives in `<target>/<profile>/deps/`.
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
        .join(name)
}

/// The directories the corpus is made of.
pub const SOURCES: [&str; 2] = ["/usr/share/common-licenses", "/usr/share/doc"];

/// Extensions of compressed files, which are left out.
pub const COMPRESSED: [&str; 14] = [
    "gz", "tgz", "bz2", "xz", "txz", "zst", "lz", "lz4", "lzma", "z", "zip", "br", "7z", "jar",
];

/// Regular files under `dir`, in sorted path order, symlinks not followed.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, out);
        } else if meta.is_file() {
            out.push(p);
        }
    }
}

/// Concatenates the plain-text files of [`SOURCES`] (valid UTF-8, no NUL byte, not compressed) in
/// sorted path order, stopping at the first file boundary at or past `target` bytes; if all of them
/// together are shorter, repeats the concatenation until it is at least `target` bytes.
pub fn build_corpus(target: usize) -> String {
    let mut files = Vec::new();
    for dir in SOURCES {
        walk(Path::new(dir), &mut files);
    }
    let mut unit = String::new();
    let mut used = 0;
    for f in &files {
        if unit.len() >= target {
            break;
        }
        let compressed = f
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| COMPRESSED.contains(&e.to_ascii_lowercase().as_str()));
        if compressed {
            continue;
        }
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        if bytes.is_empty() || bytes.contains(&0) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        unit.push_str(text);
        if !text.ends_with('\n') {
            unit.push('\n');
        }
        used += 1;
    }
    assert!(
        !unit.is_empty(),
        "no plain-text file found under {SOURCES:?}"
    );
    eprintln!(
        "corpus: concatenated {used} plain-text files ({} files seen): {} bytes",
        files.len(),
        unit.len()
    );
    let mut corpus = String::with_capacity(target + unit.len());
    while corpus.len() < target {
        corpus.push_str(&unit);
    }
    corpus
}

/// The corpus of `mb` MiB, read from the cache ([`corpus_path`]) or built and cached; with the
/// cached file, or `None` when it could not be written.
pub fn load_or_build(mb: usize) -> (String, Option<PathBuf>) {
    let path = corpus_path(mb);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.len() >= mb << 20 => {
            eprintln!("corpus: {} (cached)", path.display());
            (t, Some(path))
        }
        _ => {
            let t = build_corpus(mb << 20);
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            match std::fs::write(&tmp, &t).and_then(|()| std::fs::rename(&tmp, &path)) {
                Ok(()) => {
                    eprintln!("corpus: {} (built and cached)", path.display());
                    (t, Some(path))
                }
                Err(e) => {
                    eprintln!("corpus: could not cache at {}: {e}", path.display());
                    let _ = std::fs::remove_file(&tmp);
                    (t, None)
                }
            }
        }
    }
}
