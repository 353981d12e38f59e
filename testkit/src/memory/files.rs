//! `MemoryFiles`: a fake bucket of uploads and outputs ([`UploadFiles`]
//! and [`JobFiles`]) in a map, held to `jobline_s3::S3Bucket`'s behaviour
//! by [`crate::contract::files`]. An object's ETag is a digest of its
//! bytes, as S3's is for a single `PUT`; reads come in chunks of
//! [`CHUNK_BYTES`]; presigned URLs are `memory://<key>` and fake nothing
//! else.

use crate::contract::files::declare;
use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::JobId;
use jobline_core::files::{
    Chunks, Declared, FileError, InputFile, JobFiles, KEEP_TAG, OutputFile, PresignedUpload,
    SHA256_METADATA, SIZE_METADATA, StoredObject, UploadFiles, UploadId, upload_key,
};
use jobline_core::job_types::JobContext;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many bytes a read hands over at a time.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// One object.
#[derive(Debug, Clone, Default)]
pub struct Object {
    pub body: Vec<u8>,
    pub content_type: String,
    pub metadata: HashMap<String, String>,
    pub tags: HashMap<String, String>,
}

impl Object {
    /// Its ETag: a digest of its bytes, quoted, as S3's of a single `PUT`.
    pub fn etag(&self) -> String {
        let digest = Sha256::digest(&self.body);
        format!(
            "\"{}\"",
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }
}

/// A multipart upload in progress.
#[derive(Debug, Default)]
struct Parts {
    key: String,
    content_type: String,
    parts: BTreeMap<i32, Vec<u8>>,
}

/// Objects and multipart uploads in maps.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    objects: Mutex<BTreeMap<String, Object>>,
    uploads: Mutex<HashMap<String, Parts>>,
    next_upload: Mutex<u64>,
}

impl MemoryFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `object` at `key`, as a client's `PUT` through a presigned URL.
    pub fn insert(&self, key: &str, object: Object) {
        lock(&self.objects).insert(key.to_owned(), object);
    }

    /// Stores `body` at `key` as declared, tagged as a new upload is.
    pub fn insert_declared(&self, key: &str, declared: &Declared, body: Vec<u8>) {
        self.insert(
            key,
            Object {
                body,
                content_type: declared.content_type.clone(),
                metadata: HashMap::from([
                    (SHA256_METADATA.to_owned(), declared.sha256.clone()),
                    (SIZE_METADATA.to_owned(), declared.size.to_string()),
                ]),
                tags: HashMap::from([(KEEP_TAG.to_owned(), "2".to_owned())]),
            },
        );
    }

    /// The object at `key`, if there is one.
    pub fn object(&self, key: &str) -> Option<Object> {
        lock(&self.objects).get(key).cloned()
    }

    /// How many multipart uploads are started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        lock(&self.uploads).len()
    }
}

impl MemoryFiles {
    /// `body` uploaded by `owner` as `content_type`, as a client's `PUT`
    /// through its link stores it; the job's record of it, as the API
    /// makes it at submission.
    pub async fn upload(&self, owner: &str, body: &[u8], content_type: &str) -> InputFile {
        let declared = declare(body, content_type);
        let id = UploadId::new(crate::testing::now_ms());
        let key = upload_key(owner, id);
        self.insert_declared(&key, &declared, body.to_vec());
        let etag = self
            .object(&key)
            .map(|object| object.etag())
            .unwrap_or_default();
        InputFile {
            upload_id: id,
            key,
            etag,
            size: declared.size,
            content_type: declared.content_type,
            sha256: declared.sha256,
        }
    }
}

/// A handler's context on attempt 1 of a new job, reading `inputs` from
/// `files` and writing its outputs there, stopped by `stop`.
pub fn context(
    files: &Arc<MemoryFiles>,
    inputs: Vec<InputFile>,
    stop: CancellationToken,
) -> JobContext {
    JobContext::new(JobId::random(), 1, i64::MAX, stop).with_files(files.clone(), inputs)
}

/// A body handed over in chunks.
struct Body(std::vec::IntoIter<Vec<u8>>);

#[async_trait]
impl Chunks for Body {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FileError> {
        Ok(self.0.next())
    }
}

