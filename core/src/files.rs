//! Files a job reads and writes, beside its JSON payload and result: the
//! model of uploads and outputs, and the two ports by role. Their adapter
//! is `jobline_s3::S3Files` (`adapters/s3/`), on the results bucket; their
//! fake `jobline_testkit::memory::files::MemoryFiles`.
//!
//! **Uploads** (the inputs). A request body stops at 256 KiB, so a caller
//! declares a file (`POST /uploads`: its size, content type and SHA-256)
//! and gets a presigned `PUT` that signs `Content-Length`, `Content-Type`
//! and `x-amz-checksum-sha256`: S3 then stores exactly the declared bytes
//! or nothing. A presigned POST's policy could only bound the size to a
//! range, and one request carries at most 5 GB either way
//! ([`MAX_UPLOAD_BYTES`]), so the PUT is the stricter of the two. The
//! object lives under the caller's own prefix ([`upload_key`]), so an id
//! named by another caller finds nothing. The declared values also travel
//! as signed metadata, which Jobline compares with the stored object at
//! submission ([`StoredObject::matches`]): the emulator checks no
//! signature, the real S3 all of them.
//!
//! An upload id is a UUID v7, so it carries its creation time: a job may
//! name an upload for [`UPLOAD_WINDOW`] from it ([`UploadId::usable_until`]),
//! which Jobline checks itself. Lifecycle rules clean up behind it: a new
//! upload arrives tagged [`KEEP_TAG`]`=2` (days); a job that names it
//! re-tags it to the smallest of [`KEEP_TIERS_DAYS`] that outlasts the
//! job's record ([`keep_days`]), never lowering it, so what a job reads is
//! there until its record expires. S3 counts a rule's days from the
//! object's creation, and CloudFormation cannot add a parameter to a
//! number, hence fixed tiers (`template.yaml` has one rule per tier).
//!
//! The API records each named upload on the job ([`InputFile`], with its
//! ETag), and the worker reads it with `If-Match` on that ETag
//! ([`JobFiles::read`]): a URL still valid could overwrite the object
//! after the job was accepted, and the job then fails rather than read
//! other bytes.
//!
//! **Outputs**. A handler writes a large output as a stream
//! ([`JobContext::create_output`](crate::job_types::JobContext::create_output)):
//! parts of [`PART_BYTES`] go up one at a time as a multipart upload,
//! completed once, under a key of its attempt ([`output_key`]), so a
//! superseded attempt never overwrites the outputs of the one that
//! finished the job, and its unfinished upload is aborted (and, should the
//! abort be lost, removed by the bucket's `AbortIncompleteMultipartUpload`
//! rule). `GET /jobs/{id}` lists the outputs of the attempt that finished
//! the job ([`output_prefix`]) and links each.

use crate::caller::CallerKey;
use crate::job::JobId;
use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// The largest upload: S3 takes at most 5 GB in one `PUT`.
pub const MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// How long after its creation a job may name an upload.
pub const UPLOAD_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How long an upload's presigned `PUT` stays valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(3600);

/// The most uploads one job may name.
pub const MAX_INPUTS: usize = 8;

/// The tag whose value (in days) says which lifecycle rule expires an upload.
pub const KEEP_TAG: &str = "jobline-keep";

/// The lifecycle tiers of uploads, in days from their creation: one rule
/// of `template.yaml` each. A new upload is kept for the first.
pub const KEEP_TIERS_DAYS: [u32; 9] = [2, 7, 30, 90, 180, 400, 800, 1600, 4100];

/// The size of an output's parts but its last (S3 takes at least 5 MiB
/// but for the last): a writer holds one part in memory at a time.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// The longest output name: `[A-Za-z0-9._-]`, not starting with a dot.
pub const MAX_OUTPUT_NAME_BYTES: usize = 128;

/// The metadata that carries the declared SHA-256 (hex) and size.
pub const SHA256_METADATA: &str = "jobline-sha256";
pub const SIZE_METADATA: &str = "jobline-size";

/// An upload's id: a UUID v7, whose first 48 bits are its creation time;
/// written and read only hyphenated, so an id is always one path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadId(Uuid);

/// Why a string is not an upload id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an upload id: expected a hyphenated UUID v7")]
pub struct InvalidUploadId;

impl Serialize for UploadId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UploadId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl UploadId {
    /// A new id, created at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        let ms = u64::try_from(now_ms).unwrap_or(0);
        let timestamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            ms / 1000,
            u32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
        );
        Self(Uuid::new_v7(timestamp))
    }

    /// When the upload was created (ms since the epoch).
    pub fn created_ms(self) -> i64 {
        let (secs, nanos) = self.0.get_timestamp().map_or((0, 0), |t| t.to_unix());
        i64::try_from(secs).unwrap_or(0) * 1000 + i64::from(nanos / 1_000_000)
    }

    /// The last moment a job may name it (ms since the epoch).
    pub fn usable_until(self) -> i64 {
        self.created_ms() + i64::try_from(UPLOAD_WINDOW.as_millis()).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for UploadId {
    type Err = InvalidUploadId;

    fn from_str(text: &str) -> Result<Self, InvalidUploadId> {
        Uuid::parse_str(text)
            .ok()
            .filter(|id| text.len() == 36 && id.get_version_num() == 7)
            .map(Self)
            .ok_or(InvalidUploadId)
    }
}

/// What a caller declares of a file before sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Declared {
    pub size: u64,
    pub content_type: String,
    /// The SHA-256 of the bytes, 64 lowercase hex digits.
    pub sha256: String,
}

