//! The `topo` binary's memory allocator: mimalloc, set to return freed memory at once.
//!
//! Tuples are built on one thread and dropped on another (a word emitted by a `split` task is
//! freed by a `count` task). mimalloc frees across threads without the locks and list walks of
//! the system allocator; on the word count it spends a third of the CPU time the system
//! allocator did (BENCHMARKS.md "The user path").
//!
//! Its defaults keep memory the process freed for a second, and commit an arena's memory
//! eagerly, which with transparent huge pages makes whole 2 MiB pages resident: the word count's
//! peak RSS went from 70 MB to up to 150 MB. Purging at once and committing on demand brings it
//! back to the system allocator's (about 80 MB) at no measurable cost in throughput. (A purge
//! delay of 2–10 ms saved 15–35% of the page faults but raised the peak by 5–15 MB, past 100 MB
//! in some runs with acking, for no throughput that rose above the noise.) The options
//! are set in a constructor, before the first allocation creates an arena, unless the environment
//! sets them (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ARENA_EAGER_COMMIT`; `MIMALLOC_VERBOSE=1` prints
//! every option at start).
//!
//! A program embedding topo through the Rust API picks its own allocator; the same two lines
//! (`#[global_allocator] static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;`) give it
//! this speed.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The options, set by an ELF constructor (on other systems mimalloc keeps its defaults).
#[cfg(target_os = "linux")]
mod options {
    /// mimalloc 3's option numbers (`mi_option_e` in its `include/mimalloc.h`; the constants of
    /// `libmimalloc-sys` follow mimalloc 2's numbering).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

    extern "C" fn set_options() {
        for (option, variable) in [
            (ARENA_EAGER_COMMIT, c"MIMALLOC_ARENA_EAGER_COMMIT"),
            (PURGE_DELAY, c"MIMALLOC_PURGE_DELAY"),
        ] {
            // SAFETY: `getenv` reads the environment without allocating; `mi_option_set` stores
            // into mimalloc's option table. Before `main`, no other thread runs.
            unsafe {
                if libc::getenv(variable.as_ptr()).is_null() {
                    libmimalloc_sys::mi_option_set(option, 0);
                }
            }
        }
    }

    /// Runs [`set_options`] as the process starts, before `main` and the first allocation.
    #[used]
    #[unsafe(link_section = ".init_array.00099")]
    static SET_OPTIONS: extern "C" fn() = set_options;
}
