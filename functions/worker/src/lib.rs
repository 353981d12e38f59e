//! The worker: processes one SQS batch and reports which messages failed.
//!
//! Each record is handled on its own, at most `concurrency` at once, and ends
//! in one of three ways: acknowledged (SQS deletes it), listed in
//! `batchItemFailures` (SQS delivers it again after its visibility timeout),
//! or, when its job could not even start before the deadline, sent again as a
//! new message and acknowledged, so that a large batch's late records do not
//! count receives toward the DLQ. With `ReportBatchItemFailures` on the event
//! source mapping, one bad record never fails or repeats its batch-mates.
//!
//! Per job the worker makes two DynamoDB writes and no reads, plus one write
//! a heartbeat while it runs (one read of a payload over 1 KiB, which the
//! store keeps out of the job item): a conditional claim (`queued → running`,
//! returning the job with `ALL_NEW`), then a heartbeat every
//! `HEARTBEAT_SECS` that renews the claim's short lease (two beats and a
//! second) and writes the handler's progress and checkpoint, and a
//! completion fenced by the claim's attempt number. The message's visibility
//! follows the lease (set at the claim and at each beat), so a job running
//! for an hour is not delivered again while its worker lives, and one whose
//! worker died runs again about two beats later. The claims of a batch
//! that end close together set theirs in one `ChangeMessageVisibilityBatch`
//! (one request for a batch of 10 claimed at once, rather than 10
//! `ChangeMessageVisibility`; see `hides.rs`); only claimed records are
//! hidden, never those still waiting for a slot. A refused claim returns
//! the current item (`ALL_OLD`), which says whether the delivery was a
//! duplicate (acknowledge), or the job is leased by a live attempt (retry
//! after the lease).
//!
//! Long jobs: a handler that returns
//! [`JobError::Continue`](jobline_core::JobError::Continue) has its job
//! queued again with its checkpoint, as a new message (receive count 1: a
//! continuation never moves toward the DLQ), and its message acknowledged.
//! A client's cancel reaches a running handler through its heartbeat's
//! answer; a job past `MAX_JOB_RUN_SECS` from its run's first start fails
//! (a replay starts a new run).
//!
//! The heartbeat is a task of its own ([`heartbeat`]): a beat whose call
//! hangs cannot keep the watchdog from stopping the handler before the
//! lease ends. Duplicates of a job a live attempt holds are put off until
//! the lease ends and, on their last delivery, go on as new messages rather
//! than to the DLQ.
//!
//! Each delivery claims with its own random token, so when a write lands
//! but its answer is lost and the SDK's retry is refused, the store
//! recognises the delivery's own write (see [`WorkerStore::claim`]): no second
//! attempt, no lease to wait out, no false "unrecorded" completion.
//!
//! A message sent after its job was dead-lettered is a redrive (SQS's "start
//! DLQ redrive", `StartMessageMoveTask`, sends each dead letter as a new
//! message): the job is replayed in the store, as `jobline dlq replay`
//! does, and run again. Copies of the original delivery were sent before
//! the job finished, and stay duplicates.
//!
//! A write the store refuses as invalid (an item over DynamoDB's 400 KB)
//! cannot succeed on a retry: the job fails with [`UNSTORABLE_ERROR`] and
//! the message is acknowledged, also when even that write is refused.
//!
//! Deadlines: a handler's [`JobContext`](jobline_core::job_types::JobContext) is cancelled [`DEADLINE_RESERVE`]
//! before the invocation's deadline; a handler still running [`STOP_GRACE`]
//! later has overrun. Its job is not returned to the queue (a new run would
//! overlap with it) and the batch asks for the process to end after the
//! response ([`BatchOutcome::must_restart`], see [`restart`]).
//!
//! Memory: the jobs of a batch run at most `min(WORKER_CONCURRENCY,
//! (function memory − runtime) / the job types' largest peak)` at once
//! ([`memory_bound_concurrency`]), so the built-in types at their largest
//! payloads fit even the smallest function.
//!
//! Logs: one `info` line per record with flat fields (`jobId`, `messageId`,
//! `jobType`, `attempt`, `outcome`, `durationMs`); AWS failures at `warn`,
//! everything else at `debug`. The batch's metrics are written (EMF) here,
//! once per batch, for every entry point.
//!
//! The files: this one takes a batch and settles each record; `claim.rs`
//! claims its job (and reads a refused claim); `hides.rs` sends the claims'
//! visibility changes of one invocation together; `outcome.rs` runs a claimed
//! job and records how it ended; `handler.rs` runs the handler under its
//! watchdog, [`heartbeat`] renews its lease; `delivery.rs` is one record's
//! delivery as the worker sees it; [`restart`] ends a process whose handler
//! overran.

