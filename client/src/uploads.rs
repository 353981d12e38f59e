//! Uploads: a file too large for a job's payload goes to storage first, and
//! the job names it (`{"input": {"upload": "<uploadId>"}}`).
//! [`Client::upload_file`] does the whole exchange: it hashes the file
//! (SHA-256, one streaming pass), asks for an upload (`POST /uploads` with
//! its size, type and hash: `201` with a presigned URL), sends the file to
//! that URL (`PUT`, streamed from the file, never held in memory, with
//! exactly the headers the API signed), then reads the upload back
//! (`GET /uploads/{id}`) until it is `complete`.

use crate::client::{Client, RawJson, Repeat, decode};
use crate::error::{BoxError, ClientError};
use crate::transport::{Body, full};
use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, SizeHint};
use serde::{Deserialize, Serialize, de};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

/// How much of the file is read at a time, to hash it and to send it.
const CHUNK_BYTES: usize = 256 * 1024;
/// The waits between the reads of an upload after its file was sent, until
/// it is `complete`.
const CONFIRM_WAITS_MS: [u64; 5] = [0, 250, 500, 1000, 2000];

pub use jobline_core::files::{InvalidUploadId, UploadId};

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    /// Its file has not arrived (yet).
    Pending,
    /// Its file arrived: a job may name it until `expiresAt`.
    Complete,
    /// Past its `expiresAt`: no job may name it.
    Expired,
}

impl fmt::Display for UploadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Complete => "complete",
            Self::Expired => "expired",
        })
    }
}

/// An upload as the API shows it (`GET /uploads/{id}`; the `201` of
/// `POST /uploads` adds [`upload`](Self::upload), where to send the file).
/// What was declared of its file (`size`, `contentType`, `sha256`) is
/// `None` where the API does not show it (a `pending` upload read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub upload_id: UploadId,
    pub status: UploadStatus,
    /// The file's size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// `type/subtype`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The file's SHA-256, 64 lowercase hex digits.
    #[serde(default)]
    pub sha256: Option<String>,
    pub created_at: String,
    /// After this no job may name it.
    pub expires_at: String,
    /// `/uploads/{id}` (in the `201`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
    /// Where to send the file (the `201` of `POST /uploads` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadTarget>,
}

impl Upload {
    /// The payload fragment naming it: `{"upload": "<uploadId>"}`, for a
    /// job's `input`.
    pub fn as_input(&self) -> Value {
        json!({ "upload": self.upload_id })
    }
}

/// Where and how to send an upload's file. Its `Debug` leaves out the URL's
/// query (its signature).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadTarget {
    /// `PUT`.
    pub method: String,
    /// The presigned URL.
    pub url: String,
    /// The headers to send with the file, exactly (they are signed).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: String,
}

