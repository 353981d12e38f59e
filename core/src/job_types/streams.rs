//! A handler's files as streams ([`crate::files`]): [`InputReader`] reads
//! an upload the job names in chunks from any byte on (a continuation
//! resumes mid-file from its checkpoint), and [`OutputWriter`] writes an
//! output of any size in parts of [`PART_BYTES`], one at a time. So a
//! handler's memory is bounded whatever the file's size: one part, plus
//! the reader's chunk (as S3's connection hands it over: up to about 400 KiB
//! on loopback, `scripts/bench --only files`), plus what the handler itself
//! keeps.
//!
//! The errors they return are fixed texts fit for clients (the job's
//! error); the store's own goes to the logs.

use crate::files::{FileError, InputFile, JobFiles, PART_BYTES, check_output_name, output_key};
use crate::job::JobId;
use crate::job_types::JobError;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// Reads one input from a byte on; see [`JobContext::open_input`](super::JobContext::open_input).
pub struct InputReader {
    chunks: Box<dyn crate::files::Chunks>,
    upload: String,
    position: u64,
    size: u64,
}

impl std::fmt::Debug for InputReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputReader")
            .field("upload", &self.upload)
            .field("position", &self.position)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl InputReader {
    /// Opens `input` at byte `from`.
    pub(crate) async fn open(
        files: &dyn JobFiles,
        input: &InputFile,
        from: u64,
    ) -> Result<Self, JobError> {
        let upload = input.upload_id.to_string();
        let chunks = if from >= input.size {
            Box::new(Empty) as Box<dyn crate::files::Chunks>
        } else {
            files
                .read(&input.key, &input.etag, from)
                .await
                .map_err(|error| read_error(&upload, &error))?
        };
        Ok(Self {
            chunks,
            upload,
            position: from.min(input.size),
            size: input.size,
        })
    }

    /// The next bytes; `None` at the end of the file.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, JobError> {
        let chunk = self
            .chunks
            .next_chunk()
            .await
            .map_err(|error| read_error(&self.upload, &error))?;
        if let Some(bytes) = &chunk {
            self.position += bytes.len() as u64;
        }
        Ok(chunk)
    }

    /// The byte after the last one read: where a checkpoint resumes.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The input's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The chunks of an input read from its end: none.
struct Empty;

#[async_trait::async_trait]
impl crate::files::Chunks for Empty {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FileError> {
        Ok(None)
    }
}

fn read_error(upload: &str, error: &FileError) -> JobError {
    match error {
        FileError::NotFound => JobError::Permanent(format!(
            "input upload {upload} is gone: it was deleted or expired"
        )),
        FileError::Changed => JobError::Permanent(format!(
            "input upload {upload} was overwritten after the job was accepted"
        )),
        FileError::Aws { .. } => {
            tracing::warn!(%error, upload, "reading an input failed");
            JobError::Retryable(format!("could not read input upload {upload}"))
        }
    }
}

fn write_error(name: &str, error: &FileError) -> JobError {
    tracing::warn!(%error, output = name, "writing an output failed");
    JobError::Retryable(format!("could not write output {name}"))
}

/// One output written as a stream; see [`JobContext::create_output`](super::JobContext::create_output).
///
/// Written in parts of [`PART_BYTES`]; a small output goes up in one `PUT`
/// at [`finish`](Self::finish). An output not finished (the handler failed,
/// or its attempt was stopped) has its multipart upload aborted.
pub struct OutputWriter {
    files: Arc<dyn JobFiles>,
    name: String,
    key: String,
    content_type: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    etags: Vec<String>,
    size: u64,
    /// The attempt's stop signal: an attempt that lost its lease or was
    /// cancelled completes nothing.
    stop: CancellationToken,
    finished: bool,
}

impl std::fmt::Debug for OutputWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWriter")
            .field("key", &self.key)
            .field("size", &self.size)
            .field("parts", &self.etags.len())
            .finish_non_exhaustive()
    }
}

/// An output as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub name: String,
    pub size: u64,
}

impl OutputWriter {
    pub(crate) fn new(
        files: Arc<dyn JobFiles>,
        job: JobId,
        attempt: u32,
        name: &str,
        content_type: &str,
        stop: CancellationToken,
    ) -> Result<Self, JobError> {
        check_output_name(name).map_err(JobError::Permanent)?;
        Ok(Self {
            files,
            name: name.to_owned(),
            key: output_key(job, attempt, name),
            content_type: content_type.to_owned(),
            buffer: Vec::new(),
            upload_id: None,
            etags: Vec::new(),
            size: 0,
            stop,
            finished: false,
        })
    }

    /// Appends `bytes`; a full part goes up before this returns.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), JobError> {
        while !bytes.is_empty() {
            let room = PART_BYTES - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            // Grown once to a whole part rather than doubled into one:
            // doubling would hold the old buffer and its copy at once.
            if self.buffer.len() + now.len() > self.buffer.capacity() {
                self.buffer.reserve_exact(PART_BYTES - self.buffer.len());
            }
            self.buffer.extend_from_slice(now);
            self.size += now.len() as u64;
            bytes = rest;
            if self.buffer.len() == PART_BYTES {
                self.put_part().await?;
            }
        }
        Ok(())
    }

    async fn put_part(&mut self) -> Result<(), JobError> {
        if self.etags.len() == MAX_PARTS {
            return Err(JobError::Permanent(format!(
                "output {} is larger than {MAX_PARTS} parts of {PART_BYTES} bytes",
                self.name
            )));
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .files
                    .start_parts(&self.key, &self.content_type)
                    .await
                    .map_err(|e| write_error(&self.name, &e))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let body = std::mem::take(&mut self.buffer);
        let number = i32::try_from(self.etags.len() + 1).unwrap_or(i32::MAX);
        let etag = self
            .files
            .put_part(&self.key, &upload_id, number, body)
            .await
            .map_err(|e| write_error(&self.name, &e))?;
        self.etags.push(etag);
        Ok(())
    }

    /// Completes the output, once: its name and size. An attempt already
    /// stopped (its lease lost, its job cancelled) completes nothing.
    pub async fn finish(mut self) -> Result<Output, JobError> {
        if self.stop.is_cancelled() {
            return Err(JobError::Retryable(format!(
                "output {} was not completed: the attempt was stopped",
                self.name
            )));
        }
        match self.upload_id.clone() {
            None => {
                let body = std::mem::take(&mut self.buffer);
                self.files
                    .put(&self.key, &self.content_type, body)
                    .await
                    .map_err(|e| write_error(&self.name, &e))?;
            }
            Some(upload_id) => {
                if !self.buffer.is_empty() {
                    self.put_part().await?;
                }
                self.files
                    .complete_parts(&self.key, &upload_id, &self.etags)
                    .await
                    .map_err(|e| write_error(&self.name, &e))?;
            }
        }
        self.finished = true;
        Ok(Output {
            name: self.name.clone(),
            size: self.size,
        })
    }
}

impl Drop for OutputWriter {
    /// Aborts an upload left unfinished, in the background (a drop cannot
    /// wait); the bucket's rule removes any whose abort is lost.
    fn drop(&mut self) {
        let (false, Some(upload_id)) = (self.finished, self.upload_id.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let files = Arc::clone(&self.files);
        let key = std::mem::take(&mut self.key);
        runtime.spawn(async move {
            if let Err(error) = files.abort_parts(&key, &upload_id).await {
                tracing::warn!(%error, key, "could not abort an unfinished output");
            }
        });
    }
}