#[async_trait]
impl UploadFiles for MemoryFiles {
    async fn presign_upload(
        &self,
        key: &str,
        declared: &Declared,
        ttl: Duration,
    ) -> Result<PresignedUpload, FileError> {
        Ok(PresignedUpload {
            url: format!("memory://{key}"),
            headers: vec![("content-length".to_owned(), declared.size.to_string())],
            expires_at_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<StoredObject>, FileError> {
        Ok(self.object(key).map(|object| StoredObject {
            size: object.body.len() as u64,
            etag: object.etag(),
            content_type: Some(object.content_type.clone()),
            checksum_sha256: None,
            declared_sha256: object.metadata.get(SHA256_METADATA).cloned(),
            declared_size: object
                .metadata
                .get(SIZE_METADATA)
                .and_then(|n| n.parse().ok()),
        }))
    }

    async fn keep(&self, key: &str, days: u32) -> Result<(), FileError> {
        let mut objects = lock(&self.objects);
        let object = objects.get_mut(key).ok_or(FileError::NotFound)?;
        let current = object
            .tags
            .get(KEEP_TAG)
            .and_then(|days| days.parse::<u32>().ok());
        if current.is_none_or(|current| current < days) {
            object.tags.insert(KEEP_TAG.to_owned(), days.to_string());
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<OutputFile>, FileError> {
        Ok(lock(&self.objects)
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, object)| OutputFile {
                name: key[prefix.len()..].to_owned(),
                key: key.clone(),
                size: object.body.len() as u64,
            })
            .collect())
    }
}

#[async_trait]
impl JobFiles for MemoryFiles {
    async fn read(&self, key: &str, etag: &str, from: u64) -> Result<Box<dyn Chunks>, FileError> {
        let object = self.object(key).ok_or(FileError::NotFound)?;
        if object.etag() != etag {
            return Err(FileError::Changed);
        }
        let from = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(object.body.len());
        let chunks: Vec<Vec<u8>> = object.body[from..]
            .chunks(CHUNK_BYTES)
            .map(<[u8]>::to_vec)
            .collect();
        Ok(Box::new(Body(chunks.into_iter())))
    }

    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> Result<(), FileError> {
        self.insert(
            key,
            Object {
                body,
                content_type: content_type.to_owned(),
                ..Object::default()
            },
        );
        Ok(())
    }

    async fn start_parts(&self, key: &str, content_type: &str) -> Result<String, FileError> {
        let id = {
            let mut next = lock(&self.next_upload);
            *next += 1;
            format!("upload-{next}")
        };
        lock(&self.uploads).insert(
            id.clone(),
            Parts {
                key: key.to_owned(),
                content_type: content_type.to_owned(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn put_part(
        &self,
        _key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<String, FileError> {
        let mut uploads = lock(&self.uploads);
        let upload = uploads.get_mut(upload_id).ok_or(FileError::NotFound)?;
        upload.parts.insert(number, body);
        Ok(format!("\"part-{number}\""))
    }

    async fn complete_parts(
        &self,
        _key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), FileError> {
        let upload = lock(&self.uploads)
            .remove(upload_id)
            .ok_or(FileError::NotFound)?;
        if upload.parts.len() != etags.len() {
            return Err(FileError::Aws {
                operation: "CompleteMultipartUpload",
                source: "the parts listed are not the parts uploaded".into(),
            });
        }
        let body = upload.parts.into_values().flatten().collect();
        self.insert(
            &upload.key,
            Object {
                body,
                content_type: upload.content_type,
                ..Object::default()
            },
        );
        Ok(())
    }

    async fn abort_parts(&self, _key: &str, upload_id: &str) -> Result<(), FileError> {
        lock(&self.uploads).remove(upload_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryFiles;
    use crate::contract::files;
    use std::sync::Arc;

    #[tokio::test]
    async fn an_upload_is_read_as_declared_and_from_any_byte() {
        let memory = Arc::new(MemoryFiles::new());
        let put = async |key: &str, declared: &jobline_core::files::Declared, body: Vec<u8>| {
            memory.insert_declared(key, declared, body);
        };
        files::an_upload_is_read_as_declared_and_from_any_byte(memory.clone(), "alice", put).await;
    }

    #[tokio::test]
    async fn outputs_are_written_in_parts_and_only_when_finished() {
        let memory = Arc::new(MemoryFiles::new());
        files::outputs_are_written_in_parts_and_only_when_finished(memory.clone()).await;
        assert_eq!(
            memory.open_uploads(),
            0,
            "every unfinished upload was aborted"
        );
    }
}
