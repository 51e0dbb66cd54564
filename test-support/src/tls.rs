//! The TLS test servers `scripts/services start` runs beside the plain ones, and the throw-away
//! certificates it makes for them (under `<tools>/tls`): a CA and a server certificate for
//! `localhost` and `127.0.0.1`, a client certificate (CN `topo-client`), and a second CA with a
//! client certificate of its own, which no server trusts.
//!
//! | server | address | log in as |
//! |---|---|---|
//! | Redis, TLS only | `127.0.0.1:$TOPO_REDIS_TLS_PORT` (6390) | `topo` / `topo-secret` |
//! | PostgreSQL, `hostssl` only | `127.0.0.1:$TOPO_POSTGRES_TLS_PORT` (5442), database `topo` | `topo` / `topo-secret`, or `topo_cert` by the client certificate |
//! | Mosquitto, TLS with client certificates | `127.0.0.1:$TOPO_MQTT_TLS_PORT` (8883) | `topo` / `topo-secret` |

use std::path::PathBuf;

/// The user every TLS server knows.
pub const USER: &str = "topo";
/// Its password.
pub const PASSWORD: &str = "topo-secret";

/// The directory of the certificates.
pub fn dir() -> PathBuf {
    crate::tools_dir().join("tls")
}

/// A file of the certificate directory (`ca.crt`, `server.crt`, `client.key`, `other-ca.crt`,
/// `other-client.crt`, ...); panics, saying how to make it, when it is missing.
pub fn file(name: &str) -> PathBuf {
    let path = dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: `scripts/services start` makes the test certificates",
        path.display()
    );
    path
}

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// The TLS-only Redis server's port.
pub fn redis_port() -> u16 {
    port("TOPO_REDIS_TLS_PORT", 6390)
}

/// The `hostssl`-only PostgreSQL server's port.
pub fn postgres_port() -> u16 {
    port("TOPO_POSTGRES_TLS_PORT", 5442)
}

/// The MQTT broker's TLS port.
pub fn mqtt_port() -> u16 {
    port("TOPO_MQTT_TLS_PORT", 8883)
}