mod claim;
mod delivery;
mod handler;
pub mod heartbeat;
mod hides;
mod outcome;
pub mod restart;

use delivery::Delivery;
use handler::cancel_at_ms;
pub use handler::memory_bound_concurrency;
use hides::ClaimHides;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use futures_util::stream;
use jobline_core::files::JobFiles;
use jobline_core::results::ResultStore;
use jobline_core::{Clock, JobMessage, JobQueue, JobTypes, Metrics, WorkerConfig, WorkerStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest result kept in the job's DynamoDB item (400 KB, beside a
/// payload of up to 256 KiB); a larger one goes to the result store, if the
/// worker has one, else fails the job.
pub const MAX_RESULT_BYTES: usize = 100 * 1024;

/// Time kept back from the Lambda deadline: a job's context is cancelled
/// this long before it, leaving [`STOP_GRACE`] for the handler to stop and
/// the rest to record the attempt and respond.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(2);

/// How long after its cancellation a handler may take to stop before it
/// counts as overrun.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// A job is not started with less than this left before its cancellation:
/// its record is sent again instead.
pub const MIN_RUN_TIME: Duration = Duration::from_secs(1);

/// Memory kept for the runtime, the SDK clients and the batch itself, out of
/// the function's, before counting job memory.
pub const RUNTIME_MEMORY_BYTES: u64 = 48 * 1024 * 1024;

/// Stored as the job's error when its type is unknown here. Retryable:
/// during a deploy the API may accept a type this worker does not know yet.
pub const UNKNOWN_TYPE_ERROR: &str = "this worker does not know the job's type (yet)";

/// Stored as the job's error when its last delivery's attempt was stopped
/// because none of its heartbeats landed in time.
pub const LEASE_LOST_ERROR: &str =
    "the last attempt was stopped: its heartbeats could not renew its lease in time";

/// Stored as the job's error when its attempt was cancelled at the deadline.
pub const TIMED_OUT_ERROR: &str = "attempt timed out at the invocation deadline";

/// Stored as the job's error when the store refused to record its outcome
/// as invalid (e.g. the job's item would exceed DynamoDB's 400 KB).
pub const UNSTORABLE_ERROR: &str =
    "the job's outcome could not be stored: the job's record would be invalid (too large)";

/// The answer to one batch, and its metrics (already emitted).
#[derive(Debug)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    pub metrics: Metrics,
    /// A handler overran its deadline and may still be running: the process
    /// must end once the response is posted.
    pub must_restart: bool,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done with (finished, duplicate, sent again, or not worth retrying): delete it.
    Acknowledged,
    /// Leave it to SQS to deliver again.
    Retry,
    /// As `Retry`, but the handler did not stop at its deadline: the process
    /// must end.
    Overran,
}

