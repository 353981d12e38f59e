//! [`S3ResultStore`]: results in an S3 bucket (private, encrypted, expired
//! by a lifecycle rule matching the jobs' retention: see `template.yaml`).

use super::{LINK_TTL, ResultError, ResultStore};
use crate::error::sdk_error;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

/// [`ResultStore`] on bucket `bucket`.
#[derive(Debug, Clone)]
pub struct S3ResultStore {
    client: Client,
    bucket: String,
}

impl S3ResultStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl ResultStore for S3ResultStore {
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
        let presigning = PresigningConfig::expires_in(LINK_TTL).map_err(|e| ResultError::Aws {
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
