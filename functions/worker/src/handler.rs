//! Running one job's handler: under its [`JobContext`], cancelled at the
//! invocation's deadline less [`DEADLINE_RESERVE`] (the time kept to record
//! the outcome), given [`STOP_GRACE`] to stop, a panic caught as a failure of
//! its job only, its result bounded; and how many handlers may run at once in
//! the function's memory (Lambda gives no more than its configured size, and
//! CloudFormation cannot check the built-in types' peaks against it).

use crate::{
    DEADLINE_RESERVE, MAX_RESULT_BYTES, RUNTIME_MEMORY_BYTES, STOP_GRACE, TIMED_OUT_ERROR,
    UNKNOWN_TYPE_ERROR, Worker,
};
use futures_util::FutureExt;
use jobline_shared::job::now_ms;
use jobline_shared::job_types::JobContext;
use jobline_shared::{JobError, JobRecord};
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
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

/// `deadline_ms` less [`DEADLINE_RESERVE`]: when a job's context is cancelled.
pub(crate) fn cancel_at_ms(deadline_ms: i64) -> i64 {
    let reserve = i64::try_from(DEADLINE_RESERVE.as_millis()).unwrap_or(i64::MAX);
    deadline_ms.saturating_sub(reserve)
}

pub(crate) fn until_ms(at_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms())).unwrap_or(0))
}

impl Worker {
    /// Runs the job's handler, cancelled at the invocation's deadline less
    /// the reserve; a handler still running [`STOP_GRACE`] later is left
    /// behind as [`Run::Overran`].
    pub(crate) async fn run_handler(&self, job: &JobRecord, deadline_ms: i64) -> Run {
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
}