/// The worker, with its store, queue, job types and settings.
pub struct Worker {
    store: Arc<dyn WorkerStore>,
    queue: Arc<dyn JobQueue>,
    results: Option<Arc<dyn ResultStore>>,
    /// Where handlers read their inputs and write their outputs.
    files: Option<Arc<dyn JobFiles>>,
    job_types: JobTypes,
    config: WorkerConfig,
    concurrency: usize,
    clock: Clock,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("job_types", &self.job_types)
            .field("config", &self.config)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker; it runs at most [`memory_bound_concurrency`] jobs at once,
    /// reading the function's memory from `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub fn new(
        store: Arc<dyn WorkerStore>,
        queue: Arc<dyn JobQueue>,
        job_types: JobTypes,
        config: WorkerConfig,
    ) -> Self {
        let memory_mb = jobline_core::config::function_memory_mb(|name| std::env::var(name).ok());
        let concurrency =
            memory_bound_concurrency(config.concurrency, memory_mb, job_types.peak_memory_bytes());
        Self {
            store,
            queue,
            results: None,
            files: None,
            job_types,
            config,
            concurrency,
            clock: Clock::system(),
        }
    }

    /// Reads the time from `clock` (the tests' movable one).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Stores results over [`MAX_RESULT_BYTES`] in `results`.
    #[must_use]
    pub fn with_results(mut self, results: Arc<dyn ResultStore>) -> Self {
        self.results = Some(results);
        self
    }

    /// Lets handlers read the uploads their jobs name and write outputs,
    /// in `files`.
    #[must_use]
    pub fn with_files(mut self, files: Arc<dyn JobFiles>) -> Self {
        self.files = Some(files);
        self
    }

    /// How many jobs of a batch run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Processes a batch before `deadline_ms` (the Lambda deadline, ms since
    /// the epoch), lists the records to deliver again, and emits the batch's
    /// metrics.
    pub async fn process_batch(&self, event: SqsEvent, deadline_ms: i64) -> BatchOutcome {
        let invoked_at_ms = self.clock.now_ms();
        let hides = self.claim_hides();
        // The futures are built first: a `map` closure here would make the
        // batch future not `Send` for every lifetime (rust-lang/rust#102211).
        let jobs: Vec<_> = event
            .records
            .iter()
            .map(|record| self.process_record(record, &hides, invoked_at_ms, deadline_ms))
            .collect();
        let outcomes: Vec<(Option<String>, Disposition, Metrics)> = stream::iter(jobs)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut metrics = Metrics::new();
        let mut response = SqsBatchResponse::default();
        let mut must_restart = false;
        for (message_id, disposition, record_metrics) in outcomes {
            metrics.merge(record_metrics);
            must_restart |= disposition == Disposition::Overran;
            if disposition != Disposition::Acknowledged {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id.unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        metrics.emit();
        if must_restart {
            tracing::error!(
                "a job's handler did not stop at its deadline and may still be running; \
                 this process must end after the response"
            );
        }
        BatchOutcome {
            response,
            metrics,
            must_restart,
        }
    }

    /// The claims' hides of one invocation, to share among its records.
    fn claim_hides(&self) -> ClaimHides {
        ClaimHides::new(Arc::clone(&self.queue))
    }

    /// Processes one record (parse, claim, run, complete), its claim's hide
    /// shared through `hides`, and logs its outcome.
    async fn process_record(
        &self,
        record: &SqsMessage,
        hides: &ClaimHides,
        invoked_at_ms: i64,
        deadline_ms: i64,
    ) -> (Option<String>, Disposition, Metrics) {
        let started = Instant::now();
        let mut delivery = Delivery::new(record, invoked_at_ms);
        let disposition = self.settle(&mut delivery, hides, deadline_ms).await;
        delivery.log(started);
        (record.message_id.clone(), disposition, delivery.metrics)
    }

    async fn settle(
        &self,
        delivery: &mut Delivery<'_>,
        hides: &ClaimHides,
        deadline_ms: i64,
    ) -> Disposition {
        let message = match JobMessage::decode(delivery.record.body.as_deref().unwrap_or_default())
        {
            Ok(message) => message,
            Err(error) => {
                // Left to the redrive policy: after maxReceiveCount deliveries
                // SQS moves it to the DLQ, where an operator can see it.
                tracing::debug!(%error, messageId = delivery.message_id(), "malformed message");
                delivery.outcome = "malformed";
                return self.retry_later(delivery, None).await;
            }
        };
        delivery.job_id = Some(message.job_id);
        if self.clock.until(cancel_at_ms(deadline_ms)) < MIN_RUN_TIME {
            let again = delivery.message(message.job_id);
            return self.send_again(delivery, &again, "sent-again").await;
        }
        self.run_job(delivery, hides, message.job_id, deadline_ms)
            .await
    }
}

#[cfg(test)]
mod tests;
