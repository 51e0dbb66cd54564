//! Object stores (Amazon S3 and S3-compatible servers): where a bucket is and how to sign in
//! ([`S3Connection`], the options `url`, `endpoint`, `region`, `access_key_id`,
//! `secret_access_key`), the client built from them ([`S3Connection::store`], through the
//! `object_store` crate), and the `s3` sink ([`sink`]). Everything that reaches an object store
//! goes through [`S3Connection`], so that other parts (checkpoints kept in a bucket) reuse the
//! same options, client and error texts.
//!
//! ```text
//!  bolts ──► S3Writer in a BatchSink (objects per batch and time partition, multipart when large)
//!              └─ S3Connection::store ──► Arc<AmazonS3> (ObjectStore, MultipartStore) ──► S3 / compatible
//! ```
//!
//! `object_store` (Apache Arrow's) does the HTTP, the signing (SigV4), the multipart protocol
//! and the credential chain; its own retries are off, since the sink retries whole batches with
//! its `retry` options and fails the inputs for replay when every try fails.

pub mod sink;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, RetryConfig};

pub use sink::*;

/// The `s3` sink kind, for the registry.
pub fn kinds() -> Vec<topo_dsl::Kind> {
    sink::kinds()
}

/// Where objects go and how to sign in: the connection options of every object-store part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S3Connection<'a> {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: &'a str,
    /// An S3-compatible server's URL; default: AWS's endpoint of the region.
    pub endpoint: Option<&'a str>,
    /// The AWS region; default: `AWS_REGION`, else `us-east-1`.
    pub region: Option<&'a str>,
    /// A static access key id (with `secret_access_key`); default: the credential chain
    /// (environment, profile-less web identity, instance metadata).
    pub access_key_id: Option<&'a str>,
    /// The secret of `access_key_id`.
    pub secret_access_key: Option<&'a str>,
}

/// A bucket and the key prefix under it, from an `s3://bucket/prefix` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketPrefix {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix (no leading or trailing `/`; empty for the bucket's root).
    pub prefix: String,
}

impl S3Connection<'_> {
    /// The bucket and prefix of `url`, or what is wrong with it (naming the option).
    pub fn bucket_prefix(&self) -> Result<BucketPrefix, String> {
        let rest = self.url.strip_prefix("s3://").ok_or_else(|| {
            format!(
                "option `url` = {:?}: expected s3://bucket or s3://bucket/prefix",
                self.url
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "option `url` = {:?}: the bucket name {bucket:?} should be 3 to 63 characters of a-z, 0-9, `.` and `-`",
                self.url
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..")
            || prefix.contains("//")
            || ObjectPath::parse(prefix).is_err()
        {
            return Err(format!(
                "option `url` = {:?}: the key prefix {prefix:?} is not a valid object path",
                self.url
            ));
        }
        Ok(BucketPrefix {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// Checks the values; the error names the option.
    pub fn check(&self) -> Result<(), String> {
        self.bucket_prefix()?;
        if let Some(e) = self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(format!(
                "option `endpoint` = {e:?}: expected an http:// or https:// URL (e.g. \"http://127.0.0.1:9000\")"
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

    /// A client of the bucket (an [`object_store::ObjectStore`], and an
    /// [`object_store::multipart::MultipartStore`] for uploads completed later). With `endpoint`
    /// requests use the path style
    /// (`http://host/bucket/key`, what S3-compatible servers expect) and may use plain HTTP.
    /// The client's own retries are off: callers retry and count what failed.
    pub fn store(&self) -> Result<Arc<AmazonS3>, String> {
        let BucketPrefix { bucket, .. } = self.bucket_prefix()?;
        let region = self
            .region
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(60))
                    .with_allow_http(self.endpoint.is_some_and(|e| e.starts_with("http://"))),
            );
        if let Some(e) = self.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (self.access_key_id, self.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        b.build()
            .map(Arc::new)
            .map_err(|e| format!("cannot build the S3 client for {}: {e}", self.url))
    }

    /// Where a key is, for messages: `s3://bucket/key` (and the endpoint, if set).
    pub fn locate(&self, key: &str) -> String {
        let bucket = self.bucket_prefix().map(|b| b.bucket).unwrap_or_default();
        match self.endpoint {
            Some(e) => format!("s3://{bucket}/{key} at {e}"),
            None => format!("s3://{bucket}/{key}"),
        }
    }
}

/// A short text of an object-store error, saying what to do where it can.
pub fn describe(e: &object_store::Error, connection: &S3Connection<'_>) -> String {
    let text = e.to_string();
    if text.contains("NoSuchBucket") {
        let bucket = connection
            .bucket_prefix()
            .map(|b| b.bucket)
            .unwrap_or_default();
        return format!(
            "bucket {bucket:?} not found{}: create it, or fix option `url`",
            connection
                .endpoint
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
    }
    match e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            format!("access denied (check the credentials and the bucket policy): {text}")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: &str) -> S3Connection<'_> {
        S3Connection {
            url,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            conn("s3://logs").bucket_prefix(),
            Ok(BucketPrefix {
                bucket: "logs".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            conn("s3://logs/raw/sensors/").bucket_prefix(),
            Ok(BucketPrefix {
                bucket: "logs".into(),
                prefix: "raw/sensors".into()
            })
        );
        for (url, want) in [
            ("logs", "expected s3://bucket"),
            ("s3://", "the bucket name \"\""),
            ("s3://Logs/x", "the bucket name \"Logs\""),
            ("s3://logs/a/../b", "not a valid object path"),
            ("s3://logs/a//b", "not a valid object path"),
        ] {
            let e = conn(url).bucket_prefix().unwrap_err();
            assert!(
                e.contains(want) && e.starts_with("option `url`"),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn bad_connection_options_name_the_option() {
        let mut c = conn("s3://logs");
        c.endpoint = Some("localhost:9000");
        assert!(c.check().unwrap_err().contains("option `endpoint`"));
        let mut c = conn("s3://logs");
        c.access_key_id = Some("k");
        assert!(c.check().unwrap_err().contains("go together"));
        let mut c = conn("s3://logs");
        c.region = Some("");
        assert!(c.check().unwrap_err().contains("option `region`"));
    }
}
