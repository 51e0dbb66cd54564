//! The `socket` and `stdin` spouts as built-in kinds (see [`topo_spouts::socket`] and
//! [`topo_spouts::stdin`]); options checked when the topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{SocketOptions, SocketSpout, StdinOptions, StdinSpout};

use super::{Checked, TryFromOptions};

impl TryFromOptions<SocketOptions> for SocketSpout {
    fn try_from_options(options: SocketOptions) -> Result<Self, String> {
        SocketSpout::new(options)
    }
}

impl TryFromOptions<StdinOptions> for StdinSpout {
    fn try_from_options(options: StdinOptions) -> Result<Self, String> {
        StdinSpout::new(options)
    }
}

/// The line options of the spouts that read lines (socket, stdin, file).
pub(super) fn line_docs() -> Vec<OptionDoc> {
    vec![
        OptionDoc::new(
            "max_line_bytes",
            "integer",
            "1048576",
            "longest line accepted; longer ones go to the `error` stream (reason, raw) and are counted",
        ),
        OptionDoc::new(
            "encoding",
            "lossy | strict | bytes",
            "lossy",
            "lossy: invalid UTF-8 replaced by U+FFFD; strict: such lines to the `error` stream; bytes: a Bytes value",
        ),
        OptionDoc::new(
            "field",
            "string",
            "\"line\"",
            "the output field of each line",
        ),
    ]
}

/// Registers `socket` and `stdin`.
pub(super) fn register(r: &mut Registry) {
    let mut socket_docs = vec![
        OptionDoc::new(
            "mode",
            "client | server",
            "client",
            "connect to `address` and read its lines, or listen on it and read every client's (adds a `peer` field)",
        ),
        OptionDoc::new(
            "address",
            "host:port",
            "",
            "where to connect, or to listen (required)",
        ),
    ];
    socket_docs.extend(line_docs());
    socket_docs.extend([
        OptionDoc::new(
            "reconnect.backoff",
            "duration",
            "\"100ms\"",
            "client: first wait after a failed or closed connection; doubles each time",
        ),
        OptionDoc::new(
            "reconnect.max_backoff",
            "duration",
            "\"10s\"",
            "client: longest wait between connection attempts",
        ),
        OptionDoc::new(
            "reconnect.attempts",
            "integer",
            "0",
            "client: failed connection attempts in a row after which the spout gives up and ends; 0 = forever",
        ),
        OptionDoc::new(
            "until_eof",
            "bool",
            "false",
            "client: no reconnection once a connection closes; the spout is then exhausted when every line is acked",
        ),
        OptionDoc::new(
            "max_clients",
            "integer",
            "256",
            "server: clients read at once; more wait in the listen backlog",
        ),
    ]);
    r.register_spout::<Checked<SocketSpout, SocketOptions>, SocketSpout>(
        "socket",
        "lines over TCP as a client (reconnects with backoff) or a server of many clients; unacked lines kept in memory and replayed on fail; bad lines to `error`",
        socket_docs,
        |c: &Checked<SocketSpout, SocketOptions>| c.0.clone(),
    );
    r.register_spout::<Checked<StdinSpout, StdinOptions>, StdinSpout>(
        "stdin",
        "lines of standard input; exhausted at end of input once every line is acked (`topo run --until-idle` ends); bad lines to `error`",
        line_docs(),
        |c: &Checked<StdinSpout, StdinOptions>| c.0.clone(),
    );
}
