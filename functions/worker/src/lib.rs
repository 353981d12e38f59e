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
//! worker died runs again about two beats later. A refused claim returns
//! the current item (`ALL_OLD`), which says whether the delivery was a
//! duplicate (acknowledge), or the job is leased by a live attempt (retry
//! after the lease).
//!
//! Long jobs: a handler that returns [`JobError::Continue`] has its job
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
//! recognises the delivery's own write (see [`JobStore::claim`]): no second
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
//! Deadlines: a handler's [`JobContext`](jobline_shared::job_types::JobContext) is cancelled [`DEADLINE_RESERVE`]
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

mod delivery;
mod handler;
pub mod heartbeat;
pub mod restart;

use delivery::Delivery;
pub use handler::memory_bound_concurrency;
use handler::{Run, Stop, cancel_at_ms};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use futures_util::stream;
use jobline_shared::job::ClaimRefusal;
use jobline_shared::job_types::Reports;
use jobline_shared::queue::backoff::max_visibility_secs;
use jobline_shared::results::{MAX_LINKED_RESULT_BYTES, ResultStore, result_key};
use jobline_shared::{
    Clock, Completion, JobError, JobId, JobMessage, JobQueue, JobRecord, JobStore, JobTypes,
    Metric, Metrics, StoreError, WorkerConfig,
};
use serde_json::Value;
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
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    results: Option<Arc<dyn ResultStore>>,
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
        store: Arc<dyn JobStore>,
        queue: Arc<dyn JobQueue>,
        job_types: JobTypes,
        config: WorkerConfig,
    ) -> Self {
        let memory_mb = jobline_shared::config::function_memory_mb(|name| std::env::var(name).ok());
        let concurrency =
            memory_bound_concurrency(config.concurrency, memory_mb, job_types.peak_memory_bytes());
        Self {
            store,
            queue,
            results: None,
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

    /// Whole seconds from now until `at_ms` (rounded up; 0 if past).
    fn secs_until(&self, at_ms: i64) -> u32 {
        let ms = u64::try_from(self.clock.until(at_ms).as_millis()).unwrap_or(u64::MAX);
        u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)
    }

    /// Stores results over [`MAX_RESULT_BYTES`] in `results`.
    #[must_use]
    pub fn with_results(mut self, results: Arc<dyn ResultStore>) -> Self {
        self.results = Some(results);
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
        // The futures are built first: a `map` closure here would make the
        // batch future not `Send` for every lifetime (rust-lang/rust#102211).
        let jobs: Vec<_> = event
            .records
            .iter()
            .map(|record| self.process_record(record, invoked_at_ms, deadline_ms))
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

    /// Processes one record (parse, claim, run, complete) and logs its outcome.
    async fn process_record(
        &self,
        record: &SqsMessage,
        invoked_at_ms: i64,
        deadline_ms: i64,
    ) -> (Option<String>, Disposition, Metrics) {
        let started = Instant::now();
        let mut delivery = Delivery::new(record, invoked_at_ms);
        let disposition = self.settle(&mut delivery, deadline_ms).await;
        delivery.log(started);
        (record.message_id.clone(), disposition, delivery.metrics)
    }

    async fn settle(&self, delivery: &mut Delivery<'_>, deadline_ms: i64) -> Disposition {
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
            return self.send_again(delivery, &message, "sent-again").await;
        }
        self.run_job(delivery, message.job_id, deadline_ms).await
    }

    /// A record that must not count toward the DLQ (there is no time left
    /// to start it, or it is a duplicate of a running job on its last
    /// delivery): sent again as a new message (receive count 1) and
    /// acknowledged, its outcome `sent`. The new message may wait out a
    /// whole retention with its deliveries counted afresh, so the job's time
    /// bound is renewed first; if that or the send fails, the record is
    /// reported failed instead (a finished or missing job needs no renewal).
    async fn send_again(
        &self,
        delivery: &mut Delivery<'_>,
        message: &JobMessage,
        sent: &'static str,
    ) -> Disposition {
        match self
            .store
            .renew_due(message.job_id, self.clock.now_ms())
            .await
        {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(error) => {
                tracing::warn!(%error, jobId = %message.job_id, "could not renew a late job's time bound");
                delivery.outcome = "not-started";
                return self.retry_later(delivery, None).await;
            }
        }
        match self.queue.send(message).await {
            Ok(_) => {
                delivery.outcome = sent;
                Disposition::Acknowledged
            }
            Err(error) => {
                tracing::warn!(%error, messageId = delivery.message_id(), "could not send a late record again");
                delivery.outcome = "not-started";
                Disposition::Retry
            }
        }
    }

    async fn run_job(
        &self,
        delivery: &mut Delivery<'_>,
        id: JobId,
        deadline_ms: i64,
    ) -> Disposition {
        let lease_until_ms = self.clock.now_ms().saturating_add(self.lease_ms());
        let job = match self.claim(delivery, id, lease_until_ms).await {
            Ok(job) => job,
            Err(disposition) => return disposition,
        };
        delivery.job_type = Some(job.job_type.clone());
        delivery.attempt = Some(job.attempts);
        if job.cancel_requested {
            // Cancelled while its last attempt ran, which died before it
            // could stop: the claim after the lease ends finishes it.
            delivery.outcome = "cancelled";
            return self
                .complete(
                    delivery,
                    &job,
                    &Completion::Cancelled,
                    Metric::JobsCancelled,
                )
                .await;
        }
        if self.clock.now_ms() >= self.run_limit_at(&job) {
            return self.fail_at_run_limit(delivery, &job).await;
        }
        // Short at once: a crash now brings the message back within the lease.
        self.hide_for_lease(delivery, lease_until_ms).await;
        if job.attempts == 1
            && let Some(started) = job.started_at
        {
            delivery.metrics.record(
                &job.job_type,
                Metric::QueueTimeMs,
                (started - job.created_at) as f64,
            );
        }
        let started = Instant::now();
        let ran = self.run_handler(&job, delivery, deadline_ms).await;
        delivery.metrics.record(
            &job.job_type,
            Metric::JobDurationMs,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        let last_delivery = delivery.receive_count >= self.config.max_receive_count;
        match (ran.run, ran.stop) {
            (Run::Finished(Ok(result)), _) => match self.completion_of(&job, result).await {
                Ok(completion) => {
                    delivery.outcome = "succeeded";
                    self.complete(delivery, &job, &completion, Metric::JobsSucceeded)
                        .await
                }
                Err(JobError::Permanent(error)) => self.fail(delivery, &job, "failed", error).await,
                Err(_) => {
                    // The upload failed: the result is lost with this
                    // attempt, so the job runs again after its backoff.
                    delivery.outcome = "result-unstored";
                    self.retry_later(delivery, None).await
                }
            },
            // On the last delivery, an attempt stopped because its
            // heartbeats did not land (calls that hung) leaves no delivery
            // to run the job: it fails, dead-lettered, fenced by the attempt,
            // so a job another delivery took over is left alone.
            (Run::Finished(_), Some(Stop::LeaseLost)) if last_delivery => {
                self.dead_letter(delivery, &job, LEASE_LOST_ERROR.to_owned())
                    .await;
                Disposition::Retry
            }
            // Another delivery may hold the job, or it was finished for it:
            // nothing this attempt writes would be recorded.
            (Run::Finished(_), Some(Stop::LeaseLost)) => {
                delivery.outcome = "lease-lost";
                Disposition::Retry
            }
            (Run::Finished(Err(_)), Some(Stop::CancelRequested)) => {
                delivery.outcome = "cancelled";
                self.complete(
                    delivery,
                    &job,
                    &Completion::Cancelled,
                    Metric::JobsCancelled,
                )
                .await
            }
            (Run::Finished(Err(_)), Some(Stop::RunLimit)) => {
                self.fail_at_run_limit(delivery, &job).await
            }
            (Run::Finished(Err(JobError::Continue)), _) => {
                self.continue_later(delivery, &job, &ran.reports).await
            }
            (Run::Finished(Err(JobError::Permanent(error))), _) => {
                tracing::debug!(%error, jobId = %job.id, "job failed permanently");
                self.fail(delivery, &job, "failed", error).await
            }
            (Run::Finished(Err(JobError::Retryable(error))), _) if last_delivery => {
                self.dead_letter(delivery, &job, error).await;
                Disposition::Retry
            }
            (Run::Finished(Err(JobError::Retryable(error))), _) => {
                tracing::debug!(%error, jobId = %job.id, "job failed; will retry");
                delivery.outcome = "retrying";
                match self
                    .store
                    .return_to_queue(job.id, job.attempts, &delivery.token, &error)
                    .await
                {
                    Ok(()) => {}
                    Err(invalid @ StoreError::Invalid { .. }) => {
                        return self.fail_unstorable(delivery, &job, false, &invalid).await;
                    }
                    Err(return_error) => {
                        tracing::warn!(%return_error, jobId = %job.id, "could not return the job to the queue; its lease will expire");
                    }
                }
                delivery.metrics.count(&job.job_type, Metric::JobsRetried);
                self.retry_later(delivery, None).await
            }
            // No other delivery will run it: recording the failure cannot
            // overlap with a run.
            (Run::Overran, _) if last_delivery => {
                self.dead_letter(delivery, &job, TIMED_OUT_ERROR.to_owned())
                    .await;
                delivery.outcome = "overran";
                Disposition::Overran
            }
            (Run::Overran, _) => {
                // The process ends after the response, so the handler stops
                // with it; the message waits out the lease, then backs off.
                delivery.outcome = "overran";
                let lease_secs = self.secs_until(ran.lease_until_ms);
                let backoff = self.config.backoff().delay_secs(delivery.receive_count);
                self.retry_later(delivery, Some(lease_secs.saturating_add(backoff)))
                    .await;
                Disposition::Overran
            }
        }
    }

    /// How attempt `job`'s `result` is recorded: inline up to
    /// [`MAX_RESULT_BYTES`]; else, with a result store, uploaded under its
    /// attempt's key, up to [`MAX_LINKED_RESULT_BYTES`] (a failed upload is a
    /// retryable error); else a permanent error that says the limit.
    async fn completion_of(&self, job: &JobRecord, result: Value) -> Result<Completion, JobError> {
        let text = result.to_string();
        if text.len() <= MAX_RESULT_BYTES {
            return Ok(Completion::Succeeded(result));
        }
        let limit = if self.results.is_some() {
            MAX_LINKED_RESULT_BYTES
        } else {
            MAX_RESULT_BYTES
        };
        let Some(results) = self.results.as_ref().filter(|_| text.len() <= limit) else {
            return Err(JobError::Permanent(format!(
                "result is {} bytes; the limit is {limit}",
                text.len()
            )));
        };
        let key = result_key(job.id, job.attempts);
        match results.put(&key, text.into_bytes()).await {
            Ok(()) => Ok(Completion::SucceededLinked(key)),
            Err(error) => {
                tracing::warn!(%error, jobId = %job.id, "could not store the job's result");
                Err(JobError::Retryable(error.to_string()))
            }
        }
    }

    /// A continuation: the handler yielded, so its job goes back to the
    /// queue with its last checkpoint, as a new message (which counts its
    /// receives afresh), and this one is acknowledged. If the store write
    /// fails, the message comes back after the lease and the job resumes
    /// from the last checkpoint written; if only the send fails, the old
    /// message brings the job back after its backoff.
    async fn continue_later(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        reports: &Reports,
    ) -> Disposition {
        let checkpoint = reports.take().checkpoint;
        match self
            .store
            .suspend(
                job.id,
                job.attempts,
                &delivery.token,
                checkpoint.as_ref(),
                self.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {}
            Err(invalid @ StoreError::Invalid { .. }) => {
                return self.fail_unstorable(delivery, job, false, &invalid).await;
            }
            Err(error) => {
                tracing::warn!(%error, jobId = %job.id, "could not record the job's continuation");
                delivery.outcome = "unsuspended";
                return Disposition::Retry;
            }
        }
        match self.queue.send(&JobMessage { job_id: job.id }).await {
            Ok(_) => {
                delivery.outcome = "continued";
                delivery.metrics.count(&job.job_type, Metric::JobsContinued);
                Disposition::Acknowledged
            }
            Err(error) => {
                tracing::warn!(%error, jobId = %job.id, "could not send the job's continuation");
                delivery.outcome = "continuation-unsent";
                self.retry_later(delivery, None).await
            }
        }
    }

    /// Fails `job`, which reached its maximum run time.
    async fn fail_at_run_limit(&self, delivery: &mut Delivery<'_>, job: &JobRecord) -> Disposition {
        let error = format!(
            "the job ran longer than its limit of {} s",
            self.config.max_run_secs
        );
        self.fail(delivery, job, "run-limit", error).await
    }

    /// Fails `job` for good with `error` (no retry can help), the record's
    /// outcome `outcome`.
    async fn fail(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        outcome: &'static str,
        error: String,
    ) -> Disposition {
        delivery.outcome = outcome;
        let completion = Completion::Failed {
            error,
            dead_lettered: false,
        };
        self.complete(delivery, job, &completion, Metric::JobsFailed)
            .await
    }

    /// How long a claim or a heartbeat leases its job
    /// ([`heartbeat::lease_ms`]).
    fn lease_ms(&self) -> i64 {
        heartbeat::lease_ms(self.heartbeat_period())
    }

    pub(crate) fn heartbeat_period(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.heartbeat_secs.max(1)))
    }

    /// Hides the message until just after the lease ending at
    /// `lease_until_ms`: if the worker dies, the message comes back once
    /// another delivery may claim the job.
    pub(crate) async fn hide_for_lease(&self, delivery: &Delivery<'_>, lease_until_ms: i64) {
        self.set_visibility(delivery, self.secs_until(lease_until_ms).saturating_add(1))
            .await;
    }

    /// One claim of job `id` by `delivery`, at the time it returns with.
    async fn try_claim(
        &self,
        delivery: &Delivery<'_>,
        id: JobId,
        lease_until_ms: i64,
    ) -> (i64, Result<JobRecord, StoreError>) {
        let now = self.clock.now_ms();
        let claimed = self
            .store
            .claim(
                id,
                now,
                lease_until_ms,
                delivery.receive_count,
                &delivery.token,
            )
            .await;
        (now, claimed)
    }

    /// Claims job `id` for this delivery. A redrive of the job's dead letter
    /// replays it first; anything else that refuses the claim decides the
    /// record's disposition instead.
    async fn claim(
        &self,
        delivery: &mut Delivery<'_>,
        id: JobId,
        lease_until_ms: i64,
    ) -> Result<JobRecord, Disposition> {
        let (mut now, mut claimed) = self.try_claim(delivery, id, lease_until_ms).await;
        if let Err(StoreError::Conflict { current: Some(job) }) = &claimed
            && delivery
                .sent_at_ms
                .is_some_and(|sent| job.redriven_by(sent))
        {
            if let Err(error) = self.store.replay(id, self.clock.now_ms()).await {
                tracing::warn!(%error, jobId = %id, messageId = delivery.message_id(), "could not replay a redriven job");
                delivery.outcome = "replay-failed";
                return Err(self.retry_later(delivery, None).await);
            }
            tracing::debug!(jobId = %id, messageId = delivery.message_id(), "a redriven message replays its dead-lettered job");
            (now, claimed) = self.try_claim(delivery, id, lease_until_ms).await;
        }
        match claimed {
            Ok(job) => Ok(job),
            Err(StoreError::Conflict { current }) => {
                Err(self.refused(delivery, current.as_deref(), now).await)
            }
            Err(error @ StoreError::Invalid { .. }) => {
                // No retry can make the claim valid: leave the job as it is.
                tracing::error!(%error, jobId = %id, messageId = delivery.message_id(), "the store refused the job's claim as invalid; dropping the message");
                delivery.outcome = "unclaimable";
                Err(Disposition::Acknowledged)
            }
            Err(error) => {
                tracing::warn!(%error, jobId = %id, messageId = delivery.message_id(), "claim failed");
                delivery.outcome = "claim-failed";
                Err(self.retry_later(delivery, None).await)
            }
        }
    }

    /// Fails the job as dead-lettered on the message's last delivery, and
    /// makes the message visible at once, so SQS's next receive moves it to
    /// the DLQ.
    async fn dead_letter(&self, delivery: &mut Delivery<'_>, job: &JobRecord, error: String) {
        tracing::debug!(%error, jobId = %job.id, "job failed on its last delivery; dead-lettering");
        delivery.outcome = "dead-lettered";
        let completion = Completion::Failed {
            error,
            dead_lettered: true,
        };
        if self
            .complete(delivery, job, &completion, Metric::JobsFailed)
            .await
            == Disposition::Acknowledged
        {
            delivery
                .metrics
                .count(&job.job_type, Metric::JobsDeadLettered);
        }
        self.set_visibility(delivery, 0).await;
    }

    /// Writes the completion, fenced by the attempt; counts `metric` if it landed.
    async fn complete(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        completion: &Completion,
        metric: Metric,
    ) -> Disposition {
        match self
            .store
            .finish(
                job.id,
                job.attempts,
                &delivery.token,
                completion,
                self.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {
                delivery.metrics.count(&job.job_type, metric);
                Disposition::Acknowledged
            }
            Err(invalid @ StoreError::Invalid { .. }) => {
                let dead_lettered = matches!(
                    completion,
                    Completion::Failed {
                        dead_lettered: true,
                        ..
                    }
                );
                self.fail_unstorable(delivery, job, dead_lettered, &invalid)
                    .await
            }
            Err(error) => {
                // Fenced out (another attempt took the lease) or DynamoDB
                // failed: keep the message, so a later delivery settles it.
                tracing::warn!(%error, jobId = %job.id, "could not record the job's completion");
                delivery.outcome = "unrecorded";
                Disposition::Retry
            }
        }
    }

    /// The store refused the attempt's outcome as `invalid`: no retry can
    /// store it, so the job fails with the fixed [`UNSTORABLE_ERROR`] and
    /// the message is acknowledged. If even that is refused, the job is left
    /// as it is and the message still acknowledged (logged at `error`); only
    /// an outage (`Aws`) has the message delivered again.
    async fn fail_unstorable(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        dead_lettered: bool,
        invalid: &StoreError,
    ) -> Disposition {
        tracing::warn!(error = %invalid, jobId = %job.id, "the store refused the job's outcome as invalid; failing the job");
        delivery.outcome = "unstorable";
        let completion = Completion::Failed {
            error: UNSTORABLE_ERROR.to_owned(),
            dead_lettered,
        };
        match self
            .store
            .finish(
                job.id,
                job.attempts,
                &delivery.token,
                &completion,
                self.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {
                delivery.metrics.count(&job.job_type, Metric::JobsFailed);
                Disposition::Acknowledged
            }
            Err(error @ StoreError::Aws { .. }) => {
                tracing::warn!(%error, jobId = %job.id, "could not record the job's failure");
                self.retry_later(delivery, None).await
            }
            Err(error) => {
                tracing::error!(%error, jobId = %job.id, "the store refused even the job's fixed failure; dropping the message");
                Disposition::Acknowledged
            }
        }
    }

    /// Decides what a refused claim means, from the item DynamoDB returned.
    async fn refused(
        &self,
        delivery: &mut Delivery<'_>,
        current: Option<&JobRecord>,
        now: i64,
    ) -> Disposition {
        delivery.job_type = current.map(|job| job.job_type.clone());
        delivery.attempt = current.map(|job| job.attempts);
        match ClaimRefusal::from_current(current, now) {
            ClaimRefusal::Finished(state) => {
                tracing::debug!(%state, "duplicate delivery of a finished job");
                delivery.outcome = "duplicate";
                let job_type = current.map_or("unknown", |job| job.job_type.as_str());
                delivery
                    .metrics
                    .count(job_type, Metric::DuplicateDeliveries);
                Disposition::Acknowledged
            }
            // A duplicate of a job a live attempt holds is no failure of
            // the job: on its last delivery it goes on as a new message
            // rather than to the DLQ (whose alarm would fire for a job
            // that is fine), until it finds the job finished.
            ClaimRefusal::Leased { .. }
                if delivery.receive_count >= self.config.max_receive_count =>
            {
                let Some(job_id) = delivery.job_id else {
                    return self.retry_later(delivery, None).await;
                };
                self.send_again(delivery, &JobMessage { job_id }, "duplicate-carried-on")
                    .await
            }
            ClaimRefusal::Leased { until_ms } => {
                delivery.outcome = "leased";
                let secs = u32::try_from((until_ms - now + 999) / 1000).unwrap_or(u32::MAX);
                self.retry_later(delivery, Some(secs)).await
            }
            // The API sends a message only once its record is written, so no
            // record means it expired or was never written (a replayed dead
            // letter of a deleted job). One more delivery, for safety; a second
            // that still finds nothing is acknowledged: nothing to run.
            ClaimRefusal::Missing if delivery.receive_count >= 2 => {
                delivery.outcome = "missing";
                Disposition::Acknowledged
            }
            ClaimRefusal::Missing => {
                delivery.outcome = "not-yet-written";
                self.retry_later(delivery, None).await
            }
            ClaimRefusal::Raced => {
                delivery.outcome = "raced";
                self.retry_later(delivery, None).await
            }
        }
    }

    /// Hides the message for `secs` (default: the backoff for its receive
    /// count) and reports it failed.
    async fn retry_later(&self, delivery: &Delivery<'_>, secs: Option<u32>) -> Disposition {
        let secs = secs.unwrap_or_else(|| self.config.backoff().delay_secs(delivery.receive_count));
        self.set_visibility(delivery, secs).await;
        Disposition::Retry
    }

    async fn set_visibility(&self, delivery: &Delivery<'_>, secs: u32) {
        let Some(receipt) = delivery.record.receipt_handle.as_deref() else {
            return;
        };
        let secs = secs.min(max_visibility_secs(
            delivery.received_at_ms,
            self.clock.now_ms(),
        ));
        if let Err(error) = self.queue.change_visibility(receipt, secs).await {
            // The queue's own visibility timeout still brings it back.
            tracing::warn!(%error, messageId = delivery.message_id(), "could not change the message's visibility");
        }
    }
}

#[cfg(test)]
mod tests;
