//! Retry delays: exponential in the message's `ApproximateReceiveCount`,
//! capped, with jitter so that jobs failing together do not come back together.
//!
//! The delay becomes the message's visibility timeout (`ChangeMessageVisibility`),
//! so SQS itself holds the message until the retry: no timer, no state, no
//! cost while waiting. SQS caps a visibility timeout at 12 hours.

use jobline_shared::config::{SQS_MAX_VISIBILITY_SECS, WorkerConfig};

/// The un-jittered delay before delivery `receive_count + 1`:
/// `base × 2^(receive_count − 1)`, capped.
pub fn ceiling_secs(config: &WorkerConfig, receive_count: u32) -> u32 {
    let exponent = receive_count.saturating_sub(1).min(31);
    config
        .retry_base_delay_secs
        .saturating_mul(1 << exponent)
        .min(config.retry_max_delay_secs)
        .min(SQS_MAX_VISIBILITY_SECS)
}

/// "Equal jitter": half the ceiling, plus a random part of the other half,
/// so a retry never comes sooner than half its ceiling.
pub fn delay_secs(config: &WorkerConfig, receive_count: u32) -> u32 {
    let ceiling = ceiling_secs(config, receive_count);
    let half = ceiling / 2;
    half + fastrand::u32(0..=ceiling - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: u32, max: u32) -> WorkerConfig {
        WorkerConfig {
            retry_base_delay_secs: base,
            retry_max_delay_secs: max,
            ..WorkerConfig::default()
        }
    }

    #[test]
    fn doubles_per_receive_and_caps() {
        let c = config(2, 60);
        let ceilings: Vec<u32> = (1..=7).map(|n| ceiling_secs(&c, n)).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(ceiling_secs(&c, 0), 2, "a missing count is the first");
        assert_eq!(
            ceiling_secs(&config(2, u32::MAX), 1000),
            SQS_MAX_VISIBILITY_SECS
        );
    }

    #[test]
    fn jitter_stays_between_half_and_the_ceiling() {
        let c = config(10, 300);
        for receive_count in 1..=8 {
            let ceiling = ceiling_secs(&c, receive_count);
            for _ in 0..200 {
                let delay = delay_secs(&c, receive_count);
                assert!(
                    (ceiling / 2..=ceiling).contains(&delay),
                    "{delay} outside [{}, {ceiling}]",
                    ceiling / 2
                );
            }
        }
        let spread: std::collections::HashSet<u32> = (0..200).map(|_| delay_secs(&c, 4)).collect();
        assert!(spread.len() > 10, "jitter spreads retries: {spread:?}");
    }
}