impl fmt::Debug for UploadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("UploadTarget")
            .field("method", &self.method)
            .field("url", &format_args!("{url}?…"))
            .field("headers", &self.headers)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The body of `POST /uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUpload {
    pub size: u64,
    /// `type/subtype`.
    pub content_type: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

impl NewUpload {
    /// The declaration of `bytes` as `content_type`: their size and SHA-256.
    pub fn of(bytes: &[u8], content_type: &str) -> Self {
        Self {
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            sha256: hex(&Sha256::digest(bytes)),
        }
    }
}

/// What is sent to the upload's URL.
#[derive(Debug)]
enum Source {
    Bytes(Bytes),
    File { path: PathBuf, size: u64 },
}

impl Client {
    /// Uploads the file at `path` as `content_type` (`type/subtype`):
    /// hashes it, asks for an upload, sends the file streamed from disk,
    /// and returns the upload once the API says it is `complete`.
    ///
    /// ```no_run
    /// # async fn example(client: &jobline_client::Client) -> Result<(), jobline_client::ClientError> {
    /// use jobline_client::Submission;
    /// use serde_json::json;
    /// let upload = client.upload_file("sales.csv", "text/csv").await?;
    /// let job = Submission::new("csv-stats", json!({ "input": upload.as_input() }));
    /// client.submit(&job).await?;
    /// # Ok(()) }
    /// ```
    pub async fn upload_file(
        &self,
        path: impl AsRef<Path>,
        content_type: &str,
    ) -> Result<Upload, ClientError> {
        let path = path.as_ref().to_owned();
        let (size, sha256) = hash_file(&path).await?;
        let new = NewUpload {
            size,
            content_type: content_type.to_owned(),
            sha256,
        };
        self.upload_from(Source::File { path, size }, &new).await
    }

    /// Uploads `bytes` as `content_type`, as [`upload_file`](Self::upload_file) does a file.
    pub async fn upload_bytes(
        &self,
        bytes: impl Into<Bytes>,
        content_type: &str,
    ) -> Result<Upload, ClientError> {
        let bytes = bytes.into();
        let new = NewUpload::of(&bytes, content_type);
        self.upload_from(Source::Bytes(bytes), &new).await
    }

    /// `POST /uploads`: a `pending` upload, with where to send its file.
    /// A repeat after a lost answer leaves a second pending upload, which
    /// expires unused.
    pub async fn create_upload(&self, upload: &NewUpload) -> Result<Upload, ClientError> {
        let body = json!(upload);
        let created = self
            .call(Method::POST, "/uploads", Some(&body), Repeat::Safe)
            .await?;
        decode(created, "upload")
    }

    /// Sends `bytes` to the link of `upload`, as
    /// [`create_upload`](Self::create_upload) answered it, with exactly
    /// its signed headers: for a caller that declares and sends in steps of
    /// its own ([`upload_bytes`](Self::upload_bytes) does both, and waits
    /// until the upload is complete). The storage refuses bytes other than
    /// declared: [`ClientError::UploadRefused`].
    pub async fn send_upload(
        &self,
        upload: &Upload,
        bytes: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let target = upload.upload.as_ref().ok_or_else(|| {
            ClientError::InvalidRequest(
                "the upload has no link: only create_upload's answer carries one".into(),
            )
        })?;
        self.send_file(target, &Source::Bytes(bytes.into())).await
    }

    /// `GET /uploads/{id}`.
    pub async fn upload(&self, id: UploadId) -> Result<Upload, ClientError> {
        decode(self.json().upload(id).await?, "upload")
    }

    async fn upload_from(&self, source: Source, new: &NewUpload) -> Result<Upload, ClientError> {
        let created = self.create_upload(new).await?;
        let target = created.upload.as_ref().ok_or_else(|| ClientError::Decode {
            what: "upload",
            source: de::Error::missing_field("upload"),
        })?;
        self.send_file(target, &source).await?;
        self.confirm(created.upload_id).await
    }

    /// Sends `source` to the upload's URL, with exactly its headers (no
    /// credentials of the client's), retried like an API call.
    async fn send_file(&self, target: &UploadTarget, source: &Source) -> Result<(), ClientError> {
        if !target.method.eq_ignore_ascii_case("PUT") {
            return Err(ClientError::InvalidRequest(format!(
                "the API asks for the file with {}; this client sends it with PUT",
                target.method
            )));
        }
        let url: Uri = target
            .url
            .parse()
            .ok()
            .filter(|url: &Uri| matches!(url.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| {
                ClientError::InvalidRequest("the upload URL is not an http(s) URL".into())
            })?;
        let build = async || {
            let body: Body = match source {
                Source::Bytes(bytes) => full(bytes.clone()),
                Source::File { path, size } => FileBody::open(path, *size).await?.boxed(),
            };
            let mut request = Request::put(url.clone());
            for (name, value) in &target.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            request
                .body(body)
                .map_err(|e| ClientError::InvalidRequest(format!("the upload's headers: {e}")))
        };
        let answer = self
            .with_retries(
                &Method::PUT,
                &url,
                Repeat::Safe,
                self.transfer_timeout,
                build,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(ClientError::UploadRefused {
                status: answer.status,
                body: crate::client::shown_text(&answer.body),
            });
        }
        Ok(())
    }

    /// The upload, once the API says it is `complete` (read a few times
    /// over a few seconds).
    async fn confirm(&self, id: UploadId) -> Result<Upload, ClientError> {
        let mut status = UploadStatus::Pending;
        for wait in CONFIRM_WAITS_MS {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let read = self.upload(id).await?;
            status = read.status;
            match status {
                UploadStatus::Complete => return Ok(read),
                UploadStatus::Expired => break,
                UploadStatus::Pending => {}
            }
        }
        Err(ClientError::UploadIncomplete {
            id: id.to_string(),
            status: status.to_string(),
        })
    }
}

