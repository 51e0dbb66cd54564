//! The `file` spout as a built-in kind (see [`topo_spouts::file`]); options checked when the
//! topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{FileOptions, FileSpout};

use super::{Checked, TryFromOptions};

impl TryFromOptions<FileOptions> for FileSpout {
    fn try_from_options(options: FileOptions) -> Result<Self, String> {
        FileSpout::new(options)
    }
}

/// Registers `file` (a spout; the file sink is the bolt kind of the same name).
pub(super) fn register(r: &mut Registry) {
    let mut docs = vec![
        OptionDoc::new(
            "paths",
            "list of globs",
            "",
            "files to read (required): `*`, `?`, `[a-z]`, `**`; a directory means its files; new matches are picked up at each poll",
        ),
        OptionDoc::new("exclude", "list of globs", "[]", "paths not to read"),
        OptionDoc::new(
            "start_at",
            "beginning | end",
            "beginning",
            "where a file found at start-up without a checkpoint begins; files found later begin at their start",
        ),
        OptionDoc::new(
            "poll_interval",
            "duration",
            "\"250ms\"",
            "how often the globs are expanded and files checked for new lines, rotation and truncation",
        ),
        OptionDoc::new(
            "checkpoint_interval",
            "duration",
            "\"1s\"",
            "how often the acked offset of each file is written (and at stop); a crash re-reads at most the lines acked since",
        ),
        OptionDoc::new(
            "state_dir",
            "path",
            "$TOPO_STATE_DIR/<topology>/<component>",
            "where checkpoints are kept; TOPO_STATE_DIR defaults to .topo/state under the working directory",
        ),
        OptionDoc::new(
            "include_path",
            "bool",
            "false",
            "add the fields `path` (the file's path) and `offset` (byte offset of the line's start)",
        ),
        OptionDoc::new(
            "until_eof",
            "bool",
            "false",
            "read the files matching at start-up to their end, then end once every line is acked (`topo run --until-idle` stops)",
        ),
    ];
    docs.extend(super::spouts_io::line_docs());
    r.register_spout::<Checked<FileSpout, FileOptions>, FileSpout>(
        "file",
        "tails files through globs (appends, rotation, truncation, new files); per-file checkpoints of the acked lines, so a restart resumes without loss; bad lines to `error`",
        docs,
        |c: &Checked<FileSpout, FileOptions>| c.0.clone(),
    );
}
