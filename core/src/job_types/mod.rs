//! The job-type API: a job type is a [`JobHandler`], run in a [`JobContext`]
//! (its deadline, cancellation, progress and checkpoints), and registered in
//! a [`JobTypes`] registry. The types themselves, the built-in ones
//! included, live in the `jobs/` crate (`jobline_jobs::registry()`), the one
//! [`JobTypes`] that both the API (to refuse unknown types and bad payloads
//! at submission) and the worker (to run them) are built with.
//!
//! A handler's error messages must never quote its input: the error is
//! stored with the job and shown to clients ([`payload_field`] and
//! [`payload_u64`] name the field, never the value).

mod streams;

pub use streams::{InputReader, Output, OutputWriter};

use crate::clock::Clock;
use crate::files::{InputFile, JobFiles, UploadId};
use crate::job::{JobId, Progress};
use crate::limits::CHECKPOINT_BUDGET_BYTES;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The peak memory a handler declares when it says nothing: enough for a
/// small JSON payload and result.
pub const DEFAULT_PEAK_MEMORY_BYTES: u64 = 8 * 1024 * 1024;

/// How a job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another try later (a timeout, a throttled dependency): the
    /// message comes back after a backoff, until the queue dead-letters it.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (bad input): the job fails at once.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: the handler saved its checkpoint
    /// ([`JobContext::save_checkpoint`]) and asks to go on in a new
    /// invocation. The job is queued again as a new message, which does not
    /// count toward the DLQ; a job cancelled by its client ends `cancelled`
    /// instead, and one past its maximum run time fails.
    #[error("the job yielded to continue later")]
    Continue,
}

/// What a handler knows about the attempt it runs, its stop signal, and
/// its ways to report back: [`progress`](Self::progress) and checkpoints.
///
/// A long job works in steps: after each it reports its progress, saves a
/// checkpoint (where to resume), and when [`is_cancelled`](Self::is_cancelled)
/// returns [`JobError::Continue`]. The worker records the checkpoint and
/// runs the job again in a new invocation, which finds it in
/// [`checkpoint`](Self::checkpoint). Progress and checkpoints are written at
/// the worker's heartbeats (at most one write per beat, whatever the handler
/// calls), and the checkpoint also when the handler yields, so a crash
/// resumes from the last checkpoint written.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobContext {
    /// The job being run.
    pub job_id: JobId,
    /// Which claim of the job this is (`job.attempts`): 1 on the first run,
    /// the same across processes and deliveries; continuations count.
    pub attempt: u32,
    /// When the worker cancels the attempt (ms since the epoch): the
    /// invocation's deadline less the reserve the worker keeps to record it,
    /// or the end of the job's maximum run time if that comes first.
    pub deadline_ms: i64,
    /// Fired at `deadline_ms`, when a client cancels the job, or when the
    /// attempt lost its lease. A handler must then stop soon (the worker
    /// waits `jobline_worker::STOP_GRACE`); one that does not stop gets its
    /// process ended, since nothing else can stop a blocking thread.
    pub cancel: CancellationToken,
    /// The checkpoint to resume from.
    resume_from: Option<Value>,
    reports: Reports,
    /// What progress reports are stamped with: the worker's clock.
    clock: Clock,
    /// Where inputs are read and outputs written (`None`: no bucket).
    files: Option<Arc<dyn JobFiles>>,
    /// The uploads the job names, as the API found them.
    inputs: Arc<[InputFile]>,
}

/// The progress and checkpoint a handler reported and the worker has not
/// written yet: the handler's [`JobContext`] fills it, the worker's
/// heartbeat takes from it.
#[derive(Debug, Clone, Default)]
pub struct Reports(Arc<Mutex<Unwritten>>);

/// See [`Reports::take`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unwritten {
    pub progress: Option<Progress>,
    pub checkpoint: Option<Value>,
}

