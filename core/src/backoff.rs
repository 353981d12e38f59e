//! Retry delays: exponential in the message's `ApproximateReceiveCount`,
//! capped, with jitter so that jobs (or webhook deliveries) failing together
//! do not come back together. The worker and the notifier both retry so.
//!
//! The delay becomes the message's visibility timeout (`ChangeMessageVisibility`),
//! so SQS itself holds the message until the retry: no timer, no state, no
//! cost while waiting. SQS caps a visibility timeout at 12 hours counted from
//! the message's receive, not from the change, so a change may ask only for
//! what is left of those 12 hours ([`max_visibility_secs`]).

use crate::limits::SQS_MAX_VISIBILITY_SECS;

/// A retry schedule: the first delay and the cap, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_secs: u32,
    pub max_secs: u32,
}

impl Backoff {
    /// The un-jittered delay before delivery `receive_count + 1`:
    /// `base × 2^(receive_count − 1)`, capped.
    pub fn ceiling_secs(self, receive_count: u32) -> u32 {
        let exponent = receive_count.saturating_sub(1).min(31);
        self.base_secs
            .saturating_mul(1 << exponent)
            .min(self.max_secs)
            .min(SQS_MAX_VISIBILITY_SECS)
    }

    /// "Equal jitter": half the ceiling, plus a random part of the other
    /// half, so a retry never comes sooner than half its ceiling. Delays are
    /// whole seconds, so the half is rounded up: a 1 s ceiling is 1 s, never 0.
    pub fn delay_secs(self, receive_count: u32) -> u32 {
        let ceiling = self.ceiling_secs(receive_count);
        let half = ceiling.div_ceil(2);
        half + fastrand::u32(0..=ceiling - half)
    }
}

/// The longest visibility timeout a change may set at `now_ms` for a message
/// received at `received_at_ms`: SQS's 12 hours less the whole seconds begun
/// since the receive.
pub fn max_visibility_secs(received_at_ms: i64, now_ms: i64) -> u32 {
    let elapsed_ms = u64::try_from(now_ms.saturating_sub(received_at_ms)).unwrap_or(0);
    let elapsed_secs = u32::try_from(elapsed_ms.div_ceil(1000)).unwrap_or(u32::MAX);
    SQS_MAX_VISIBILITY_SECS.saturating_sub(elapsed_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_secs: u32, max_secs: u32) -> Backoff {
        Backoff {
            base_secs,
            max_secs,
        }
    }

    #[test]
    fn doubles_per_receive_and_caps() {
        let c = config(2, 60);
        let ceilings: Vec<u32> = (1..=7).map(|n| c.ceiling_secs(n)).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(c.ceiling_secs(0), 2, "a missing count is the first");
        assert_eq!(
            config(2, u32::MAX).ceiling_secs(1000),
            SQS_MAX_VISIBILITY_SECS
        );
    }

    #[test]
    fn jitter_stays_between_half_and_the_ceiling() {
        let c = config(10, 300);
        for receive_count in 1..=8 {
            let ceiling = c.ceiling_secs(receive_count);
            for _ in 0..200 {
                let delay = c.delay_secs(receive_count);
                assert!(
                    (ceiling / 2..=ceiling).contains(&delay),
                    "{delay} outside [{}, {ceiling}]",
                    ceiling / 2
                );
            }
        }
        let spread: std::collections::HashSet<u32> = (0..200).map(|_| c.delay_secs(4)).collect();
        assert!(spread.len() > 10, "jitter spreads retries: {spread:?}");
    }

    #[test]
    fn whole_seconds_keep_at_least_half_the_delay() {
        // RETRY_BASE_DELAY_SECONDS=1: the first retry waits 1 s, not 0.
        let c = config(1, 300);
        for _ in 0..200 {
            assert_eq!(c.delay_secs(1), 1);
            assert!((1..=2).contains(&c.delay_secs(2)));
            assert!((2..=4).contains(&c.delay_secs(3)));
        }
        let odd = config(3, 300);
        for _ in 0..200 {
            assert!((2..=3).contains(&odd.delay_secs(1)));
        }
    }

    #[test]
    fn visibility_is_capped_at_12_hours_from_the_receive() {
        let received = 1_700_000_000_000;
        assert_eq!(max_visibility_secs(received, received), 43_200);
        assert_eq!(max_visibility_secs(received, received + 1), 43_199);
        assert_eq!(max_visibility_secs(received, received + 1_000), 43_199);
        assert_eq!(max_visibility_secs(received, received + 60_500), 43_139);
        assert_eq!(max_visibility_secs(received, received + 50_000_000), 0);
        assert_eq!(max_visibility_secs(received, received - 5_000), 43_200);
    }
}
