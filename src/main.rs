//! The `topo` command: run, validate, graph and list components of topology files.

mod allocator;

fn main() -> std::process::ExitCode {
    topo::cli::main_with(topo::builtin_registry())
}