impl Declared {
    /// Checks a declaration; the error names the field at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.size == 0 || self.size > MAX_UPLOAD_BYTES {
            return Err((
                "size",
                format!(
                    "size must be from 1 to {MAX_UPLOAD_BYTES} bytes (one PUT carries at most 5 GiB)"
                ),
            ));
        }
        if !valid_content_type(&self.content_type) {
            return Err((
                "contentType",
                "contentType must be a media type such as text/csv or image/png".to_owned(),
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err((
                "sha256",
                "sha256 must be 64 lowercase hexadecimal digits".to_owned(),
            ));
        }
        Ok(())
    }

    /// The SHA-256 as S3's `x-amz-checksum-sha256` carries it (base64).
    pub fn checksum_base64(&self) -> String {
        let bytes: Vec<u8> = (0..self.sha256.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&self.sha256[i..i + 2], 16).ok())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// `type/subtype` of token characters, at most 127 bytes, no parameters.
fn valid_content_type(text: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    text.len() <= 127
        && text
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s))
}

/// The object key of `owner`'s upload `id`.
pub fn upload_key(owner: &str, id: UploadId) -> String {
    format!("uploads/{}/{id}", CallerKey::of(owner))
}

/// Where every attempt of job `id` writes its outputs.
pub fn outputs_of(id: JobId) -> String {
    format!("outputs/{id}/")
}

/// Where attempt `attempt` of job `id` writes its outputs.
pub fn output_prefix(id: JobId, attempt: u32) -> String {
    format!("{}{attempt}/", outputs_of(id))
}

/// The key of output `name` of attempt `attempt` of job `id`.
pub fn output_key(id: JobId, attempt: u32, name: &str) -> String {
    format!("{}{name}", output_prefix(id, attempt))
}

/// Checks an output's name: a file name, not a path.
pub fn check_output_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_OUTPUT_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "an output's name is 1 to {MAX_OUTPUT_NAME_BYTES} of A-Z a-z 0-9 . _ -, not starting with a dot"
        )
    })
}

/// The tier (days from its creation at `created_ms`) that keeps an upload
/// until `until_secs` (a job record's expiry, seconds since the epoch),
/// never below `current` (what another job already asked for).
pub fn keep_days(created_ms: i64, until_secs: i64, current: Option<u32>) -> u32 {
    let needed = (until_secs * 1000 - created_ms)
        .max(0)
        .unsigned_abs()
        .div_ceil(86_400_000)
        + 1;
    let tier = KEEP_TIERS_DAYS
        .iter()
        .copied()
        .find(|days| u64::from(*days) >= needed)
        .unwrap_or(KEEP_TIERS_DAYS[KEEP_TIERS_DAYS.len() - 1]);
    tier.max(current.unwrap_or(0))
}

/// An upload a job reads, as the API found it at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputFile {
    pub upload_id: UploadId,
    pub key: String,
    /// The ETag the job reads it with (`If-Match`).
    pub etag: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
}

/// An object as `HeadObject` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub etag: String,
    pub content_type: Option<String>,
    /// S3's SHA-256 checksum of the whole object (base64), when it has one.
    pub checksum_sha256: Option<String>,
    /// The declaration the presigned `PUT` carried as metadata.
    pub declared_sha256: Option<String>,
    pub declared_size: Option<u64>,
}

impl StoredObject {
    /// Whether the object is what `declared` says: the size, content type
    /// and digest the upload was created with, each as declared and as
    /// stored.
    pub fn matches(&self, declared: &Declared) -> bool {
        self.size == declared.size
            && self.declared_size == Some(declared.size)
            && self.content_type.as_deref() == Some(declared.content_type.as_str())
            && self.declared_sha256.as_deref() == Some(declared.sha256.as_str())
            && self
                .checksum_sha256
                .as_deref()
                .is_none_or(|sum| sum == declared.checksum_base64())
    }

    /// The declaration the object carries, if it carries one.
    pub fn declared(&self) -> Option<Declared> {
        Some(Declared {
            size: self.declared_size?,
            content_type: self.content_type.clone()?,
            sha256: self.declared_sha256.clone()?,
        })
    }
}

/// A presigned `PUT`: send exactly these headers, or S3 refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// When the URL stops working (ms since the epoch).
    pub expires_at_ms: i64,
}

/// One output of a job, as listed under its attempt's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: String,
    pub key: String,
    pub size: u64,
}