impl Reports {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was reported since the last call, leaving nothing.
    pub fn take(&self) -> Unwritten {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what a write failed to store, unless something newer came.
    pub fn restore(&self, unwritten: Unwritten) {
        let mut pending = self.lock();
        if pending.progress.is_none() {
            pending.progress = unwritten.progress;
        }
        if pending.checkpoint.is_none() {
            pending.checkpoint = unwritten.checkpoint;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Unwritten> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl JobContext {
    pub fn new(job_id: JobId, attempt: u32, deadline_ms: i64, cancel: CancellationToken) -> Self {
        Self {
            job_id,
            attempt,
            deadline_ms,
            cancel,
            resume_from: None,
            reports: Reports::new(),
            clock: Clock::system(),
            files: None,
            inputs: Arc::from([]),
        }
    }

    /// Reads and writes the job's files in `files`; `inputs` are the
    /// uploads the job names ([`JobRecord::inputs`](crate::JobRecord::inputs)).
    #[must_use]
    pub fn with_files(mut self, files: Arc<dyn JobFiles>, inputs: Vec<InputFile>) -> Self {
        self.files = Some(files);
        self.inputs = inputs.into();
        self
    }

    /// The upload a payload's `{"upload": "<id>"}` names (`reference`), as
    /// the API recorded it; a permanent error if the job does not name it.
    pub fn input(&self, reference: &Value) -> Result<&InputFile, JobError> {
        let id = reference_upload(reference).map_err(JobError::Permanent)?;
        self.inputs
            .iter()
            .find(|input| input.upload_id == id)
            .ok_or_else(|| JobError::Permanent(format!("the job names no upload {id}")))
    }

    /// Reads `input` from byte `from` on (0: the start; a checkpoint's
    /// position to resume mid-file), only while it is the object the job
    /// was accepted with.
    pub async fn open_input(&self, input: &InputFile, from: u64) -> Result<InputReader, JobError> {
        InputReader::open(self.files()?.as_ref(), input, from).await
    }

    /// Starts output `name` (a file name), written as a stream under this
    /// attempt's prefix and listed with the job once it succeeds.
    pub fn create_output(&self, name: &str, content_type: &str) -> Result<OutputWriter, JobError> {
        OutputWriter::new(
            Arc::clone(self.files()?),
            self.job_id,
            self.attempt,
            name,
            content_type,
            self.cancel.clone(),
        )
    }

    fn files(&self) -> Result<&Arc<dyn JobFiles>, JobError> {
        self.files.as_ref().ok_or_else(|| {
            JobError::Permanent("this deployment has no bucket for files".to_owned())
        })
    }

    /// Stamps progress with `clock`'s time (the worker's).
    #[must_use]
    pub fn timed_by(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Resumes from `checkpoint`, which the last run saved.
    #[must_use]
    pub fn resuming_from(mut self, checkpoint: Option<Value>) -> Self {
        self.resume_from = checkpoint;
        self
    }

    /// Sends progress and checkpoints to `reports` (the worker's).
    #[must_use]
    pub fn reporting_to(mut self, reports: Reports) -> Self {
        self.reports = reports;
        self
    }

    /// Whether the attempt has been cancelled (cheap: for polling inside a
    /// loop every N iterations).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the attempt is cancelled (for `tokio::select!`).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// The key to hand other systems' idempotent APIs for this job's side
    /// effects: the same on every attempt and continuation. It is the job's
    /// id, which is derived from the caller's `Idempotency-Key` (and the
    /// caller) when one was sent, so a resubmission gets the same key.
    pub fn idempotency_key(&self) -> String {
        self.job_id.to_string()
    }

    /// Reports progress: `fraction` done (0 to 1) and what is being done
    /// (cut to 200 bytes). Cheap: only the latest report is kept, and the
    /// worker writes it at its next heartbeat; `GET /jobs/{id}` shows it.
    pub fn progress(&self, fraction: f64, message: &str) {
        self.reports.lock().progress = Some(Progress::new(fraction, message, self.clock.now_ms()));
    }

    /// The checkpoint the job's last run saved, to resume from; `None` on
    /// its first run (or if it never saved one).
    pub fn checkpoint(&self) -> Option<&Value> {
        self.resume_from.as_ref()
    }

    /// Saves where to resume (JSON of at most 16 KiB): written at the next
    /// heartbeat and when the handler returns [`JobError::Continue`]. A
    /// larger checkpoint is refused with a permanent error.
    pub fn save_checkpoint(&self, checkpoint: Value) -> Result<(), JobError> {
        let size = checkpoint.to_string().len();
        if size > CHECKPOINT_BUDGET_BYTES {
            return Err(JobError::Permanent(format!(
                "checkpoint is {size} bytes; the limit is {CHECKPOINT_BUDGET_BYTES}"
            )));
        }
        self.reports.lock().checkpoint = Some(checkpoint);
        Ok(())
    }
}

/// One job type.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The name clients put in `"type"`.
    fn name(&self) -> &str;

    /// Checks a payload's shape at submission, so a bad one gets a 422
    /// instead of a queued job that can only fail. The default accepts all.
    fn validate(&self, _payload: &Value) -> Result<(), String> {
        Ok(())
    }

    /// The most memory one run takes at the largest payload `validate`
    /// accepts. The worker runs at most `function memory / peak` jobs at once.
    fn peak_memory_bytes(&self) -> u64 {
        DEFAULT_PEAK_MEMORY_BYTES
    }

    /// Whether the type writes outputs ([`JobContext::create_output`]):
    /// `GET /jobs/{id}` then lists those of the attempt that finished the
    /// job, with a link each (one more request to the bucket per read of a
    /// succeeded job, so only for types that write some).
    fn writes_outputs(&self) -> bool {
        false
    }

    /// Runs the job. CPU-heavy work belongs in `spawn_blocking`, so the other
    /// jobs of the batch keep running, and must check `ctx.is_cancelled()`
    /// often enough to stop within a second of the signal. A job longer than
    /// one invocation saves checkpoints and returns [`JobError::Continue`]
    /// when cancelled (see [`JobContext`]).
    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError>;
}

/// The registry of job types, by name.
#[derive(Clone, Default)]
pub struct JobTypes {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for JobTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl JobTypes {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a job type.
    pub fn with(mut self, handler: impl JobHandler + 'static) -> Self {
        self.handlers
            .insert(handler.name().to_owned(), Arc::new(handler));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(name)
    }

    /// The largest [`JobHandler::peak_memory_bytes`] of the registered types.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.handlers
            .values()
            .map(|handler| handler.peak_memory_bytes())
            .max()
            .unwrap_or(DEFAULT_PEAK_MEMORY_BYTES)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

/// The upload id of a payload's reference to one, `{"upload": "<id>"}`.
pub fn reference_upload(reference: &Value) -> Result<UploadId, String> {
    reference
        .get("upload")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| "an input must be {\"upload\": \"<upload id>\"}".to_owned())
}

/// Reads an object field of a payload, for validation messages that name it.
pub fn payload_field<'a>(payload: &'a Value, name: &str) -> Result<&'a Value, String> {
    payload
        .as_object()
        .ok_or_else(|| "payload must be a JSON object".to_owned())?
        .get(name)
        .ok_or_else(|| format!("payload.{name} is required"))
}

/// Reads `payload.<name>` as an integer from 0 to `max`; the message names
/// the field and the range, never the value sent.
pub fn payload_u64(payload: &Value, name: &str, max: u64) -> Result<u64, String> {
    payload_field(payload, name)?
        .as_u64()
        .filter(|n| *n <= max)
        .ok_or_else(|| format!("payload.{name} must be an integer from 0 to {max}"))
}
