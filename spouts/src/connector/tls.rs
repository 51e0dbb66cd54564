//! TLS of the connectors' client connections: one set of options, read and checked once per
//! component, turned into the configuration each client library takes.
//!
//! ```text
//!  tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }
//!    ca          ──► the roots that verify the server (unset: the system's roots)
//!    cert + key  ──► the client certificate, for servers that ask for one
//!        │
//!        ▼  TlsOptions::load (every file read and parsed at validation: errors name option and file)
//!    TlsFiles ──► client_config(Verify)  ──► rustls::ClientConfig (postgres, ...)
//!             └─► PEM bytes              ──► clients that build their own (redis)
//! ```
//!
//! Servers (topo's endpoint, the `http` and `socket` spouts) present a certificate and its key
//! (`tls_cert`, `tls_key`: [`server_options`], [`Identity::server_config`]) and may require
//! clients to present certificates signed by `tls_client_ca`. HTTP servers take them through
//! [`TlsListener`], which accepts TCP connections for `axum::serve` and completes their
//! handshakes side by side, so a client that never finishes its handshake holds up nobody.
//!
//! The crypto is rustls with its `ring` provider, installed as the process default the first time
//! a configuration is made (client libraries that build their own configuration use it too).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub use rustls::ServerConfig;

/// TLS options of a client connection (`tls = { ca = ..., cert = ..., key = ... }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM file of the certificate authorities that verify the server; unset = the system's
    /// roots.
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate (and its chain), sent when the server asks for one;
    /// needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1); needs `cert`.
    pub key: Option<PathBuf>,
}

/// How long a TLS handshake may take, on either side.
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// A TCP listener whose connections are served over TLS. A failed handshake (an untrusted or
/// missing client certificate, a plain-text client, none within 10 s) is logged as a warning, at
/// most one a second, in the span of the server's task (which names its component).
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Handshake>,
    warn: crate::connector::warn::WarnLimit,
}

/// A handshake's outcome: the connection and its peer, or the peer and why it failed.
type Handshake = Result<(TlsStream<TcpStream>, SocketAddr), (SocketAddr, String)>;

