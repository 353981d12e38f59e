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
//! Per job the worker makes two DynamoDB writes and no reads: a conditional
//! claim (`queued → running`, returning the job with `ALL_NEW`) and a
//! completion fenced by the claim's attempt number. A refused claim returns
//! the current item (`ALL_OLD`), which says whether the delivery was a
//! duplicate (acknowledge), or the job is leased by a live attempt (retry
//! after the lease).
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
//! Deadlines: a handler's [`JobContext`] is cancelled [`DEADLINE_RESERVE`]
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

pub mod backoff;
pub mod restart;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream;
use futures_util::{FutureExt, StreamExt};
use jobline_shared::job::{ClaimRefusal, now_ms};
use jobline_shared::job_types::JobContext;
use jobline_shared::{
    Completion, JobError, JobId, JobMessage, JobQueue, JobRecord, JobStore, JobTypes, Metric,
    Metrics, StoreError, WorkerConfig,
};
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A result larger than this fails the job: it must fit in the job's
/// DynamoDB item (400 KB) beside a payload of up to 256 KiB.
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

/// A lease outlives the invocation's deadline by this much, for clock skew.
pub const LEASE_MARGIN_MS: i64 = 1_000;

/// Memory kept for the runtime, the SDK clients and the batch itself, out of
/// the function's, before counting job memory.
pub const RUNTIME_MEMORY_BYTES: u64 = 48 * 1024 * 1024;

/// Stored as the job's error when its type is unknown here. Retryable:
/// during a deploy the API may accept a type this worker does not know yet.
pub const UNKNOWN_TYPE_ERROR: &str = "this worker does not know the job's type (yet)";

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

/// How many jobs run at once: `configured`, but no more than fit in the
/// function's memory (`memory_mb`, from Lambda) at `peak_bytes` each, after
/// [`RUNTIME_MEMORY_BYTES`]; always at least one.
pub fn memory_bound_concurrency(
    configured: usize,
    memory_mb: Option<u32>,
    peak_bytes: u64,
) -> usize {
    let Some(memory_mb) = memory_mb else {
        return configured.max(1);
    };
    let budget = (u64::from(memory_mb) * 1024 * 1024).saturating_sub(RUNTIME_MEMORY_BYTES);
    let fits = usize::try_from(budget / peak_bytes.max(1)).unwrap_or(usize::MAX);
    configured.min(fits).max(1)
}

/// The worker, with its store, queue, job types and settings.
pub struct Worker {
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    job_types: JobTypes,
    config: WorkerConfig,
    concurrency: usize,
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

/// One SQS delivery of a record, as far as it got, and its log line's fields.
struct Delivery<'a> {
    record: &'a SqsMessage,
    receive_count: u32,
    /// When this receive happened, or a time after it: SQS's 12-hour
    /// visibility cap counts from it.
    received_at_ms: i64,
    /// `SentTimestamp`: when the message was sent (a redrive sends anew).
    sent_at_ms: Option<i64>,
    /// This delivery's claim token, random: it names this delivery's writes.
    token: String,
    metrics: Metrics,
    job_id: Option<JobId>,
    job_type: Option<String>,
    attempt: Option<u32>,
    outcome: &'static str,
}

impl<'a> Delivery<'a> {
    fn new(record: &'a SqsMessage, invoked_at_ms: i64) -> Self {
        let receive_count = attribute(record, "ApproximateReceiveCount").unwrap_or(1);
        // The first receive's time is known; a later one's happened before
        // the invocation started.
        let first_receive: Option<i64> = (receive_count == 1)
            .then(|| attribute(record, "ApproximateFirstReceiveTimestamp"))
            .flatten();
        Self {
            record,
            receive_count,
            received_at_ms: first_receive.map_or(invoked_at_ms, |at| at.min(invoked_at_ms)),
            sent_at_ms: attribute(record, "SentTimestamp"),
            token: format!("{:032x}", fastrand::u128(..)),
            metrics: Metrics::new(),
            job_id: None,
            job_type: None,
            attempt: None,
            outcome: "unknown",
        }
    }

    fn message_id(&self) -> &str {
        self.record.message_id.as_deref().unwrap_or_default()
    }

