//! The `topo` command line: `run`, `validate`, `graph`, `components` and `schema`; `tap` and
//! `top` watch a topology that `topo run --http` serves.
//!
//! A team that writes its own spouts and bolts registers them and gets the same command line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = topo::builtin_registry();
//!     // registry.add(topo::registry::Kind::basic_bolt("my_bolt", "what it does", MyBolt::clone));
//!     topo::cli::main_with(registry)
//! }
//! ```
//!
//! Exit codes: 0 ok, 1 runtime failure (including a stop that could not drain; for `tap` and
//! `top`, an endpoint that cannot be reached or breaks off), 2 invalid topology or command line
//! (for `tap`, also a component the endpoint does not know, or a rate it refuses).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use topo_dsl::file::{Diagnostic, Diagnostics, load_file};
use topo_dsl::registry::Registry;
use topo_runtime::{LocalCluster, MetricsSnapshot, StopMode, Topology};

use crate::graph::{GraphFormat, render};
use crate::logs::{LogFormat, RecentErrors};
use crate::status;

/// topo: run Storm-like topologies of spouts and bolts.
#[derive(Debug, Parser)]
#[command(name = "topo", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output: errors only, no status line.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// The format of log lines on stderr: `text`, or `json` (one object per line) for collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum CheckpointsAction {
    /// Every kept checkpoint: id, completion time, duration, bytes written, kind.
    List {
        /// The topology file (its name and `[config]` locate the checkpoints).
        file: PathBuf,
        /// Override a setting of the file (`--set config.checkpoint_dir=/var/lib/topo`).
        #[arg(long = "set", value_name = "KEY.PATH=VALUE", value_parser = parse_override)]
        overrides: Vec<(String, String)>,
    },
    /// One checkpoint: each component's tasks, their state parts, sizes and files.
    Show {
        /// The topology file.
        file: PathBuf,
        /// The checkpoint id, or `latest`.
        #[arg(default_value = "latest")]
        id: String,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
        /// Override a setting of the file.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE", value_parser = parse_override)]
        overrides: Vec<(String, String)>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a topology until Ctrl-C (graceful drain), for a duration, or until it is idle.
    Run {
        /// The topology file.
        file: PathBuf,
        /// Override a setting of the file: `--set config.ackers=0`, `--set bolts.count.parallelism=4`.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE", value_parser = parse_override)]
        overrides: Vec<(String, String)>,
        /// Stop after this long (`60s`, `5m`).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        run_for: Option<Duration>,
        /// Stop once every spout is exhausted and every tree is acked.
        #[arg(long)]
        until_idle: bool,
        /// How long a stop waits for in-flight tuples.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// On Ctrl-C or at the end of `--for`, end the input as the end of the sources does
        /// (Flink's `stop --drain`): windows fire what they hold, sinks write it, then a final
        /// checkpoint. Without it a stop takes a savepoint, and windows and other state stay
        /// open for the next run to go on with.
        #[arg(long)]
        drain: bool,
        /// Start with empty state, ignoring the topology's checkpoints (the spouts start where
        /// their own settings say). New checkpoints are still taken.
        #[arg(long, conflicts_with = "from_checkpoint")]
        fresh: bool,
        /// Resume from this checkpoint instead of the newest: an id (`topo checkpoints list`)
        /// or the path of a manifest (`.../chk-0000000042.json`).
        #[arg(long, value_name = "ID|PATH")]
        from_checkpoint: Option<String>,
        /// Resume even though the checkpoint holds state of a component the topology no
        /// longer has (that state is dropped).
        #[arg(long)]
        allow_missing_state: bool,
        /// How often the status line refreshes (on a terminal; otherwise every 10 intervals).
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
        status_interval: Duration,
        /// Serve the live figures over HTTP on this address (`127.0.0.1:8080`; port 0 picks
        /// one): the live dashboard at `/`, `/metrics` (Prometheus), `/api/metrics`,
        /// `/api/topology`, `/api/tap` (`topo tap`, `topo top`).
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// A bearer token the endpoint asks for on every route but `/health` and the
        /// dashboard's page (`topo tap` and `topo top` send it with `--token`; open the
        /// dashboard as `http://<address>/#token=<token>`).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "TOPO_HTTP_TOKEN",
            hide_env_values = true
        )]
        http_token: Option<String>,
        /// Read the endpoint's token from this file (its first line).
        #[arg(long, value_name = "PATH", conflicts_with = "http_token")]
        http_token_file: Option<PathBuf>,
        /// Do not serve `/api/tap` (sampled copies of the tuples themselves) on the endpoint.
        #[arg(long)]
        no_tap: bool,
        /// Serve the endpoint over TLS (https://) with this certificate (PEM, with its chain).
        #[arg(long, value_name = "PATH", requires = "http_tls_key")]
        http_tls_cert: Option<PathBuf>,
        /// The private key (PEM) of `--http-tls-cert`.
        #[arg(long, value_name = "PATH", requires = "http_tls_cert")]
        http_tls_key: Option<PathBuf>,
    },
    /// List a topology's checkpoints, or describe one (what `topo run` resumes from).
    Checkpoints {
        #[command(subcommand)]
        action: CheckpointsAction,
    },
    /// Check topology files; print every problem.
    Validate {
        /// The topology files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Print the topology as a graph.
    Graph {
        /// The topology file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphArg::Dot)]
        format: GraphArg,
        /// Override a setting of the file.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE", value_parser = parse_override)]
        overrides: Vec<(String, String)>,
    },
    /// List the component kinds, or one kind's options.
    Components {
        /// A kind to describe.
        kind: Option<String>,
    },
    /// Print the JSON Schema of topology files (every kind's options included), for editors:
    /// `topo schema > topo.schema.json`, then `#:schema ./topo.schema.json` atop a topology file.
    Schema,
    /// Print sampled tuples leaving (or entering) a component of a running topology, one a line:
    /// `split[1] default: (word="cow")`. Needs `topo run --http ADDR`.
    Tap {
        /// The endpoint of `topo run --http` (`http://127.0.0.1:8080` or `127.0.0.1:8080`).
        url: String,
        /// The component to watch.
        component: String,
        /// Show the tuples the bolt executes, with where each came from, instead of those it
        /// emits.
        #[arg(long = "in")]
        input: bool,
        /// At most this many tuples per second; the rest are skipped (and counted on stderr).
        #[arg(long, value_name = "N", default_value_t = crate::tap::DEFAULT_RATE, value_parser = parse_rate)]
        rate: f64,
        /// Stop after this many tuples.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Print the endpoint's JSON lines as they come (a tuple a line, and `{"skipped": n}`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: EndpointClient,
    },
    /// A live table of every component of a running topology: rates, failures, p99 latency,
    /// queues, capacity, and the bottleneck. `q` quits. Needs `topo run --http ADDR`.
    Top {
        /// The endpoint of `topo run --http` (`http://127.0.0.1:8080` or `127.0.0.1:8080`).
        url: String,
        /// Print the table once as plain text (also what happens when stdout is not a terminal).
        #[arg(long)]
        once: bool,
        /// How often the table refreshes; with --once, the interval the figures cover.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
        #[command(flatten)]
        client: EndpointClient,
    },
}

