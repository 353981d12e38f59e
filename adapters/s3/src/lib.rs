//! [`S3Bucket`]: the results bucket (private, encrypted, expired by
//! lifecycle rules: see `template.yaml`). It holds large results under
//! `results/` (the [`ResultStore`] here), and uploads and outputs under
//! `uploads/` and `outputs/` ([`files`]: `UploadFiles` and `JobFiles`).
//!
//! A link is presigned at the [`Clock`]'s time, not the SDK's own time
//! source, so that its `X-Amz-Date` (and so its expiry, [`LINK_TTL`] later)
//! is on the same clock as every other time Jobline decides by (a test's
//! movable one included).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use jobline_aws::sdk_error;
use jobline_core::clock::Clock;
use jobline_core::results::{LINK_TTL, ResultError, ResultStore};

/// An S3 client of `sdk`. An endpoint of our own (moto) serves buckets by
/// path, not by host.
pub fn client(sdk: &aws_types::SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

pub mod files;

/// Jobline's bucket `bucket`: results, uploads and outputs.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: Client,
    bucket: String,
    /// The time links are presigned at.
    clock: Clock,
}

impl S3Bucket {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            clock: Clock::system(),
        }
    }

    /// The store on `bucket`, over a client of `sdk` ([`client`]).
    pub fn from_sdk(sdk: &aws_types::SdkConfig, bucket: impl Into<String>) -> Self {
        Self::new(client(sdk), bucket)
    }

    /// Presigns links at `clock`'s time (the stack's: a test's movable one).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl ResultStore for S3Bucket {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ResultError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| ResultError::Aws {
                operation: "PutObject",
                source: sdk_error(e),
            })?;
        Ok(())
    }

    async fn link(&self, key: &str) -> Result<String, ResultError> {
        let presigning = PresigningConfig::builder()
            .start_time(self.clock.system_time())
            .expires_in(LINK_TTL)
            .build()
            .map_err(|e| ResultError::Aws {
                operation: "presign GetObject",
                source: e.into(),
            })?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| ResultError::Aws {
                operation: "presign GetObject",
                source: sdk_error(e),
            })?;
        Ok(request.uri().to_owned())
    }

    async fn delete(&self, key: &str) -> Result<(), ResultError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| ResultError::Aws {
                operation: "DeleteObject",
                source: sdk_error(e),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use std::time::Duration;

    /// A client that only presigns: nothing is sent.
    fn offline_client() -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .build();
        Client::from_conf(config)
    }

    fn query<'a>(link: &'a str, name: &str) -> Option<&'a str> {
        link.split_once('?')?
            .1
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    #[tokio::test]
    async fn links_are_presigned_at_the_clocks_time_for_the_link_ttl() {
        // 2026-11-29T17:09:54.123Z.
        let clock = Clock::at(1_795_972_194_123);
        let store = S3Bucket::new(offline_client(), "results").with_clock(clock.clone());
        let link = store.link("results/a/1.json").await.unwrap();
        assert_eq!(
            query(&link, "X-Amz-Date"),
            Some("20261129T170954Z"),
            "{link}"
        );
        let ttl = LINK_TTL.as_secs().to_string();
        assert_eq!(query(&link, "X-Amz-Expires"), Some(ttl.as_str()));

        // Two hours on, a new link is dated then.
        clock.advance(Duration::from_secs(7_200));
        let later = store.link("results/a/1.json").await.unwrap();
        assert_eq!(
            query(&later, "X-Amz-Date"),
            Some("20261129T190954Z"),
            "{later}"
        );
        assert_ne!(
            query(&later, "X-Amz-Signature"),
            query(&link, "X-Amz-Signature")
        );
    }
}
