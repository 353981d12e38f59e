//! `sleep`: waits, then succeeds; for trying out the system (long jobs,
//! deadlines, cancellation, progress: it reports each second) without
//! burning CPU.

use async_trait::async_trait;
use jobline_core::job_types::{JobContext, JobError, JobHandler, payload_u64};
use serde_json::{Value, json};
use std::time::Duration;

/// `{"seconds": n}` → `{"slept": n}` after `n` seconds, or a retryable
/// error as soon as the attempt is cancelled.
#[derive(Debug, Clone, Copy)]
pub struct Sleep;

/// The longest sleep accepted: the worker function's 15-minute ceiling.
pub const MAX_SLEEP_SECS: u64 = 900;

#[async_trait]
impl JobHandler for Sleep {
    fn name(&self) -> &str {
        "sleep"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        payload_u64(payload, "seconds", MAX_SLEEP_SECS).map(drop)
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let seconds =
            payload_u64(&payload, "seconds", MAX_SLEEP_SECS).map_err(JobError::Permanent)?;
        for slept in 0..seconds {
            ctx.progress(
                slept as f64 / seconds as f64,
                &format!("slept {slept} of {seconds} s"),
            );
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = ctx.cancelled() => {
                    return Err(JobError::Retryable("stopped at the deadline".to_owned()));
                }
            }
        }
        Ok(json!({ "slept": seconds }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_context;

    #[tokio::test(start_paused = true)]
    async fn sleeps_then_succeeds() {
        let started = tokio::time::Instant::now();
        let out = Sleep
            .run(&test_context(1), json!({"seconds": 3}))
            .await
            .unwrap();
        assert_eq!(out, json!({"slept": 3}));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_cancelled() {
        let ctx = test_context(1);
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let out = Sleep.run(&ctx, json!({"seconds": MAX_SLEEP_SECS})).await;
        assert!(matches!(out, Err(JobError::Retryable(_))), "{out:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn is_bounded() {
        assert!(Sleep.validate(&json!({"seconds": MAX_SLEEP_SECS})).is_ok());
        assert!(
            Sleep
                .validate(&json!({"seconds": MAX_SLEEP_SECS + 1}))
                .is_err()
        );
        assert!(Sleep.validate(&json!({"seconds": 1.5})).is_err());
    }
}