/// How `topo tap` and `topo top` reach the endpoint of `topo run --http`.
#[derive(clap::Args, Debug)]
struct EndpointClient {
    /// The endpoint's token, if `topo run` was given one (`--http-token`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOPO_HTTP_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The certificate authority (PEM) of an https:// endpoint whose certificate the
    /// system does not know (`topo run --http-tls-cert`).
    #[arg(long, value_name = "PATH")]
    ca: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphArg {
    Dot,
    Mermaid,
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY.PATH=VALUE, got {s:?}")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 250ms, 30s or 5m)"))
}

/// A tap's rate: tuples per second, above 0 and at most `topo_runtime::tap::MAX_RATE`.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= topo_runtime::tap::MAX_RATE => Ok(r),
        _ => Err(format!(
            "expected a number of tuples per second above 0 and at most {}",
            topo_runtime::tap::MAX_RATE
        )),
    }
}

/// A duration that must not be zero (a period of a timer).
fn parse_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero (such as 250ms or 1s)".to_string()),
        d => Ok(d),
    }
}

/// Runs the command line with the kinds in `registry`; returns the process exit code.
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let errors = RecentErrors::new();
    init_logging(cli.verbose, cli.quiet, cli.log_format, &errors);
    match cli.command {
        Command::Validate { files, format } => validate(&registry, &files, format),
        Command::Graph {
            file,
            format,
            overrides,
        } => match load(&registry, &file, &overrides) {
            Ok(t) => {
                let f = match format {
                    GraphArg::Dot => GraphFormat::Dot,
                    GraphArg::Mermaid => GraphFormat::Mermaid,
                };
                print!("{}", render(&t, f));
                ExitCode::SUCCESS
            }
            Err(d) => {
                eprintln!("{d}");
                ExitCode::from(2)
            }
        },
        Command::Components { kind } => components(&registry, kind.as_deref()),
        Command::Checkpoints { action } => {
            let (file, overrides) = match &action {
                CheckpointsAction::List { file, overrides }
                | CheckpointsAction::Show {
                    file, overrides, ..
                } => (file, overrides),
            };
            match load(&registry, file, overrides) {
                Ok(t) => match &action {
                    CheckpointsAction::List { .. } => crate::checkpoints::list(&t),
                    CheckpointsAction::Show { id, json, .. } => {
                        crate::checkpoints::show(&t, id, *json)
                    }
                },
                Err(d) => {
                    eprintln!("{d}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Schema => {
            let schema = topo_dsl::topology_schema(&registry);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("a JSON value prints")
            );
            ExitCode::SUCCESS
        }
        Command::Tap {
            url,
            component,
            input,
            rate,
            limit,
            json,
            client: EndpointClient { token, ca },
        } => crate::tap::run(crate::tap::TapArgs {
            url,
            component,
            direction: if input {
                topo_runtime::Direction::In
            } else {
                topo_runtime::Direction::Out
            },
            rate,
            limit,
            json,
            token,
            ca,
        }),
        Command::Top {
            url,
            once,
            interval,
            client: EndpointClient { token, ca },
        } => crate::top::run(crate::top::TopArgs {
            url,
            once,
            interval,
            token,
            ca,
        }),
        Command::Run {
            file,
            overrides,
            run_for,
            until_idle,
            drain_timeout,
            drain,
            fresh,
            from_checkpoint,
            allow_missing_state,
            status_interval,
            http,
            http_token,
            http_token_file,
            no_tap,
            http_tls_cert,
            http_tls_key,
        } => match (
            load(&registry, &file, &overrides),
            endpoint_token(http_token, http_token_file.as_deref()),
            endpoint_tls(http_tls_cert.as_deref(), http_tls_key.as_deref()),
        ) {
            (Err(d), _, _) => {
                eprintln!("{d}");
                ExitCode::from(2)
            }
            (_, Err(e), _) | (_, _, Err(e)) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            (Ok(t), Ok(token), Ok(tls)) => run(
                t,
                RunOptions {
                    run_for,
                    until_idle,
                    drain_timeout,
                    drain,
                    status_interval,
                    http,
                    tls,
                    access: crate::http::Access {
                        token,
                        tap: !no_tap,
                    },
                    quiet: cli.quiet,
                    errors,
                    start: topo_runtime::RunOptions {
                        fresh,
                        from_checkpoint,
                        allow_missing_state,
                    },
                },
            ),
        },
    }
}

/// The endpoint's TLS configuration, from `--http-tls-cert` and `--http-tls-key` (read and checked
/// before the topology starts: an error names the option and the file).
fn endpoint_tls(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<topo_spouts::connector::tls::ServerConfig>, String> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let identity = topo_spouts::connector::tls::Identity::load(
        ("--http-tls-cert", cert),
        ("--http-tls-key", key),
    )?;
    identity.server_config().map(Some)
}

/// The endpoint's token: `--http-token` (or `TOPO_HTTP_TOKEN`), else the first line of
/// `--http-token-file`; an empty one is an error (it would let anyone in while looking set).
fn endpoint_token(
    token: Option<String>,
    file: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<str>>, String> {
    let token = match (token, file) {
        (Some(t), _) => Some((t, "--http-token (or TOPO_HTTP_TOKEN)".to_string())),
        (None, Some(path)) => {
            let first = topo_spouts::connector::secret_file("--http-token-file", path)?
                .trim()
                .to_string();
            Some((first, format!("--http-token-file {}", path.display())))
        }
        (None, None) => None,
    };
    match token {
        None => Ok(None),
        Some((t, from)) if t.trim().is_empty() => Err(format!(
            "the endpoint's token from {from} is empty: give a token, or leave the option out"
        )),
        Some((t, _)) => Ok(Some(t.into())),
    }
}

/// Logs to stderr at the level `-q`/`-v` choose (`RUST_LOG` overrides), and keeps the recent
/// warnings and errors in `errors`.
fn init_logging(verbose: u8, quiet: bool, format: LogFormat, errors: &RecentErrors) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    crate::logs::init(level, format, errors);
}

/// Loads and validates a topology file.
fn load(
    registry: &Registry,
    file: &Path,
    overrides: &[(String, String)],
) -> Result<Topology, Diagnostics> {
    let spec = load_file(file, registry, overrides)?;
    // The loader has validated the spec already; this is the same check, producing the runnable form.
    spec.validate().map_err(|errors| {
        Diagnostics(
            errors
                .0
                .iter()
                .map(|e| Diagnostic {
                    file: file.display().to_string(),
                    line: 1,
                    column: 1,
                    path: String::new(),
                    message: e.to_string(),
                })
                .collect(),
        )
    })
}

fn validate(registry: &Registry, files: &[PathBuf], format: ReportFormat) -> ExitCode {
    let mut ok = true;
    let mut json = Vec::new();
    for f in files {
        match load(registry, f, &[]) {
            Ok(_) => {
                if matches!(format, ReportFormat::Text) {
                    println!("{}: ok", f.display());
                }
            }
            Err(d) => {
                ok = false;
                match format {
                    ReportFormat::Text => eprintln!("{d}"),
                    ReportFormat::Json => match serde_json::from_str(&d.to_json()) {
                        Ok(serde_json::Value::Array(items)) => json.extend(items),
                        Ok(other) => json.push(other),
                        Err(e) => tracing::error!("diagnostics are not JSON: {e}"),
                    },
                }
            }
        }
    }
    if matches!(format, ReportFormat::Json) {
        println!("{}", serde_json::Value::Array(json));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn components(registry: &Registry, kind: Option<&str>) -> ExitCode {
    match kind {
        None => {
            for k in registry.kinds() {
                println!(
                    "{:<20} {:<6} {}",
                    k.name(),
                    k.role().to_string(),
                    k.description()
                );
            }
            ExitCode::SUCCESS
        }
        Some(name) => {
            let kinds: Vec<_> = registry.named(name).collect();
            if kinds.is_empty() {
                eprintln!("{}", registry.unknown_kind_message(None, name));
                return ExitCode::from(2);
            }
            for (i, k) in kinds.into_iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("{} ({}): {}", k.name(), k.role(), k.description());
                if k.options().is_empty() {
                    println!("  no options");
                }
                for o in k.options() {
                    let default = if o.required {
                        " (required)".to_string()
                    } else if o.default.is_empty() {
                        String::new()
                    } else {
                        format!(" = {}", o.default)
                    };
                    println!("  {} : {}{}", o.name, o.ty, default);
                    for line in wrap(&o.doc, 92) {
                        println!("      {line}");
                    }
                }
                if let Some(example) = k.example() {
                    println!("\nexample:");
                    for line in example.lines() {
                        println!("  {line}");
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// `text` in lines of at most `width` characters (longer words stay whole); paragraphs (blank
/// lines in a doc comment) stay apart.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            lines.push(String::new());
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// How often `topo run` resumes from the newest checkpoint after failures a resume repairs,
/// before it gives up.
const MAX_RESTARTS: u32 = 10;

/// How `topo run` runs a topology.
struct RunOptions {
    run_for: Option<Duration>,
    until_idle: bool,
    drain_timeout: Duration,
    /// A stop before the end of input ends the input (`--drain`) rather than taking a
    /// savepoint.
    drain: bool,
    status_interval: Duration,
    http: Option<std::net::SocketAddr>,
    /// The endpoint's TLS configuration (`--http-tls-cert`), if it serves https://.
    tls: Option<topo_spouts::connector::tls::ServerConfig>,
    /// Who may read the endpoint.
    access: crate::http::Access,
    quiet: bool,
    /// The recent warnings and errors, served with the figures.
    errors: RecentErrors,
    /// Which checkpoint to resume from.
    start: topo_runtime::RunOptions,
}

/// Runs until Ctrl-C, the duration, or idleness; then stops gracefully.
fn run(topology: Topology, o: RunOptions) -> ExitCode {
    let RunOptions {
        run_for,
        until_idle,
        drain_timeout,
        drain,
        status_interval,
        http,
        tls,
        access,
        quiet,
        errors,
        start,
    } = o;
    let cluster = match LocalCluster::new(topology.config().worker_threads) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let name = topology.name().to_string();
    // The address is taken before the topology starts, so a busy port stops nothing.
    let listener = match http {
        None => None,
        Some(addr) => match cluster.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: cannot serve HTTP on {addr} (--http): {e}");
                return ExitCode::from(2);
            }
        },
    };
    let info = crate::http::TopologyInfo::of(&topology);
    // Kept to start the topology again after a failure a resume repairs.
    let again = topology.clone();
    let mut handle = match cluster.try_submit(topology, &start) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(id) = handle.metrics().checkpoints.and_then(|c| c.restored_id)
        && !quiet
    {
        eprintln!(
            "resuming from checkpoint {id} (`topo checkpoints list` shows them; --fresh starts with empty state)"
        );
    }
    // The endpoint reads through this reader, which follows the run that replaces this one
    // after a restart.
    let reader = handle.metrics_reader();
    // After the stop, the endpoint finishes what it is sending (a tap's last lines and its end)
    // before the process ends.
    let mut server = None;
    if let Some(listener) = listener {
        let open = access.token.is_none();
        let tap = access.tap;
        let app = crate::http::router(reader.clone(), info, errors, access);
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        tracing::info!(address = %addr, "serving /metrics, /api/metrics and /api/topology");
        if !quiet {
            let token = if open {
                ""
            } else {
                " (add #token=<token> to its address)"
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            eprintln!(
                "live figures: {scheme}://{addr}/metrics (Prometheus), {scheme}://{addr}/api/metrics, dashboard {scheme}://{addr}/{token}"
            );
            let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
            if open && !loopback {
                let what = if tap {
                    "the live figures and sampled copies of the data (/api/tap)"
                } else {
                    "the live figures"
                };
                eprintln!(
                    "warning: the endpoint serves {what} to anyone who can reach {addr}: set --http-token (or TOPO_HTTP_TOKEN){}",
                    if tap { ", and --no-tap" } else { "" }
                );
            }
        }
        let (done, shutdown) = tokio::sync::oneshot::channel::<()>();
        let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
        cluster.block_on(async move {
            tokio::spawn(async move {
                let stop = async {
                    let _ = shutdown.await;
                };
                let served = topo_spouts::connector::tls::serve(
                    listener,
                    app,
                    tls.map(std::sync::Arc::new),
                    stop,
                )
                .await;
                if let Err(e) = served {
                    tracing::error!("the HTTP endpoint stopped: {e}");
                }
                let _ = ended_tx.send(());
            });
        });
        server = Some((done, ended));
    }
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        status_interval
    } else {
        status_interval * 10
    };
    let deadline = run_for.map(|d| Instant::now() + d);
    let mut restarts = 0u32;
    let reason = loop {
        let reason = cluster.block_on(async {
        let mut last: Option<MetricsSnapshot> = None;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let idle_check = Duration::from_millis(10);
        loop {
            let until = deadline.map(tokio::time::Instant::from_std);
            tokio::select! {
                r = &mut ctrl_c => {
                    if let Err(e) = r {
                        tracing::error!("cannot listen for Ctrl-C: {e}");
                    }
                    return "interrupted";
                }
                _ = async { match until { Some(u) => tokio::time::sleep_until(u).await, None => std::future::pending().await } } => {
                    return "duration reached";
                }
                _ = tokio::time::sleep(idle_check) => {
                    if handle.fatal_error().is_some() {
                        return "failed";
                    }
                    if until_idle && handle.is_idle() {
                        return "idle";
                    }
                }
                _ = tick.tick() => {
                    if !quiet {
                        let now = handle.metrics();
                        let text = status::line(&now, last.as_ref());
                        if terminal {
                            eprint!("\r\x1b[2K{text}");
                        } else {
                            eprintln!("{text}");
                        }
                        last = Some(now);
                    }
                }
            }
        }
    });
        if reason != "failed" || !handle.resume_repairs() || restarts >= MAX_RESTARTS {
            break reason;
        }
        // An instance holding state failed: stop (no savepoint: the state is not whole) and
        // resume from the newest checkpoint, after a back-off (Flink's restart strategy).
        restarts += 1;
        let why = handle.fatal_error().unwrap_or_default();
        if terminal && !quiet {
            eprintln!();
        }
        eprintln!(
            "error: {why}\nresuming from the newest checkpoint (restart {restarts} of at most {MAX_RESTARTS})"
        );
        let _ = cluster.block_on(handle.stop(drain_timeout));
        let backoff = Duration::from_secs(u64::from(restarts).min(30));
        cluster.block_on(async { tokio::time::sleep(backoff).await });
        handle = match cluster.try_submit(again.clone(), &topo_runtime::RunOptions::default()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        reader.follow(&handle);
    };
    if terminal && !quiet {
        eprintln!();
    }
    tracing::info!(topology = %name, reason, "stopping");
    if !quiet && reason == "interrupted" {
        eprintln!("draining in-flight tuples (Ctrl-C again to quit at once)");
    }
    let handle_fatal = handle.fatal_error();
    let mode = if drain {
        StopMode::Drain
    } else {
        StopMode::Savepoint
    };
    let stopped = cluster.block_on(async {
        tokio::select! {
            report = handle.stop_with(mode, drain_timeout) => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(report) = stopped else {
        eprintln!("error: interrupted while draining; in-flight tuples were not acked");
        return ExitCode::from(130);
    };
    if let Some((done, ended)) = server {
        let _ = done.send(());
        // The timer is made inside the runtime (a tokio timer needs its context).
        let _ =
            cluster.block_on(async { tokio::time::timeout(Duration::from_secs(1), ended).await });
    }
    if !quiet {
        // The final status line stays the last line.
        if let Some(cp) = &report.metrics.checkpoints {
            eprintln!("{}", status::checkpoint_summary(cp));
        }
        eprintln!("{}", status::line(&report.metrics, None));
    }
    if let Some(e) = handle_fatal {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    if report.drained {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: stop did not drain within {drain_timeout:?}: {} trees failed, {} tasks aborted",
            report.abandoned_trees, report.aborted_tasks
        );
        ExitCode::from(1)
    }
}