impl RawJson<'_> {
    /// [`Client::upload`]: the upload's JSON.
    pub async fn upload(&self, id: UploadId) -> Result<Value, ClientError> {
        let path = format!("/uploads/{id}");
        self.client
            .call(Method::GET, &path, None, Repeat::Safe)
            .await
    }
}

/// The size and SHA-256 (lowercase hex) of the file at `path`, read once in
/// chunks on a blocking thread.
async fn hash_file(path: &Path) -> Result<(u64, String), ClientError> {
    let owned = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; CHUNK_BYTES];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok((size, hex(&hasher.finalize())));
            }
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
    })
    .await
    .unwrap_or_else(|join| Err(std::io::Error::other(join)));
    hashed.map_err(|source| ClientError::File {
        path: path.to_owned(),
        source,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A request body read from a file as it is sent: exactly `size` bytes
/// (its `Content-Length`), or an error if the file has fewer.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buffer: Box<[u8]>,
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl FileBody {
    /// The file at `path`, which must still have `size` bytes.
    async fn open(path: &Path, size: u64) -> Result<Self, ClientError> {
        let failed = |source| ClientError::File {
            path: path.to_owned(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(failed)?;
        let now = file.metadata().await.map_err(failed)?.len();
        if now != size {
            return Err(failed(std::io::Error::other(format!(
                "the file changed since it was hashed: {size} bytes then, {now} now"
            ))));
        }
        Ok(Self {
            file,
            remaining: size,
            buffer: vec![0; CHUNK_BYTES].into_boxed_slice(),
        })
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let wanted = usize::try_from(this.remaining)
            .map_or(this.buffer.len(), |left| left.min(this.buffer.len()));
        let mut read = ReadBuf::new(&mut this.buffer[..wanted]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Some(Err(
                "the file became shorter while it was being sent".into(),
            ))),
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                this.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[test]
    fn upload_ids_are_hyphenated_uuids_only() {
        let id: UploadId = "0193f0a4-0000-7000-8000-000000000001".parse().unwrap();
        assert_eq!(id.to_string(), "0193f0a4-0000-7000-8000-000000000001");
        assert!("../admin".parse::<UploadId>().is_err());
        assert!(
            "0193f0a4000070008000000000000001"
                .parse::<UploadId>()
                .is_err()
        );
        assert_eq!(
            json!({"upload": id}),
            json!({"upload": "0193f0a4-0000-7000-8000-000000000001"})
        );
    }

    #[test]
    fn a_target_hides_its_signature_when_debugged() {
        let target = UploadTarget {
            method: "PUT".into(),
            url: "https://bucket.s3.amazonaws.com/u/1?X-Amz-Signature=secret".into(),
            headers: BTreeMap::new(),
            expires_at: "2027-03-01T08:15:00.000Z".into(),
        };
        let shown = format!("{target:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            shown.contains("https://bucket.s3.amazonaws.com/u/1?…"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn files_are_hashed_and_streamed_whole() {
        let path =
            std::env::temp_dir().join(format!("jobline-client-{}.bin", uuid::Uuid::new_v4()));
        let data: Vec<u8> = (0..CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (size, sha256) = hash_file(&path).await.unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(sha256, hex(&Sha256::digest(&data)));
        assert_eq!(sha256.len(), 64);

        let body = FileBody::open(&path, size).await.unwrap();
        assert_eq!(body.size_hint().exact(), Some(size));
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, data);

        let changed = FileBody::open(&path, size + 1).await;
        assert!(
            matches!(changed, Err(ClientError::File { .. })),
            "{changed:?}"
        );
        std::fs::remove_file(&path).unwrap();
        let missing = hash_file(&path).await.unwrap_err();
        assert!(missing.to_string().contains("jobline-client-"), "{missing}");
    }
}