impl TlsListener {
    /// Serves the connections of `tcp` with `config` (see [`Identity::server_config`]).
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
            warn: Default::default(),
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
                        let _ = stream.set_nodelay(true);
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Ok((tls, peer)),
                                Ok(Err(e)) => Err((peer, explain(&e))),
                                Err(_) => Err((peer, "no TLS handshake within 10 s".to_string())),
                            }
                        });
                    }
                    // Out of file descriptors and the like: wait a little, as axum does.
                    Err(e) => {
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    match done {
                        Ok(Ok(connection)) => return connection,
                        Ok(Err((peer, why))) if self.warn.allow() => {
                            tracing::warn!(%peer, "TLS handshake with a client failed, connection refused: {why}");
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves `app` on `listener` until `stop` completes: plain HTTP, or HTTPS with `tls` (through
/// a [`TlsListener`]); every connection with `TCP_NODELAY`. The one place the HTTP servers
/// (topo's endpoint, the `http` spout) choose between the two.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    match tls {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(config) => {
            axum::serve(TlsListener::new(listener, config), app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

/// How a server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The chain up to a trusted root, and the name connected to (the default of every client).
    Full,
    /// The chain only, whatever name it was issued for (PostgreSQL's `verify-ca`).
    ChainOnly,
    /// Nothing but the handshake's own signatures: encryption without authentication
    /// (PostgreSQL's `require` and `prefer`, as libpq does them).
    Nothing,
}

/// The files of [`TlsOptions`], read and parsed.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// The `ca` file as it was read (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// The `cert` and `key` files as they were read (PEM).
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    roots: Option<Vec<CertificateDer<'static>>>,
    client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl TlsOptions {
    /// Whether any TLS file is given.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// Reads and parses the files. An error names the option (`{at}.ca`, ...), the file and what
    /// is wrong with it.
    pub fn load(&self, at: &str) -> Result<TlsFiles, String> {
        let mut files = TlsFiles::default();
        if let Some(path) = &self.ca {
            let roots = Roots::load(&format!("{at}.ca"), path)?;
            files.ca_pem = Some(roots.pem);
            files.roots = Some(roots.certs);
        }
        match (&self.cert, &self.key) {
            (None, None) => {}
            (Some(_), None) => return Err(format!("option `{at}.cert` needs `{at}.key`")),
            (None, Some(_)) => return Err(format!("option `{at}.key` needs `{at}.cert`")),
            (Some(cert_path), Some(key_path)) => {
                let (cert, key) = (format!("{at}.cert"), format!("{at}.key"));
                let identity = Identity::load((&cert, cert_path), (&key, key_path))?;
                files.client = Some((identity.chain, Arc::new(identity.key)));
                files.client_pem = Some((identity.cert_pem, identity.key_pem));
            }
        }
        Ok(files)
    }
}

/// Certificate authorities read from a PEM file: the roots that verify the other side of a
/// connection.
pub struct Roots {
    certs: Vec<CertificateDer<'static>>,
    pem: Vec<u8>,
}

impl Roots {
    /// Reads the certificates of `path`, named `option` in errors; each must be usable as a
    /// root.
    pub fn load(option: &str, path: &Path) -> Result<Roots, String> {
        let bad = |why: &str| format!("option `{option}` = {}: {why}", path.display());
        let pem = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
        let certs = certificates(&pem).map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad("it holds no PEM certificate"));
        }
        store(&certs).map_err(|e| bad(&format!("not a CA certificate: {e}")))?;
        Ok(Roots { certs, pem })
    }

    /// Each certificate, DER-encoded (for clients that take certificates one by one).
    pub fn der(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(|c| c.as_ref())
    }
}

/// A root store of `certs`.
fn store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, rustls::Error> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store.add(cert.clone())?;
    }
    Ok(store)
}

