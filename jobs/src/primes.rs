//! `primes`: counts the primes up to a bound with a sieve; CPU work that
//! returns a result, and stops when its attempt is cancelled.

use async_trait::async_trait;
use jobline_core::job_types::{JobContext, JobError, JobHandler, payload_u64};
use serde_json::{Value, json};

/// `{"upTo": N}` → `{"upTo": N, "count": …, "largest": …}`.
#[derive(Debug, Clone, Copy)]
pub struct Primes;

/// The largest bound accepted: the sieve takes one byte per number, so this
/// keeps a job within 64 MB and a few hundred milliseconds.
pub const MAX_UP_TO: u64 = 50_000_000;

/// The sieve checks for cancellation at every prime up to √n (before each
/// marking pass) and every this many numbers after, so it stops within one
/// marking pass (at most `MAX_UP_TO / 2` byte writes, tens of milliseconds)
/// of the signal.
pub const CANCEL_CHECK_EVERY: usize = 1 << 16;

/// Counts the primes ≤ `n` and returns the largest of them, or `None` if
/// `cancelled` said to stop first.
pub fn sieve(n: u64, cancelled: impl Fn() -> bool) -> Option<(u64, Option<u64>)> {
    let Ok(n) = usize::try_from(n) else {
        return Some((0, None));
    };
    if n < 2 {
        return Some((0, None));
    }
    let mut composite = vec![false; n + 1];
    let mut count = 0;
    let mut largest = None;
    for i in 2..=n {
        let marks = i.saturating_mul(i) <= n;
        if (i % CANCEL_CHECK_EVERY == 0 || (marks && !composite[i])) && cancelled() {
            return None;
        }
        if composite[i] {
            continue;
        }
        count += 1;
        largest = Some(i as u64);
        let mut multiple = i.saturating_mul(i);
        while multiple <= n {
            composite[multiple] = true;
            multiple += i;
        }
    }
    Some((count, largest))
}

#[async_trait]
impl JobHandler for Primes {
    fn name(&self) -> &str {
        "primes"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        payload_u64(payload, "upTo", MAX_UP_TO).map(drop)
    }

    /// The sieve's bytes, plus the runtime's share.
    fn peak_memory_bytes(&self) -> u64 {
        MAX_UP_TO + 1 + jobline_core::job_types::DEFAULT_PEAK_MEMORY_BYTES
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let n = payload_u64(&payload, "upTo", MAX_UP_TO).map_err(JobError::Permanent)?;
        let cancel = ctx.cancel.clone();
        let (count, largest) =
            tokio::task::spawn_blocking(move || sieve(n, || cancel.is_cancelled()))
                .await
                .map_err(|_| JobError::Retryable("the sieve task failed".to_owned()))?
                .ok_or_else(|| JobError::Retryable("stopped at the deadline".to_owned()))?;
        Ok(json!({ "upTo": n, "count": count, "largest": largest }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_context;
    use std::cell::Cell;

    fn count(n: u64) -> (u64, Option<u64>) {
        sieve(n, || false).unwrap()
    }

    #[test]
    fn sieve_counts_primes() {
        assert_eq!(count(0), (0, None));
        assert_eq!(count(2), (1, Some(2)));
        assert_eq!(count(10), (4, Some(7)));
        assert_eq!(count(100), (25, Some(97)));
        assert_eq!(count(1_000_000), (78_498, Some(999_983)));
    }

    #[test]
    fn sieve_checks_the_signal_and_stops() {
        let checks = Cell::new(0u32);
        assert_eq!(
            sieve(1_000_000, || {
                checks.set(checks.get() + 1);
                checks.get() > 3
            }),
            None
        );
        assert_eq!(checks.get(), 4, "stopped at the first check that said so");
        // Checks are spaced: the primes up to √n, then every 65,536 numbers.
        let checks = Cell::new(0u32);
        sieve(1_000_000, || {
            checks.set(checks.get() + 1);
            false
        });
        assert_eq!(checks.get(), 168 + 15, "{}", checks.get());
    }

    #[tokio::test]
    async fn a_cancelled_run_stops_with_a_retryable_error() {
        let ctx = test_context(1);
        ctx.cancel.cancel();
        let started = std::time::Instant::now();
        let outcome = Primes.run(&ctx, json!({"upTo": MAX_UP_TO})).await;
        assert_eq!(
            outcome,
            Err(JobError::Retryable("stopped at the deadline".into()))
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[tokio::test]
    async fn runs_and_validates() {
        assert_eq!(
            Primes
                .run(&test_context(1), json!({"upTo": 30}))
                .await
                .unwrap(),
            json!({"upTo": 30, "count": 10, "largest": 29})
        );
        assert!(Primes.validate(&json!({"upTo": -1})).is_err());
        assert!(Primes.validate(&json!({"upTo": MAX_UP_TO + 1})).is_err());
        assert!(Primes.validate(&json!([])).is_err());
        assert_eq!(
            Primes.validate(&json!({})).unwrap_err(),
            "payload.upTo is required"
        );
        assert!(matches!(
            Primes.run(&test_context(1), json!({"upTo": "ten"})).await,
            Err(JobError::Permanent(_))
        ));
    }
}