    fn log(&self, started: Instant) {
        tracing::info!(
            jobId = self.job_id.map(|id| id.to_string()).unwrap_or_default(),
            messageId = self.message_id(),
            jobType = self.job_type.as_deref().unwrap_or_default(),
            attempt = self.attempt.unwrap_or_default(),
            outcome = self.outcome,
            durationMs = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "job outcome"
        );
    }
}

fn attribute<T: std::str::FromStr>(record: &SqsMessage, name: &str) -> Option<T> {
    record.attributes.get(name)?.parse().ok()
}

/// Whole seconds from now until `at_ms` (rounded up; 0 if past).
fn secs_until(at_ms: i64) -> u32 {
    let ms = u64::try_from(at_ms.saturating_sub(now_ms())).unwrap_or(0);
    u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)
}

/// How a handler's run ended.
enum Run {
    Finished(Result<Value, JobError>),
    /// Still running after its cancellation and [`STOP_GRACE`].
    Overran,
}

/// `deadline_ms` less [`DEADLINE_RESERVE`]: when a job's context is cancelled.
fn cancel_at_ms(deadline_ms: i64) -> i64 {
    let reserve = i64::try_from(DEADLINE_RESERVE.as_millis()).unwrap_or(i64::MAX);
    deadline_ms.saturating_sub(reserve)
}

