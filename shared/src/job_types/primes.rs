//! `primes`: counts the primes up to a bound with a sieve; CPU work that
//! returns a result.

use super::{JobError, JobHandler, field};
use async_trait::async_trait;
use serde_json::{Value, json};

/// `{"upTo": N}` → `{"upTo": N, "count": …, "largest": …}`.
#[derive(Debug, Clone, Copy)]
pub struct Primes;

/// The largest bound accepted: the sieve takes one byte per number, so this
/// keeps a job within 64 MB and a few hundred milliseconds.
pub const MAX_UP_TO: u64 = 50_000_000;

fn up_to(payload: &Value) -> Result<u64, String> {
    let value = field(payload, "upTo")?;
    match value.as_u64() {
        Some(n) if n <= MAX_UP_TO => Ok(n),
        _ => Err(format!(
            "payload.upTo must be an integer from 0 to {MAX_UP_TO}, got {value}"
        )),
    }
}

/// Counts the primes ≤ `n` and returns the largest of them.
pub fn sieve(n: u64) -> (u64, Option<u64>) {
    let Ok(n) = usize::try_from(n) else {
        return (0, None);
    };
    if n < 2 {
        return (0, None);
    }
    let mut composite = vec![false; n + 1];
    let mut count = 0;
    let mut largest = None;
    for i in 2..=n {
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
    (count, largest)
}

#[async_trait]
impl JobHandler for Primes {
    fn name(&self) -> &str {
        "primes"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        up_to(payload).map(drop)
    }

    async fn run(&self, payload: Value) -> Result<Value, JobError> {
        let n = up_to(&payload).map_err(JobError::Permanent)?;
        let (count, largest) = tokio::task::spawn_blocking(move || sieve(n))
            .await
            .map_err(|e| JobError::Retryable(format!("sieve task failed: {e}")))?;
        Ok(json!({ "upTo": n, "count": count, "largest": largest }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sieve_counts_primes() {
        assert_eq!(sieve(0), (0, None));
        assert_eq!(sieve(2), (1, Some(2)));
        assert_eq!(sieve(10), (4, Some(7)));
        assert_eq!(sieve(100), (25, Some(97)));
        assert_eq!(sieve(1_000_000), (78_498, Some(999_983)));
    }

    #[tokio::test]
    async fn runs_and_validates() {
        assert_eq!(
            Primes.run(json!({"upTo": 30})).await.unwrap(),
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
            Primes.run(json!({"upTo": "ten"})).await,
            Err(JobError::Permanent(_))
        ));
    }
}
