//! What the connectors share: the acked-prefix tracker ([`acked`]), the durable sinks' batching
//! and retries ([`sink`]) and the warning limiter (`warn`).

pub mod acked;
pub mod sink;
pub(crate) mod warn;
