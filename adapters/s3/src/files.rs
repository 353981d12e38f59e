//! [`S3Bucket`]'s uploads and outputs, in the results bucket, under `uploads/`
//! and `outputs/` (see `jobline_core::files` for the model and why a
//! presigned `PUT`).
//!
//! The `PUT` is presigned at the [`Clock`](jobline_core::Clock)'s time and signs, besides the
//! host: `Content-Length`, `Content-Type`, `x-amz-checksum-sha256`, the
//! declaration as `x-amz-meta-*`, and the first keep tier as
//! `x-amz-tagging`. A client must send exactly those headers.
//!
//! A read is a ranged `GetObject` with `If-Match`: 412 means the object was
//! overwritten since the job was accepted, and 404 that it is gone.

use crate::S3Bucket;
use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use jobline_aws::sdk_error;
use jobline_core::files::{
    Chunks, Declared, FileError, JobFiles, KEEP_TAG, KEEP_TIERS_DAYS, OutputFile, PresignedUpload,
    SHA256_METADATA, SIZE_METADATA, StoredObject, UploadFiles,
};
use std::time::Duration;

fn aws<E>(operation: &'static str) -> impl FnOnce(SdkError<E>) -> FileError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |error| FileError::Aws {
        operation,
        source: sdk_error(error),
    }
}

/// The HTTP status of an SDK error's response, if it had one.
fn status<E>(error: &SdkError<E>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

#[async_trait]
impl UploadFiles for S3Bucket {
    async fn presign_upload(
        &self,
        key: &str,
        declared: &Declared,
        ttl: Duration,
    ) -> Result<PresignedUpload, FileError> {
        let presigning = PresigningConfig::builder()
            .start_time(self.clock.system_time())
            .expires_in(ttl)
            .build()
            .map_err(|e| FileError::Aws {
                operation: "presign PutObject",
                source: e.into(),
            })?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(i64::try_from(declared.size).unwrap_or(i64::MAX))
            .content_type(&declared.content_type)
            .checksum_sha256(declared.checksum_base64())
            .metadata(SHA256_METADATA, &declared.sha256)
            .metadata(SIZE_METADATA, declared.size.to_string())
            .tagging(format!("{KEEP_TAG}={}", KEEP_TIERS_DAYS[0]))
            .presigned(presigning)
            .await
            .map_err(aws("presign PutObject"))?;
        let expires_at_ms =
            self.clock.now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(PresignedUpload {
            url: request.uri().to_owned(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            expires_at_ms,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<StoredObject>, FileError> {
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(head) => head,
            Err(error) if status(&error) == Some(404) => return Ok(None),
            Err(error) => return Err(aws("HeadObject")(error)),
        };
        let metadata = head.metadata();
        let meta = |name: &str| metadata.and_then(|m| m.get(name)).cloned();
        Ok(Some(StoredObject {
            size: head
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            etag: head.e_tag().unwrap_or_default().to_owned(),
            content_type: head.content_type().map(str::to_owned),
            checksum_sha256: head.checksum_sha256().map(str::to_owned),
            declared_sha256: meta(SHA256_METADATA),
            declared_size: meta(SIZE_METADATA).and_then(|n| n.parse().ok()),
        }))
    }

    async fn keep(&self, key: &str, days: u32) -> Result<(), FileError> {
        let tags = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(aws("GetObjectTagging"))?;
        let current = tags
            .tag_set()
            .iter()
            .find(|tag| tag.key() == KEEP_TAG)
            .and_then(|tag| tag.value().parse::<u32>().ok());
        if current.is_some_and(|current| current >= days) {
            return Ok(());
        }
        let tag = Tag::builder()
            .key(KEEP_TAG)
            .value(days.to_string())
            .build()
            .map_err(|e| FileError::Aws {
                operation: "PutObjectTagging",
                source: e.into(),
            })?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| FileError::Aws {
                operation: "PutObjectTagging",
                source: e.into(),
            })?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(aws("PutObjectTagging"))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<OutputFile>, FileError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(aws("ListObjectsV2"))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|object| {
                let key = object.key()?;
                Some(OutputFile {
                    name: key.strip_prefix(prefix)?.to_owned(),
                    key: key.to_owned(),
                    size: object
                        .size()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                })
            })
            .collect())
    }
}

/// An object's body as it arrives.
struct Body(ByteStream);

#[async_trait]
impl Chunks for Body {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FileError> {
        match self.0.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(Vec::from(bytes))),
            Some(Err(error)) => Err(FileError::Aws {
                operation: "GetObject (body)",
                source: error.into(),
            }),
        }
    }
}

#[async_trait]
impl JobFiles for S3Bucket {
    async fn read(&self, key: &str, etag: &str, from: u64) -> Result<Box<dyn Chunks>, FileError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(etag)
            .range(format!("bytes={from}-"))
            .send()
            .await
            .map_err(|error| match status(&error) {
                Some(412) => FileError::Changed,
                Some(404) => FileError::NotFound,
                _ => aws("GetObject")(error),
            })?;
        Ok(Box::new(Body(object.body)))
    }

    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> Result<(), FileError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(aws("PutObject"))?;
        Ok(())
    }

    async fn start_parts(&self, key: &str, content_type: &str) -> Result<String, FileError> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(aws("CreateMultipartUpload"))?;
        started
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| FileError::Aws {
                operation: "CreateMultipartUpload",
                source: "no upload id in the answer".into(),
            })
    }

    async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<String, FileError> {
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(aws("UploadPart"))?;
        Ok(part.e_tag().unwrap_or_default().to_owned())
    }

    async fn complete_parts(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), FileError> {
        let parts = etags
            .iter()
            .zip(1..)
            .map(|(etag, number)| {
                CompletedPart::builder()
                    .e_tag(etag)
                    .part_number(number)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(aws("CompleteMultipartUpload"))?;
        Ok(())
    }

    async fn abort_parts(&self, key: &str, upload_id: &str) -> Result<(), FileError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(aws("AbortMultipartUpload"))?;
        Ok(())
    }
}
