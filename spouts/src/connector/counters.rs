//! The counters pattern of the connectors: a struct of atomic counters shared by every task of
//! a connector (and its clones), read through one getter per counter, declared once with
//! `counters!`.
//!
//! ```text
//!  tasks ──fetch_add(1, Relaxed)──► XCounters { records, malformed, ... } ◄──getter── tests, logs
//! ```
//!
//! Counting stays what it was by hand: a relaxed atomic add on a field; the macro only writes
//! the struct, its getters and [`snapshot`](#snapshot).

/// Declares a counters struct: each listed counter becomes an `AtomicU64` field (visible to the
/// crate, which adds to it with `fetch_add(1, Relaxed)`) and a public getter carrying the
/// counter's doc comment; `snapshot()` lists every counter by name. Fields that are not counters
/// (a warning limit, an error log) follow a `;`, with their own docs; the struct derives `Debug`
/// and `Default`.
///
/// ```text
/// counters! {
///     /// Counts shared by every task of a spout.
///     pub struct MyCounters {
///         /// Records read.
///         records,
///         ;
///         /// One warning a second at most.
///         warn: WarnLimit,
///     }
/// }
/// ```
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$doc:meta])* $counter:ident, )*
            $( ; $( $(#[$xdoc:meta])* $extra:ident : $xty:ty, )* )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name {
            $( pub(crate) $counter: ::std::sync::atomic::AtomicU64, )*
            $($( $(#[$xdoc])* pub(crate) $extra: $xty, )*)?
        }

        impl $name {
            $(
                $(#[$doc])*
                pub fn $counter(&self) -> u64 {
                    self.$counter.load(::std::sync::atomic::Ordering::Relaxed)
                }
            )*

            /// Every counter with its name, in the order declared (for logs and metrics).
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($counter), self.$counter()), )*]
            }
        }
    };
}

pub(crate) use counters;

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    counters! {
        /// Two counters and a field that is not one.
        struct Two {
            /// First.
            a,
            /// Second.
            b,
            ;
            /// Not a counter.
            note: u8,
        }
    }

    #[test]
    fn getters_and_snapshot_read_the_counters() {
        let c = Two::default();
        c.a.fetch_add(2, Relaxed);
        c.b.fetch_add(1, Relaxed);
        assert_eq!((c.a(), c.b(), c.note), (2, 1, 0));
        assert_eq!(c.snapshot(), vec![("a", 2), ("b", 1)]);
    }
}
