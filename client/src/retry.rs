//! When a request is sent again: [`RetryPolicy`]. An answer `429 Too Many
//! Requests` or `503 Service Unavailable` (the API changed nothing), a
//! connection that could not be made, and, for a request that is safe to
//! repeat, a broken connection or a timeout, are retried with exponential
//! backoff and jitter, or after the answer's `Retry-After` (seconds) when it
//! has one; every other answer, 4xx included, is final. Retries are bounded
//! by attempts and by the total time spent waiting between them.

use http::HeaderMap;
use http::header::RETRY_AFTER;
use std::time::Duration;

/// How failed requests are retried. The default: 4 attempts, backoff from
/// 0.5 s doubling to 8 s at most, and at most 60 s of waiting in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// The backoff before the first retry (without `Retry-After`).
    pub initial_backoff: Duration,
    /// The longest backoff between two attempts.
    pub max_backoff: Duration,
    /// The most time spent waiting between the attempts of one request: a
    /// retry that would wait past it is not made (the last answer or error
    /// stands), even when `Retry-After` asks for it.
    pub max_total_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_total_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries: each request is sent once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The default policy with `retries` retries (`retries + 1` attempts).
    pub fn with_retries(retries: u32) -> Self {
        Self {
            max_attempts: retries.saturating_add(1),
            ..Self::default()
        }
    }

    /// The backoff ceiling after failed attempt `attempt` (1-based):
    /// `initial × 2^(attempt − 1)`, capped.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff)
    }

    /// The backoff after failed attempt `attempt`: "equal jitter", half the
    /// ceiling plus a random part of the other half, so clients refused
    /// together do not all come back together.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(fastrand::f64())
    }

    /// The wait before attempt `attempt + 1`, if one is made: `wanted`,
    /// unless the attempts or the total waiting (`waited` so far) run out.
    pub(crate) fn next_wait(
        &self,
        attempt: u32,
        waited: Duration,
        wanted: Duration,
    ) -> Option<Duration> {
        (attempt < self.max_attempts && waited + wanted <= self.max_total_delay).then_some(wanted)
    }
}

/// The answer's `Retry-After` in seconds (the HTTP-date form is not read).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    text.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_with_jitter_in_its_upper_half() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=7)
            .map(|n| policy.ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(policy.ceiling(u32::MAX), policy.max_backoff);
        for attempt in 1..=6 {
            for _ in 0..100 {
                let backoff = policy.backoff(attempt);
                let ceiling = policy.ceiling(attempt);
                assert!(backoff >= ceiling / 2 && backoff <= ceiling, "{backoff:?}");
            }
        }
    }

    #[test]
    fn retries_stop_at_the_attempts_or_the_total_wait() {
        let policy = RetryPolicy::default();
        let second = Duration::from_secs(1);
        assert_eq!(policy.next_wait(1, Duration::ZERO, second), Some(second));
        assert_eq!(policy.next_wait(3, Duration::ZERO, second), Some(second));
        assert_eq!(policy.next_wait(4, Duration::ZERO, second), None);
        assert_eq!(
            policy.next_wait(1, Duration::from_secs(59), Duration::from_secs(2)),
            None
        );
        assert_eq!(
            policy.next_wait(1, Duration::ZERO, Duration::from_secs(61)),
            None,
            "a Retry-After past the budget is not waited for"
        );
        assert_eq!(
            RetryPolicy::none().next_wait(1, Duration::ZERO, second),
            None
        );
        assert_eq!(RetryPolicy::with_retries(2).max_attempts, 3);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