fn until_ms(at_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms())).unwrap_or(0))
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
            job_types,
            config,
            concurrency,
        }
    }

    /// How many jobs of a batch run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Processes a batch before `deadline_ms` (the Lambda deadline, ms since
    /// the epoch), lists the records to deliver again, and emits the batch's
    /// metrics.
    pub async fn process_batch(&self, event: SqsEvent, deadline_ms: i64) -> BatchOutcome {
        let invoked_at_ms = now_ms();
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
        if until_ms(cancel_at_ms(deadline_ms)) < MIN_RUN_TIME {
            return self.send_again(delivery, &message).await;
        }
        self.run_job(delivery, message.job_id, deadline_ms).await
    }

    /// A record there is no time left to start: sent again as a new message
    /// (receive count 1) and acknowledged, so running late does not count
    /// toward the DLQ. The new message may wait out a whole retention with
    /// its deliveries counted afresh, so the job's time bound is renewed
    /// first; if that or the send fails, the record is reported failed
    /// instead (a finished or missing job needs no renewal).
    async fn send_again(&self, delivery: &mut Delivery<'_>, message: &JobMessage) -> Disposition {
        match self.store.renew_due(message.job_id, now_ms()).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(error) => {
                tracing::warn!(%error, jobId = %message.job_id, "could not renew a late job's time bound");
                delivery.outcome = "not-started";
                return self.retry_later(delivery, None).await;
            }
        }
        match self.queue.send(message).await {
            Ok(_) => {
                delivery.outcome = "sent-again";
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
        let lease_until_ms = deadline_ms.saturating_add(LEASE_MARGIN_MS);
        let job = match self.claim(delivery, id, lease_until_ms).await {
            Ok(job) => job,
            Err(disposition) => return disposition,
        };
        delivery.job_type = Some(job.job_type.clone());
        delivery.attempt = Some(job.attempts);
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
        let run = self.run_handler(&job, deadline_ms).await;
        delivery.metrics.record(
            &job.job_type,
            Metric::JobDurationMs,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        let last_delivery = delivery.receive_count >= self.config.max_receive_count;
        match run {
            Run::Finished(Ok(result)) => {
                delivery.outcome = "succeeded";
                let completion = Completion::Succeeded(result);
                self.complete(delivery, &job, &completion, Metric::JobsSucceeded)
                    .await
            }
            Run::Finished(Err(JobError::Permanent(error))) => {
                tracing::debug!(%error, jobId = %job.id, "job failed permanently");
                delivery.outcome = "failed";
                let completion = Completion::Failed {
                    error,
                    dead_lettered: false,
                };
                self.complete(delivery, &job, &completion, Metric::JobsFailed)
                    .await
            }
            Run::Finished(Err(JobError::Retryable(error))) if last_delivery => {
                self.dead_letter(delivery, &job, error).await;
                Disposition::Retry
            }
            Run::Finished(Err(JobError::Retryable(error))) => {
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
            Run::Overran if last_delivery => {
                self.dead_letter(delivery, &job, TIMED_OUT_ERROR.to_owned())
                    .await;
                delivery.outcome = "overran";
                Disposition::Overran
            }
            Run::Overran => {
                // The job keeps its lease, so no claim overlaps with the
                // handler while this process lives (it ends after the
                // response); the message waits out the lease, then backs off.
                delivery.outcome = "overran";
                let lease_secs = secs_until(lease_until_ms);
                let backoff = backoff::delay_secs(&self.config, delivery.receive_count);
                self.retry_later(delivery, Some(lease_secs.saturating_add(backoff)))
                    .await;
                Disposition::Overran
            }
        }
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
        let mut now = now_ms();
        let mut claimed = self
            .store
            .claim(
                id,
                now,
                lease_until_ms,
                delivery.receive_count,
                &delivery.token,
            )
            .await;
        if let Err(StoreError::Conflict { current: Some(job) }) = &claimed
            && delivery
                .sent_at_ms
                .is_some_and(|sent| job.redriven_by(sent))
        {
            if let Err(error) = self.store.replay(id).await {
                tracing::warn!(%error, jobId = %id, messageId = delivery.message_id(), "could not replay a redriven job");
                delivery.outcome = "replay-failed";
                return Err(self.retry_later(delivery, None).await);
            }
            tracing::debug!(jobId = %id, messageId = delivery.message_id(), "a redriven message replays its dead-lettered job");
            now = now_ms();
            claimed = self
                .store
                .claim(
                    id,
                    now,
                    lease_until_ms,
                    delivery.receive_count,
                    &delivery.token,
                )
                .await;
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

    /// Runs the job's handler, cancelled at the invocation's deadline less
    /// the reserve; a handler still running [`STOP_GRACE`] later is left
    /// behind as [`Run::Overran`].
    async fn run_handler(&self, job: &JobRecord, deadline_ms: i64) -> Run {
        let Some(handler) = self.job_types.get(&job.job_type) else {
            return Run::Finished(Err(JobError::Retryable(UNKNOWN_TYPE_ERROR.to_owned())));
        };
        let cancel_at = cancel_at_ms(deadline_ms);
        let cancel = CancellationToken::new();
        let ctx = JobContext::new(job.id, job.attempts, cancel_at, cancel.clone());
        // A panicking handler fails its job, not the batch's other jobs.
        let run = AssertUnwindSafe(handler.run(&ctx, job.payload.clone())).catch_unwind();
        tokio::pin!(run);
        let outcome = match tokio::time::timeout(until_ms(cancel_at), &mut run).await {
            Ok(outcome) => outcome,
            Err(_) => {
                cancel.cancel();
                match tokio::time::timeout(STOP_GRACE, &mut run).await {
                    // Finished just in time: keep the result.
                    Ok(Ok(Ok(result))) => Ok(Ok(result)),
                    Ok(Ok(Err(_))) => Ok(Err(JobError::Retryable(TIMED_OUT_ERROR.to_owned()))),
                    Ok(Err(panic)) => Err(panic),
                    Err(_) => return Run::Overran,
                }
            }
        };
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(JobError::Retryable("the job's handler panicked".to_owned())),
        };
        Run::Finished(result.and_then(|result| {
            let size = result.to_string().len();
            if size > MAX_RESULT_BYTES {
                return Err(JobError::Permanent(format!(
                    "result is {size} bytes; the limit is {MAX_RESULT_BYTES}"
                )));
            }
            Ok(result)
        }))
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
            .finish(job.id, job.attempts, &delivery.token, completion, now_ms())
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
            .finish(job.id, job.attempts, &delivery.token, &completion, now_ms())
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
        let secs =
            secs.unwrap_or_else(|| backoff::delay_secs(&self.config, delivery.receive_count));
        self.set_visibility(delivery, secs).await;
        Disposition::Retry
    }

    async fn set_visibility(&self, delivery: &Delivery<'_>, secs: u32) {
        let Some(receipt) = delivery.record.receipt_handle.as_deref() else {
            return;
        };
        let secs = secs.min(backoff::max_visibility_secs(
            delivery.received_at_ms,
            now_ms(),
        ));
        if let Err(error) = self.queue.change_visibility(receipt, secs).await {
            // The queue's own visibility timeout still brings it back.
            tracing::warn!(%error, messageId = delivery.message_id(), "could not change the message's visibility");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_shared::JobRequest;
    use jobline_shared::deadline::{Deadlines, MARGIN_MS};
    use jobline_shared::provision::QueueSettings;
    use jobline_shared::queue::Receive;
    use jobline_shared::queue::memory::MemoryQueue;
    use jobline_shared::store::item::{MAX_ITEM_BYTES, item_from_record, item_size};
    use jobline_shared::store::memory::MemoryStore;
    use jobline_shared::testing;
    use jobline_shared::{JobHandler, JobState};
    use serde_json::json;

    /// Fails as its payload says: `{"fail": "retry" | "permanent" | "panic" |
    /// "hang" (until cancelled) | "overrun" (ignores cancellation)}`, or
    /// returns a 60 KiB result for `{"fail": "big"}`.
    struct Scripted;

    #[async_trait::async_trait]
    impl JobHandler for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
            match payload["fail"].as_str() {
                Some("retry") => Err(JobError::Retryable("try later".into())),
                Some("permanent") => Err(JobError::Permanent("bad input".into())),
                Some("panic") => panic!("handler bug"),
                Some("big") => Ok(json!("r".repeat(60 * 1024))),
                Some("hang") => {
                    ctx.cancelled().await;
                    Err(JobError::Retryable("cancelled".into()))
                }
                Some("overrun") => {
                    let ignored = tokio::task::spawn_blocking(|| {
                        std::thread::sleep(Duration::from_secs(3));
                    });
                    drop(ignored.await);
                    Ok(json!("late"))
                }
                _ => Ok(json!({"ok": true, "attempt": ctx.attempt})),
            }
        }
    }

    struct Fixture {
        store: Arc<MemoryStore>,
        queue: Arc<MemoryQueue>,
        worker: Worker,
    }

    fn fixture() -> Fixture {
        let queue = Arc::new(MemoryQueue::new());
        let config = WorkerConfig {
            max_receive_count: 3,
            retry_base_delay_secs: 10,
            retry_max_delay_secs: 100,
            concurrency: 4,
        };
        let deadlines = Deadlines::new(QueueSettings::TEMPLATE, &config);
        let store = Arc::new(MemoryStore::new().with_deadlines(deadlines));
        let worker = Worker::new(
            store.clone(),
            queue.clone(),
            JobTypes::new().with(Scripted),
            config,
        );
        Fixture {
            store,
            queue,
            worker,
        }
    }

    impl Fixture {
        fn job(&self, payload: Value) -> JobId {
            let request = JobRequest {
                job_type: "scripted".into(),
                payload,
            };
            let job = JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 1);
            self.store.insert(job.clone());
            job.id
        }

        async fn deliver(&self, body: &str, receive_count: u32) -> (Disposition, Metrics) {
            let mut record = SqsMessage::default();
            record.message_id = Some("m".into());
            record.receipt_handle = Some("r".into());
            record.body = Some(body.into());
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), receive_count.to_string());
            self.deliver_record(&record, now_ms() + 30_000).await
        }

        async fn deliver_record(
            &self,
            record: &SqsMessage,
            deadline_ms: i64,
        ) -> (Disposition, Metrics) {
            let (_, disposition, metrics) = self
                .worker
                .process_record(record, now_ms(), deadline_ms)
                .await;
            (disposition, metrics)
        }

        async fn deliver_job(&self, id: JobId, receive_count: u32) -> (Disposition, Metrics) {
            self.deliver(&JobMessage { job_id: id }.encode(), receive_count)
                .await
        }
    }

    #[tokio::test]
    async fn a_job_is_claimed_run_and_completed() {
        let f = fixture();
        let id = f.job(json!({}));
        let (disposition, metrics) = f.deliver_job(id, 1).await;
        assert_eq!(disposition, Disposition::Acknowledged);
        let job = f.store.job(id).unwrap();
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.result, Some(json!({"ok": true, "attempt": 1})));
        assert_eq!(job.attempts, 1);
        assert_eq!(metrics.total(Metric::JobsSucceeded), 1.0);
        assert!(f.queue.visibility_changes().is_empty());
    }

    #[tokio::test]
    async fn a_retryable_failure_releases_the_job_and_backs_off() {
        let f = fixture();
        let id = f.job(json!({"fail": "retry"}));
        let (disposition, metrics) = f.deliver_job(id, 2).await;
        assert_eq!(disposition, Disposition::Retry);
        let job = f.store.job(id).unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.error.as_deref(), Some("try later"));
        assert_eq!(metrics.total(Metric::JobsRetried), 1.0);
        let changes = f.queue.visibility_changes();
        assert_eq!(changes.len(), 1);
        assert!(
            (10..=20).contains(&changes[0].1),
            "backoff for receive 2: {changes:?}"
        );
    }

    #[tokio::test]
    async fn a_claim_bounds_the_job_by_the_deliveries_left() {
        let f = fixture();
        // Each delivery left may come a visibility timeout plus the longest
        // backoff after the last.
        let per_delivery = i64::from(QueueSettings::TEMPLATE.visibility_timeout_secs + 100) * 1000;
        for (receive_count, left) in [(1, 2), (2, 1)] {
            let id = f.job(json!({"fail": "retry"}));
            let before = now_ms();
            f.deliver_job(id, receive_count).await;
            // deliver() sets the deadline 30 s on; the lease adds its margin.
            let lease = before + 30_000 + LEASE_MARGIN_MS;
            let due = f.store.due_at(id).expect("a returned job stays due");
            let expected = lease + left * per_delivery + MARGIN_MS;
            assert!(
                (expected..expected + 1_000).contains(&due),
                "receive {receive_count}: due {due}, expected {expected}"
            );
        }
    }

    #[tokio::test]
    async fn the_last_delivery_fails_the_job_as_dead_lettered() {
        let f = fixture();
        let id = f.job(json!({"fail": "retry"}));
        let (disposition, metrics) = f.deliver_job(id, 3).await;
        assert_eq!(
            disposition,
            Disposition::Retry,
            "left for SQS to dead-letter"
        );
        let job = f.store.job(id).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert!(job.dead_lettered);
        assert_eq!(
            f.store.due_at(id),
            None,
            "a failed job leaves the due index"
        );
        assert_eq!(metrics.total(Metric::JobsDeadLettered), 1.0);
        assert_eq!(f.queue.visibility_changes(), [("r".to_owned(), 0)]);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_acknowledged() {
        let f = fixture();
        let id = f.job(json!({"fail": "permanent"}));
        let (disposition, metrics) = f.deliver_job(id, 1).await;
        assert_eq!(disposition, Disposition::Acknowledged);
        let job = f.store.job(id).unwrap();
        assert_eq!((job.state, job.dead_lettered), (JobState::Failed, false));
        assert_eq!(job.error.as_deref(), Some("bad input"));
        assert_eq!(metrics.total(Metric::JobsFailed), 1.0);
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_only_its_job() {
        let f = fixture();
        let id = f.job(json!({"fail": "panic"}));
        let (disposition, _) = f.deliver_job(id, 1).await;
        assert_eq!(disposition, Disposition::Retry);
        let job = f.store.job(id).unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.error.as_deref(), Some("the job's handler panicked"));
    }

    #[tokio::test]
    async fn an_attempt_is_cut_off_before_the_invocation_deadline() {
        let f = fixture();
        let id = f.job(json!({"fail": "hang"}));
        let mut record = SqsMessage::default();
        record.body = Some(JobMessage { job_id: id }.encode());
        let deadline = now_ms() + 3_300;
        let (disposition, _) = f.deliver_record(&record, deadline).await;
        assert!(now_ms() < deadline, "stopped before the deadline");
        assert_eq!(disposition, Disposition::Retry);
        let job = f.store.job(id).unwrap();
        assert!(job.error.unwrap().contains("timed out"));
    }

    #[tokio::test]
    async fn a_handler_that_ignores_its_deadline_keeps_its_job_and_ends_the_process() {
        let f = fixture();
        let id = f.job(json!({"fail": "overrun"}));
        let deadline = now_ms() + 3_300;
        let mut event = SqsEvent::default();
        let mut record = SqsMessage::default();
        record.message_id = Some("slow".into());
        record.receipt_handle = Some("r".into());
        record.body = Some(JobMessage { job_id: id }.encode());
        event.records.push(record);
        let outcome = f.worker.process_batch(event, deadline).await;
        assert!(now_ms() < deadline, "gave up before the deadline");
        assert!(outcome.must_restart);
        assert_eq!(outcome.response.batch_item_failures.len(), 1);
        let job = f.store.job(id).unwrap();
        assert_eq!(job.state, JobState::Running, "not returned to the queue");
        assert_eq!(job.error, None);
        let (_, secs) = f.queue.visibility_changes().pop().unwrap();
        assert!(secs >= 3, "the message waits out the lease: {secs}");
    }

    #[tokio::test]
    async fn an_overrun_on_the_last_delivery_dead_letters_the_job() {
        let f = fixture();
        let id = f.job(json!({"fail": "overrun"}));
        let mut record = SqsMessage::default();
        record.receipt_handle = Some("r".into());
        record.body = Some(JobMessage { job_id: id }.encode());
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "3".into());
        let (disposition, _) = f.deliver_record(&record, now_ms() + 3_300).await;
        assert_eq!(disposition, Disposition::Overran);
        let job = f.store.job(id).unwrap();
        assert_eq!((job.state, job.dead_lettered), (JobState::Failed, true));
        assert_eq!(job.error.as_deref(), Some(TIMED_OUT_ERROR));
    }

    #[tokio::test]
    async fn an_unknown_job_type_is_retried() {
        let f = fixture();
        let request = JobRequest {
            job_type: "newer".into(),
            payload: json!({}),
        };
        let job = JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 1);
        f.store.insert(job.clone());
        assert_eq!(f.deliver_job(job.id, 1).await.0, Disposition::Retry);
        let job = f.store.job(job.id).unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.error.as_deref(), Some(UNKNOWN_TYPE_ERROR));
    }

    #[tokio::test]
    async fn late_records_are_sent_again_and_their_receive_count_does_not_grow() {
        let f = fixture();
        let id = f.job(json!({}));
        // Queued a minute ago: due a minute earlier than a job queued now.
        let old = f.store.job(id).unwrap();
        f.store.insert(JobRecord {
            created_at: old.created_at - 60_000,
            ..old
        });
        let deadlines = Deadlines::new(QueueSettings::TEMPLATE, &f.worker.config);
        let sent_from = now_ms();
        f.queue.push(&JobMessage { job_id: id }.encode());
        let receive = Receive {
            max_messages: 10,
            wait_secs: 0,
            visibility_secs: 30,
        };
        for _ in 0..3 {
            let received = f.queue.receive(receive).await.unwrap();
            assert_eq!(received.len(), 1);
            assert_eq!(
                received[0].receive_count(),
                1,
                "never counts toward the DLQ"
            );
            let mut record = SqsMessage::default();
            record.message_id = Some(received[0].message_id.clone());
            record.receipt_handle = Some(received[0].receipt_handle.clone());
            record.body = Some(received[0].body.clone());
            record.attributes = received[0].attributes.clone();
            let mut event = SqsEvent::default();
            event.records.push(record);
            // Too late to start: the reserve and the minimum run time are past.
            let outcome = f.worker.process_batch(event, now_ms() + 2_500).await;
            assert!(outcome.response.batch_item_failures.is_empty());
            // Lambda deletes the acknowledged record.
            let undeleted = f
                .queue
                .delete(&[received[0].receipt_handle.clone()])
                .await
                .unwrap();
            assert!(undeleted.is_empty());
        }
        assert_eq!(f.queue.sent(), vec![JobMessage { job_id: id }; 3]);
        let job = f.store.job(id).unwrap();
        assert_eq!(
            (job.state, job.attempts),
            (JobState::Queued, 0),
            "never claimed"
        );
        let due = f.store.due_at(id).unwrap();
        assert!(
            due >= deadlines.queued_at(sent_from),
            "sent again, the job is due as a new one: {due}"
        );

        // If the send fails, the record is reported failed instead.
        f.queue.set_failing_sends(true);
        let mut record = SqsMessage::default();
        record.body = Some(JobMessage { job_id: id }.encode());
        assert_eq!(
            f.deliver_record(&record, now_ms() + 2_500).await.0,
            Disposition::Retry
        );
        // So is it if the job's bound cannot be renewed: nothing is sent.
        f.queue.set_failing_sends(false);
        f.store.set_failing(true);
        assert_eq!(
            f.deliver_record(&record, now_ms() + 2_500).await.0,
            Disposition::Retry
        );
        assert_eq!(f.queue.sent().len(), 3);
    }

    #[test]
    fn concurrency_is_bounded_by_the_function_memory() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(memory_bound_concurrency(8, None, 60 * MIB), 8);
        // 128 MB less 48 MiB for the runtime: one 60 MiB job at a time.
        assert_eq!(memory_bound_concurrency(8, Some(128), 60 * MIB), 1);
        assert_eq!(memory_bound_concurrency(8, Some(48 + 3 * 60), 60 * MIB), 3);
        assert_eq!(memory_bound_concurrency(8, Some(10_240), 60 * MIB), 8);
        assert_eq!(
            memory_bound_concurrency(8, Some(16), 60 * MIB),
            1,
            "at least one"
        );
        assert_eq!(memory_bound_concurrency(2, Some(10_240), 0), 2);
    }

    #[test]
    fn the_builtin_types_fit_the_smallest_function_one_at_a_time() {
        let peak = JobTypes::builtin().peak_memory_bytes();
        assert_eq!(memory_bound_concurrency(10, Some(128), peak), 1);
        assert!(RUNTIME_MEMORY_BYTES + peak <= 128 * 1024 * 1024);
        assert_eq!(memory_bound_concurrency(10, Some(512), peak), 8);
    }

    #[tokio::test]
    async fn duplicates_missing_jobs_and_live_leases() {
        let f = fixture();
        let id = f.job(json!({}));
        f.deliver_job(id, 1).await;
        let (duplicate, metrics) = f.deliver_job(id, 1).await;
        assert_eq!(duplicate, Disposition::Acknowledged);
        assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);

        let missing = JobId::random();
        assert_eq!(f.deliver_job(missing, 1).await.0, Disposition::Retry);
        assert_eq!(f.deliver_job(missing, 2).await.0, Disposition::Acknowledged);

        let leased = f.job(json!({}));
        f.store
            .claim(leased, now_ms(), now_ms() + 50_000, 1, "another delivery")
            .await
            .unwrap();
        assert_eq!(f.deliver_job(leased, 1).await.0, Disposition::Retry);
        let (_, secs) = f.queue.visibility_changes().pop().unwrap();
        assert!((49..=51).contains(&secs), "retry after the lease: {secs}");
    }

    /// A record of job `id`'s message, sent at `sent_at_ms`.
    fn sent_at(id: JobId, sent_at_ms: i64) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.body = Some(JobMessage { job_id: id }.encode());
        record
            .attributes
            .insert("SentTimestamp".into(), sent_at_ms.to_string());
        record
    }

    #[tokio::test]
    async fn a_message_sent_after_the_dead_letter_is_a_redrive_and_runs_the_job() {
        let f = fixture();
        let finished = now_ms() - 1_000;
        let dead = testing::job("scripted")
            .state(JobState::Failed)
            .attempts(3)
            .finished_at(finished)
            .error("try later")
            .dead_lettered(true)
            .build();
        f.store.insert(dead.clone());
        let deadline = now_ms() + 30_000;

        // A stray copy of the original delivery: a duplicate.
        let (disposition, metrics) = f
            .deliver_record(&sent_at(dead.id, finished - 5_000), deadline)
            .await;
        assert_eq!(disposition, Disposition::Acknowledged);
        assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);
        assert_eq!(f.store.job(dead.id), Some(dead.clone()), "left alone");

        // SQS's DLQ redrive sends the dead letter as a new message.
        let (disposition, metrics) = f
            .deliver_record(&sent_at(dead.id, finished + 500), deadline)
            .await;
        assert_eq!(disposition, Disposition::Acknowledged);
        assert_eq!(metrics.total(Metric::JobsSucceeded), 1.0);
        let job = f.store.job(dead.id).unwrap();
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!((job.attempts, job.replays), (4, 1));
        assert!(!job.dead_lettered);

        // The same redrive delivered again is a duplicate of the finished run.
        let (_, metrics) = f
            .deliver_record(&sent_at(dead.id, finished + 500), deadline)
            .await;
        assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);
        assert_eq!(f.store.job(dead.id).unwrap().replays, 1);

        // A discarded job stays failed.
        let discarded = testing::job("scripted")
            .state(JobState::Failed)
            .finished_at(finished)
            .dead_lettered(true)
            .discarded(true)
            .build();
        f.store.insert(discarded.clone());
        f.deliver_record(&sent_at(discarded.id, finished + 500), deadline)
            .await;
        assert_eq!(f.store.job(discarded.id), Some(discarded));
    }

    /// A `scripted` job whose claimed item (with a worker's lease and token)
    /// is `room` bytes short of DynamoDB's limit, and that returns a 60 KiB
    /// result.
    fn job_near_the_item_limit(f: &Fixture, room: usize) -> JobId {
        let sized = |pad: usize| {
            let job = testing::job("scripted")
                .payload(json!({"fail": "big", "pad": "x".repeat(pad)}))
                .build();
            let mut claimed = job.clone();
            claimed.claim(now_ms(), now_ms() + 30_000, &"0".repeat(32));
            (job, item_size(&item_from_record(&claimed)))
        };
        let (_, empty) = sized(0);
        let (job, size) = sized(MAX_ITEM_BYTES - room - empty);
        assert_eq!(size, MAX_ITEM_BYTES - room);
        f.store.insert(job.clone());
        job.id
    }

    #[tokio::test]
    async fn an_outcome_the_store_refuses_as_invalid_fails_the_job_for_good() {
        let f = fixture();
        let id = job_near_the_item_limit(&f, 30 * 1024);
        let (disposition, metrics) = f.deliver_job(id, 1).await;
        assert_eq!(disposition, Disposition::Acknowledged, "not retried");
        let job = f.store.job(id).unwrap();
        assert_eq!((job.state, job.dead_lettered), (JobState::Failed, false));
        assert_eq!(job.error.as_deref(), Some(UNSTORABLE_ERROR));
        assert_eq!(metrics.total(Metric::JobsFailed), 1.0);
        assert_eq!(metrics.total(Metric::JobsSucceeded), 0.0);
    }

    #[tokio::test]
    async fn when_even_the_fixed_failure_is_refused_the_message_is_dropped() {
        let f = fixture();
        // Room for the claim, none for an error and a finish time.
        let id = job_near_the_item_limit(&f, 10);
        let (disposition, _) = f.deliver_job(id, 1).await;
        assert_eq!(disposition, Disposition::Acknowledged, "no endless retry");
        assert_eq!(f.store.job(id).unwrap().state, JobState::Running);
        assert_eq!(f.store.writes(), 3, "a claim and two refused finishes");
    }

    #[tokio::test]
    async fn malformed_bodies_and_store_outages_are_retried() {
        let f = fixture();
        assert_eq!(f.deliver("{}", 1).await.0, Disposition::Retry);
        let id = f.job(json!({}));
        f.store.set_failing(true);
        assert_eq!(f.deliver_job(id, 1).await.0, Disposition::Retry);
        f.store.set_failing(false);
        assert_eq!(f.store.job(id).unwrap().state, JobState::Queued);
    }

    #[tokio::test]
    async fn a_batch_reports_only_its_failures() {
        let f = fixture();
        let ok = f.job(json!({}));
        let retry = f.job(json!({"fail": "retry"}));
        let mut event = SqsEvent::default();
        for (message_id, body) in [
            ("ok", JobMessage { job_id: ok }.encode()),
            ("retry", JobMessage { job_id: retry }.encode()),
            ("junk", "junk".to_owned()),
        ] {
            let mut record = SqsMessage::default();
            record.message_id = Some(message_id.into());
            record.body = Some(body);
            event.records.push(record);
        }
        let outcome = f.worker.process_batch(event, now_ms() + 30_000).await;
        let mut failed: Vec<&str> = outcome
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        failed.sort_unstable();
        assert_eq!(failed, ["junk", "retry"]);
    }
}