/// A server configuration from a component's `tls_cert`, `tls_key` and `tls_client_ca` options
/// (`None` when none is set: the server speaks plain text), offering `alpn` (e.g.
/// `http/1.1`; empty for none). With `tls_client_ca`, a client must present a certificate
/// signed by one of its authorities.
pub fn server_options(
    cert: Option<&Path>,
    key: Option<&Path>,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Option<ServerConfig>, String> {
    let identity = match (cert, key) {
        (None, None) if client_ca.is_some() => {
            return Err("option `tls_client_ca` needs `tls_cert` and `tls_key`".to_string());
        }
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => Identity::load(("tls_cert", cert), ("tls_key", key))?,
        (Some(_), None) => return Err("option `tls_cert` needs `tls_key`".to_string()),
        (None, Some(_)) => return Err("option `tls_key` needs `tls_cert`".to_string()),
    };
    let clients = client_ca
        .map(|path| Roots::load("tls_client_ca", path))
        .transpose()?;
    identity
        .server_config_with(clients.as_ref(), alpn)
        .map(Some)
}

/// What a failed TLS handshake or read means, for an error message: the error and, for the
/// usual mistakes, what to check.
pub fn explain(e: &std::io::Error) -> String {
    let hint = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            " (the certificate is not signed by an authority this side trusts: check the CA option)"
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => " (the certificate is not issued for the host name connected to)",
        Some(rustls::Error::InvalidMessage(_)) => {
            " (the other side does not speak TLS: a plain-text port?)"
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            " (the client sent no certificate, and this server requires one)"
        }
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)) => {
            " (the server requires a client certificate: set `tls.cert` and `tls.key`)"
        }
        _ if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            " (the other side closed the connection during the handshake: a plain-text port, or a certificate it refused?)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// A certificate chain and its private key, read from PEM files and checked to belong together.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl Identity {
    /// Reads `cert` and `key`, each given as (the option that names it, its path): an error
    /// names the option, the file and what is wrong, including a key that is not the
    /// certificate's (refused here, not at the first handshake).
    pub fn load(cert: (&str, &Path), key: (&str, &Path)) -> Result<Identity, String> {
        let ((cert_option, cert_path), (key_option, key_path)) = (cert, key);
        let bad = |option: &str, path: &Path, why: &str| {
            format!("option `{option}` = {}: {why}", path.display())
        };
        let read = |option: &str, path: &Path| {
            std::fs::read(path).map_err(|e| bad(option, path, &e.to_string()))
        };
        let cert_pem = read(cert_option, cert_path)?;
        let chain = certificates(&cert_pem).map_err(|e| bad(cert_option, cert_path, &e))?;
        if chain.is_empty() {
            return Err(bad(cert_option, cert_path, "it holds no PEM certificate"));
        }
        let key_pem = read(key_option, key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            bad(
                key_option,
                key_path,
                &format!("no PEM private key in it ({e})"),
            )
        })?;
        let signing = provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| bad(key_option, key_path, &format!("unusable key: {e}")))?;
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
        if let Err(e) = certified.keys_match() {
            return Err(format!(
                "options `{cert_option}` = {} and `{key_option}` = {}: the key is not the certificate's ({e})",
                cert_path.display(),
                key_path.display()
            ));
        }
        Ok(Identity {
            chain,
            key,
            cert_pem,
            key_pem,
        })
    }

    /// A server configuration presenting this certificate (HTTP/1.1; no client certificate
    /// asked for).
    pub fn server_config(self) -> Result<rustls::ServerConfig, String> {
        self.server_config_with(None, &[b"http/1.1"])
    }

    /// A server configuration presenting this certificate and offering `alpn`; with
    /// `clients`, a client must present a certificate signed by one of them.
    pub fn server_config_with(
        self,
        clients: Option<&Roots>,
        alpn: &[&[u8]],
    ) -> Result<rustls::ServerConfig, String> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let roots = Arc::new(store(&roots.certs).map_err(|e| format!("TLS: {e}"))?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.chain, self.key)
            .map_err(|e| format!("TLS: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

impl TlsFiles {
    /// A client configuration checking the server as `verify` says, with the client
    /// certificate if one is given.
    pub fn client_config(&self, verify: Verify) -> Result<rustls::ClientConfig, String> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let roots = Arc::new(self.root_store()?);
        let builder = match verify {
            Verify::Full => builder.with_root_certificates(roots),
            Verify::ChainOnly | Verify::Nothing => {
                let chain = match verify {
                    Verify::ChainOnly => Some(
                        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                            .build()
                            .map_err(|e| format!("TLS: {e}"))?,
                    ),
                    _ => None,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient { chain, provider }))
            }
        };
        match &self.client {
            None => Ok(builder.with_no_client_auth()),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("TLS client certificate: {e}")),
        }
    }

    /// The `ca` roots, or the system's.
    fn root_store(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Some(roots) => {
                store = self::store(roots).map_err(|e| format!("TLS: {e}"))?;
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or_else(|| "none found".to_string(), ToString::to_string);
                    return Err(format!(
                        "TLS: the system's certificate authorities could not be read ({why}); give the server's CA as `tls.ca`"
                    ));
                }
            }
        }
        Ok(store)
    }
}

/// The crypto provider of every TLS connection of the connectors (rustls' `ring`), also
/// installed as the process default for client libraries that build their own configuration.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let ring = Arc::new(rustls::crypto::ring::default_provider());
            // Another part of the process may have installed one first: that one stays.
            let _ = CryptoProvider::install_default((*ring).clone());
            ring
        })
        .clone()
}

/// Every PEM certificate of a file.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))
}

/// Checks a server's certificate as [`Verify::ChainOnly`] or [`Verify::Nothing`] say; the
/// handshake's signatures are always checked with the certificate presented.
#[derive(Debug)]
struct Lenient {
    /// The chain's check; `None` = no check of the certificate ([`Verify::Nothing`]).
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The chain is good; only the name is not the one connected to.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
