//! Results too large for the job's item: the [`ResultStore`] port. Its
//! adapter is `jobline_s3::S3Bucket` (`adapters/s3/`), on an S3 bucket;
//! its fake `jobline_testkit::memory::results::MemoryResults`.
//!
//! A job item holds a result of up to 100 KiB inline (its budget beside a
//! payload, an error and a checkpoint: DynamoDB refuses items over 400 KB).
//! A larger one, up to [`MAX_LINKED_RESULT_BYTES`], is written to the bucket
//! under [`result_key`] before the job is finished, and the job item keeps
//! only its key; `GET /jobs/{id}` then hands out a short-lived presigned link
//! ([`LINK_TTL`], from the time of the [`Clock`](crate::Clock) the store
//! reads: each GET mints a fresh one), so the result never passes through the
//! API (Lambda's responses stop at 6 MB) and the bucket stays private.

use crate::job::JobId;
use async_trait::async_trait;
use std::time::Duration;

/// The largest result a job may return when a bucket is configured: the
/// worker holds it in memory (as JSON text) while it uploads it.
pub const MAX_LINKED_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// How long a presigned link to a result stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// The object key of attempt `attempt`'s result of job `id`: per attempt, so
/// that an attempt fenced out after its upload never overwrites the result of
/// the attempt that finished the job.
pub fn result_key(id: JobId, attempt: u32) -> String {
    format!("results/{id}/{attempt}.json")
}

/// Why a result could not be stored, linked or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("{operation} failed: {source}")]
    Aws {
        operation: &'static str,
        #[source]
        source: crate::error::BoxError,
    },
}

/// Where large results live.
#[async_trait]
pub trait ResultStore: Send + Sync + std::fmt::Debug {
    /// Writes `body` (JSON text) under `key`, replacing what was there.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ResultError>;

    /// A link that GETs `key` for [`LINK_TTL`] from now (on the store's
    /// clock), with no credentials.
    async fn link(&self, key: &str) -> Result<String, ResultError>;

    /// Deletes `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), ResultError>;
}
