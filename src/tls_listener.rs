//! The endpoint over TLS (`topo run --http ADDR --http-tls-cert FILE --http-tls-key FILE`): a
//! listener for `axum::serve` that accepts TCP connections and completes their TLS handshakes
//! side by side, so a client that never finishes its handshake holds up nobody.
//!
//! ```text
//!  TcpListener ──accept──► handshake task (≤ 10 s) ──► TLS stream ──► axum (the routes of http.rs)
//!                              └─ failed or too slow: dropped, logged at debug
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A TCP listener whose connections are served over TLS.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Serves the connections of `tcp` with `config` (see
    /// [`Identity::server_config`](topo_spouts::connector::tls::Identity::server_config)).
    pub fn new(tcp: TcpListener, config: tokio_rustls::rustls::ServerConfig) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, "endpoint: TLS handshake failed: {e}");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "endpoint: no TLS handshake within 10 s");
                                    None
                                }
                            }
                        });
                    }
                    // Out of file descriptors and the like: wait a little, as axum does.
                    Err(e) => {
                        tracing::warn!("endpoint: cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
