//! Running one job's handler: under its [`JobContext`], with a heartbeat
//! that renews its short lease and its message's visibility and writes its
//! progress and checkpoint; cancelled at the invocation's deadline less
//! [`DEADLINE_RESERVE`] (the time kept to record the outcome), at the job's
//! run limit, on a cancel request or a lost lease; given [`STOP_GRACE`] to
//! stop, a panic caught as a failure of its job only; and how many handlers may run at once in
//! the function's memory (Lambda gives no more than its configured size, and
//! CloudFormation cannot check the built-in types' peaks against it).

use crate::delivery::Delivery;
use crate::heartbeat::{Beater, Halt, stop_by};
use crate::{
    DEADLINE_RESERVE, RUNTIME_MEMORY_BYTES, STOP_GRACE, TIMED_OUT_ERROR, UNKNOWN_TYPE_ERROR, Worker,
};
use futures_util::FutureExt;
use jobline_core::job_types::{JobContext, Reports};
use jobline_core::{JobError, JobRecord};
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// How a handler's run ended.
pub(crate) enum Run {
    Finished(Result<Value, JobError>),
    /// Still running after its cancellation and [`STOP_GRACE`].
    Overran,
}

/// Why the worker cancelled a handler's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The invocation's deadline is near.
    Deadline,
    /// The job reached its maximum run time (`MAX_JOB_RUN_SECS`).
    RunLimit,
    /// A heartbeat found that a client cancelled the job.
    CancelRequested,
    /// The attempt no longer holds the job: a heartbeat was refused (the job
    /// was taken over, discarded or swept), or none landed before the lease
    /// ran out. Nothing the attempt writes will be recorded.
    LeaseLost,
}

/// A handler's run, why it was stopped, and what it reported.
pub(crate) struct Ran {
    pub(crate) run: Run,
    pub(crate) stop: Option<Stop>,
    /// The progress and checkpoint not yet written.
    pub(crate) reports: Reports,
    /// The end of the lease the last heartbeat renewed.
    pub(crate) lease_until_ms: i64,
}

/// `deadline_ms` less [`DEADLINE_RESERVE`]: when a job's context is cancelled.
pub(crate) fn cancel_at_ms(deadline_ms: i64) -> i64 {
    let reserve = i64::try_from(DEADLINE_RESERVE.as_millis()).unwrap_or(i64::MAX);
    deadline_ms.saturating_sub(reserve)
}

impl Worker {
    /// Runs the job's handler, renewing its lease every heartbeat, and
    /// cancels it at the invocation's deadline less the reserve, at the
    /// job's run limit, when a heartbeat finds a cancel request, or when the
    /// lease is lost; a handler still running [`STOP_GRACE`] after that is
    /// left behind as [`Run::Overran`].
    pub(crate) async fn run_handler(
        &self,
        job: &JobRecord,
        delivery: &Delivery<'_>,
        deadline_ms: i64,
    ) -> Ran {
        let reports = Reports::new();
        let mut lease_until_ms = job.lease_expires_at.unwrap_or_else(|| self.clock.now_ms());
        let Some(handler) = self.job_types.get(&job.job_type) else {
            return Ran {
                run: Run::Finished(Err(JobError::Retryable(UNKNOWN_TYPE_ERROR.to_owned()))),
                stop: None,
                reports,
                lease_until_ms,
            };
        };
        let limit_at = self.run_limit_at(job);
        let cancel_at = cancel_at_ms(deadline_ms).min(limit_at);
        let cancel = CancellationToken::new();
        let mut ctx = JobContext::new(job.id, job.attempts, cancel_at, cancel.clone())
            .timed_by(self.clock.clone())
            .resuming_from(job.checkpoint.clone())
            .reporting_to(reports.clone());
        if let Some(files) = &self.files {
            ctx = ctx.with_files(Arc::clone(files), job.inputs.clone());
        }
        // A panicking handler fails its job, not the batch's other jobs.
        let run = AssertUnwindSafe(handler.run(&ctx, job.payload.clone())).catch_unwind();
        tokio::pin!(run);
        let mut pulse = Beater {
            store: Arc::clone(&self.store),
            queue: Arc::clone(&self.queue),
            clock: self.clock.clone(),
            job_id: job.id,
            attempt: job.attempts,
            token: delivery.token.clone(),
            receipt: delivery.record.receipt_handle.clone(),
            received_at_ms: delivery.received_at_ms,
            period: self.heartbeat_period(),
            reports: reports.clone(),
        }
        .start(lease_until_ms);
        let deadline = tokio::time::sleep(self.clock.until(cancel_at));
        tokio::pin!(deadline);
        let lease_lapses = tokio::time::sleep(self.clock.until(stop_by(lease_until_ms)));
        tokio::pin!(lease_lapses);
        let stop = loop {
            tokio::select! {
                outcome = &mut run => {
                    let lease_until_ms = *pulse.lease_until_ms.borrow();
                    return Ran { run: Run::Finished(bounded(outcome)), stop: None, reports, lease_until_ms };
                }
                () = &mut deadline => {
                    break if cancel_at == limit_at { Stop::RunLimit } else { Stop::Deadline };
                }
                // No confirmed beat in time: stop before the lease can be
                // taken, whatever the beat in flight is doing.
                () = &mut lease_lapses => break Stop::LeaseLost,
                Ok(()) = pulse.lease_until_ms.changed() => {
                    lease_until_ms = *pulse.lease_until_ms.borrow_and_update();
                    let at = tokio::time::Instant::now() + self.clock.until(stop_by(lease_until_ms));
                    lease_lapses.as_mut().reset(at);
                }
                Ok(()) = pulse.stop.changed() => {
                    match *pulse.stop.borrow_and_update() {
                        Some(Halt::CancelRequested) => break Stop::CancelRequested,
                        Some(Halt::LeaseLost) => break Stop::LeaseLost,
                        None => {}
                    }
                }
            }
        };
        drop(pulse);
        tracing::debug!(jobId = %job.id, ?stop, "stopping the job's handler");
        cancel.cancel();
        let run = match tokio::time::timeout(STOP_GRACE, &mut run).await {
            // Finished just in time: keep the result; an error of a handler
            // stopped at the deadline is that time-out.
            Ok(Ok(Err(JobError::Retryable(_) | JobError::Permanent(_))))
                if stop == Stop::Deadline =>
            {
                Run::Finished(Err(JobError::Retryable(TIMED_OUT_ERROR.to_owned())))
            }
            Ok(outcome) => Run::Finished(bounded(outcome)),
            Err(_) => Run::Overran,
        };
        Ran {
            run,
            stop: Some(stop),
            reports,
            lease_until_ms,
        }
    }

    /// When job `job` reaches its maximum run time (ms since the epoch).
    pub(crate) fn run_limit_at(&self, job: &JobRecord) -> i64 {
        job.run_started_at
            .or(job.started_at)
            .unwrap_or_else(|| self.clock.now_ms())
            .saturating_add(i64::from(self.config.max_run_secs) * 1000)
    }
}

/// A finished handler's outcome: a panic is a retryable failure of its job.
/// (Its result's size is checked when it is stored: see
/// `Worker::completion_of`.)
fn bounded(
    outcome: Result<Result<Value, JobError>, Box<dyn std::any::Any + Send>>,
) -> Result<Value, JobError> {
    match outcome {
        Ok(result) => result,
        Err(_) => Err(JobError::Retryable("the job's handler panicked".to_owned())),
    }
}
