//! Amazon Kinesis: the `kinesis` spout ([`source`]) and the `kinesis` sink ([`sink`]), sharing
//! where the stream is and how to sign in ([`KinesisConnection`]: the options `stream`,
//! `region`, `endpoint`, `access_key_id`, `secret_access_key`, declared once for both option
//! structs) and the client built from them ([`kinesis_client`]).
//!
//! ```text
//!  Kinesis stream ──► KinesisSpout (shards leased among workers, checkpoints,
//!                     KPL aggregates taken apart: kpl) ──► bolts
//!  bolts ──► KinesisWriter in a BatchSink (PutRecords, refused entries retried) ──► Kinesis stream
//!            both: KinesisConnection ──► kinesis_client (region, endpoint, credentials)
//! ```
//!
//! The connection options sit at the top level of the component's table (`stream = "..."`,
//! `region = "..."`), not in a table of their own, and unknown options are refused; serde's
//! `flatten` cannot do both, so the crate-internal macro `kinesis_options!` writes the
//! five fields (with their docs) into each options struct, and
//! [`connection`](KinesisOptions::connection) hands them to the shared checks and client.

pub mod kpl;
mod lease;
pub mod sink;
pub mod source;

use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};

pub use sink::*;
pub use source::*;

/// The `kinesis` spout and sink kinds, for the registry.
pub fn kinds() -> Vec<topo_dsl::Kind> {
    let mut kinds = source::kinds();
    kinds.extend(sink::kinds());
    kinds
}

/// Declares an options struct of a Kinesis connector: the connection fields (`stream`,
/// `region`, `endpoint`, `access_key_id`, `secret_access_key`, each with its doc) followed by the
/// struct's own fields, and a `connection()` accessor returning them as a
/// [`KinesisConnection`].
macro_rules! kinesis_options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$meta])*
        pub struct $name {
            /// The stream's name (required).
            pub stream: String,
            /// The AWS region; default: the SDK's (environment, profile), else `us-east-1`.
            pub region: Option<String>,
            /// The service's URL (a Kinesis-compatible server); default: AWS's endpoint of the
            /// region.
            pub endpoint: Option<String>,
            /// A static access key id (with `secret_access_key`); default: the SDK's credential
            /// chain.
            pub access_key_id: Option<String>,
            /// The secret of `access_key_id`.
            pub secret_access_key: Option<String>,
            $($fields)*
        }

        impl $name {
            /// Where the stream is and how to sign in.
            pub fn connection(&self) -> $crate::kinesis::KinesisConnection<'_> {
                $crate::kinesis::KinesisConnection {
                    stream: &self.stream,
                    region: self.region.as_deref(),
                    endpoint: self.endpoint.as_deref(),
                    access_key_id: self.access_key_id.as_deref(),
                    secret_access_key: self.secret_access_key.as_deref(),
                }
            }
        }
    };
}

pub(crate) use kinesis_options;

/// The connection options of a Kinesis spout or sink: the stream, the region, the endpoint and
/// the static credentials, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KinesisConnection<'a> {
    /// The stream's name.
    pub stream: &'a str,
    /// The AWS region, if set.
    pub region: Option<&'a str>,
    /// The service's URL, if set.
    pub endpoint: Option<&'a str>,
    /// A static access key id, if set.
    pub access_key_id: Option<&'a str>,
    /// Its secret, if set.
    pub secret_access_key: Option<&'a str>,
}

impl KinesisConnection<'_> {
    /// Checks the values; the error names the option.
    pub fn check(&self) -> Result<(), String> {
        if self.stream.is_empty() || self.stream.len() > 128 {
            return Err("option `stream`: expected the stream's name (1 to 128 characters)".into());
        }
        if let Some(e) = self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(format!(
                "option `endpoint` = {e:?}: expected an http:// or https:// URL (e.g. \"http://127.0.0.1:4567\")"
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err("options `access_key_id` and `secret_access_key` go together".into());
        }
        if self.region == Some("") {
            return Err("option `region` is empty: expected e.g. \"us-east-1\"".into());
        }
        Ok(())
    }

    /// A client of the service for these settings (see [`kinesis_client`]).
    pub async fn client(&self) -> Client {
        kinesis_client(
            self.region,
            self.endpoint,
            self.access_key_id.zip(self.secret_access_key),
        )
        .await
    }
}

/// A Kinesis client for these settings: static credentials if given, else the SDK's default
/// chain. SDK-level retries are off: callers back off themselves and count what failed.
pub async fn kinesis_client(
    region: Option<&str>,
    endpoint: Option<&str>,
    credentials: Option<(&str, &str)>,
) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    if let Some((id, secret)) = credentials {
        loader = loader.credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            id,
            secret,
            None,
            None,
            "topo-options",
        ));
    }
    let mut conf = loader.load().await;
    if conf.region().is_none() {
        conf = conf
            .into_builder()
            .region(aws_config::Region::from_static("us-east-1"))
            .build();
    }
    Client::new(&conf)
}

/// What to do when no credentials could be loaded.
const NO_CREDENTIALS: &str = "no AWS credentials could be loaded: set AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY, an AWS profile, or the options `access_key_id` and `secret_access_key`";

/// A short text of an SDK error, with its service error code and message.
pub(crate) fn describe<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> String {
    // A credentials failure surfaces as a dispatch failure: name it for what it is.
    let creds = std::iter::successors(std::error::Error::source(e), |e| e.source())
        .find_map(|e| e.downcast_ref::<CredentialsError>());
    match (creds, e) {
        (Some(c), _) => format!("{NO_CREDENTIALS} ({})", DisplayErrorContext(c)),
        (None, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => {
            format!("endpoint unreachable: {}", DisplayErrorContext(e))
        }
        _ => DisplayErrorContext(e).to_string(),
    }
}
