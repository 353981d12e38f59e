//! `fail-times` and `always-fail`: job types that fail on purpose, for
//! watching retries, backoff and dead-lettering work.

use async_trait::async_trait;
use jobline_core::job_types::{JobContext, JobError, JobHandler, payload_u64};
use serde_json::{Value, json};

/// `{"failures": n}`: fails retryably on its first `n` attempts, then
/// succeeds with `{"attempts": …}`. It counts by the job's attempt number
/// (`ctx.attempt`), so it behaves the same however many processes run it.
#[derive(Debug, Clone, Copy)]
pub struct FailTimes;

/// The most failures `fail-times` accepts (past any sensible `maxReceiveCount`).
pub const MAX_FAILURES: u64 = 100;

#[async_trait]
impl JobHandler for FailTimes {
    fn name(&self) -> &str {
        "fail-times"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        payload_u64(payload, "failures", MAX_FAILURES).map(drop)
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let failures =
            payload_u64(&payload, "failures", MAX_FAILURES).map_err(JobError::Permanent)?;
        if u64::from(ctx.attempt) <= failures {
            return Err(JobError::Retryable(format!(
                "failing on purpose (attempt {} of {failures} failures)",
                ctx.attempt
            )));
        }
        Ok(json!({ "attempts": ctx.attempt }))
    }
}

/// `{}`: fails retryably on every attempt, so its message ends in the DLQ
/// and the job as `failed` with `deadLettered: true`.
#[derive(Debug, Clone, Copy)]
pub struct AlwaysFail;

#[async_trait]
impl JobHandler for AlwaysFail {
    fn name(&self) -> &str {
        "always-fail"
    }

    async fn run(&self, _ctx: &JobContext, _payload: Value) -> Result<Value, JobError> {
        Err(JobError::Retryable(
            "failing on purpose, every time".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_context;

    #[tokio::test]
    async fn fail_times_fails_by_attempt_then_succeeds() {
        let payload = json!({"failures": 2});
        for attempt in 1..=2 {
            assert!(matches!(
                FailTimes.run(&test_context(attempt), payload.clone()).await,
                Err(JobError::Retryable(_))
            ));
        }
        assert_eq!(
            FailTimes.run(&test_context(3), payload).await,
            Ok(json!({"attempts": 3}))
        );
        assert!(
            FailTimes
                .validate(&json!({"failures": MAX_FAILURES + 1}))
                .is_err()
        );
        assert!(FailTimes.validate(&json!({})).is_err());
    }

    #[tokio::test]
    async fn always_fail_is_retryable_on_every_attempt() {
        for attempt in [1, 5, 50] {
            assert!(matches!(
                AlwaysFail.run(&test_context(attempt), json!({})).await,
                Err(JobError::Retryable(_))
            ));
        }
    }
}
