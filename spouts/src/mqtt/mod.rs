//! MQTT: the `mqtt` spout ([`source`]).
//!
//! ```text
//!  MQTT broker (topic filters) ──► MqttSpout ──► bolts
//! ```

pub mod source;

pub use source::*;