/// A chunk reader of an object: the next bytes, `None` at its end.
#[async_trait]
pub trait Chunks: Send {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FileError>;
}

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such object")]
    NotFound,
    /// The object is no longer the one the job was accepted with (`If-Match`).
    #[error("the object changed")]
    Changed,
    #[error("S3 {operation} failed: {source}")]
    Aws {
        operation: &'static str,
        #[source]
        source: crate::error::BoxError,
    },
}

/// The API's side of files (`ApiFunctionRole`): presigning uploads,
/// checking them at submission, keeping them for the jobs that name them,
/// and listing a job's outputs.
#[async_trait]
pub trait UploadFiles: Send + Sync + std::fmt::Debug {
    /// A `PUT` of `declared` to `key`, valid for `ttl` from the store's
    /// clock; the object arrives tagged for the first keep tier.
    async fn presign_upload(
        &self,
        key: &str,
        declared: &Declared,
        ttl: Duration,
    ) -> Result<PresignedUpload, FileError>;

    /// The object at `key`, or `None`.
    async fn head(&self, key: &str) -> Result<Option<StoredObject>, FileError>;

    /// Keeps the object at `key` for `days` from its creation (its keep
    /// tag), unless it is already kept longer.
    async fn keep(&self, key: &str, days: u32) -> Result<(), FileError>;

    /// The objects under `prefix` (at most 1,000: one page).
    async fn list(&self, prefix: &str) -> Result<Vec<OutputFile>, FileError>;
}

/// The worker's side of files (`WorkerFunctionRole`): reading inputs and
/// writing outputs, as streams.
#[async_trait]
pub trait JobFiles: Send + Sync + std::fmt::Debug {
    /// The bytes of `key` from byte `from` on, only while its ETag is `etag`.
    async fn read(&self, key: &str, etag: &str, from: u64) -> Result<Box<dyn Chunks>, FileError>;

    /// Writes a whole small object.
    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> Result<(), FileError>;

    /// Starts a multipart upload: its id.
    async fn start_parts(&self, key: &str, content_type: &str) -> Result<String, FileError>;

    /// Uploads part `number` (from 1): its ETag.
    async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<String, FileError>;

    /// Completes the upload from its parts' ETags, in order.
    async fn complete_parts(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), FileError>;

    /// Aborts the upload, dropping its parts.
    async fn abort_parts(&self, key: &str, upload_id: &str) -> Result<(), FileError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_id_carries_its_creation_time() {
        let now = 1_796_651_013_948;
        let id = UploadId::new(now);
        assert_eq!(id.created_ms(), now);
        assert_eq!(id.usable_until(), now + 86_400_000);
        assert_eq!(id.to_string().parse::<UploadId>().unwrap(), id);
        assert!(Uuid::new_v4().to_string().parse::<UploadId>().is_err());
        assert!(
            id.0.simple().to_string().parse::<UploadId>().is_err(),
            "hyphenated only"
        );
        assert!("../admin".parse::<UploadId>().is_err());
    }

    #[test]
    fn declarations_name_the_field_at_fault() {
        let good = Declared {
            size: 3,
            content_type: "text/csv".into(),
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
        };
        assert_eq!(good.check(), Ok(()));
        // SHA-256("abc") as S3 shows it.
        assert_eq!(
            good.checksum_base64(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let field = |d: Declared| d.check().unwrap_err().0;
        assert_eq!(
            field(Declared {
                size: 0,
                ..good.clone()
            }),
            "size"
        );
        assert_eq!(
            field(Declared {
                size: MAX_UPLOAD_BYTES + 1,
                ..good.clone()
            }),
            "size"
        );
        assert_eq!(
            field(Declared {
                content_type: "text".into(),
                ..good.clone()
            }),
            "contentType"
        );
        assert_eq!(
            field(Declared {
                content_type: "text/csv; charset=utf-8".into(),
                ..good.clone()
            }),
            "contentType"
        );
        assert_eq!(
            field(Declared {
                sha256: good.sha256.to_uppercase(),
                ..good.clone()
            }),
            "sha256"
        );
    }

    #[test]
    fn uploads_live_under_their_owners_prefix() {
        let id = UploadId::new(0);
        assert_ne!(upload_key("alice", id), upload_key("bob", id));
        assert!(upload_key("alice", id).starts_with("uploads/"));
    }

    #[test]
    fn a_job_keeps_its_upload_in_the_smallest_tier_that_outlasts_it() {
        let day = 86_400_000;
        let created = 10 * day;
        // A job whose record expires 30 days later: 31 days, so the 90-day tier.
        let until = (created + 30 * day) / 1000;
        assert_eq!(keep_days(created, until, None), 90);
        assert_eq!(keep_days(created, until, Some(400)), 400, "never lowered");
        assert_eq!(keep_days(created, created / 1000, None), 2);
        assert_eq!(
            keep_days(created, (created + 10_000 * day) / 1000, None),
            4100
        );
    }

    #[test]
    fn output_names_are_file_names() {
        assert!(check_output_name("thumb-128.png").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", &"x".repeat(129)] {
            assert!(check_output_name(bad).is_err(), "{bad:?}");
        }
    }
}
