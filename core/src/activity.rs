//! Recent activity: how many jobs succeeded, failed or were retried in each
//! minute, read back from the CloudWatch metrics the functions publish (the
//! [`MetricHistory`] port). The operator's console charts it.
//!
//! - `jobline_cloudwatch::CloudWatchHistory` (`adapters/cloudwatch/`), the
//!   adapter on `GetMetricData` (and `PutMetricData` for the local runner),
//!   which only the console and the local runner build;
//! - `jobline_testkit::memory::activity::FixedHistory`, the fake.
//!
//! The functions write their metrics as EMF lines, which CloudWatch Logs
//! turns into metrics; each document also carries the no-dimension rollup,
//! so one metric per name covers every job type. Locally nothing ingests
//! EMF (moto has no such pipeline), so the history is empty there.

use crate::error::BoxError;
use crate::metrics::Metric;
use async_trait::async_trait;

/// Whole minutes, the last of them the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first minute's start (ms since the epoch, a whole minute).
    pub start_ms: i64,
    /// How many minutes.
    pub minutes: usize,
}

/// One minute in ms.
pub const MINUTE_MS: i64 = 60_000;

impl Window {
    /// The last `minutes` minutes up to `now_ms`: the current one, so far,
    /// and the whole ones before it.
    pub fn last(minutes: usize, now_ms: i64) -> Self {
        let end = now_ms - now_ms.rem_euclid(MINUTE_MS) + MINUTE_MS;
        Self {
            start_ms: end - MINUTE_MS * minutes as i64,
            minutes,
        }
    }

    /// The end of the window (exclusive).
    pub fn end_ms(&self) -> i64 {
        self.start_ms + MINUTE_MS * self.minutes as i64
    }

    /// The index of the minute holding `at_ms`, if the window does.
    pub fn minute_of(&self, at_ms: i64) -> Option<usize> {
        if at_ms < self.start_ms || at_ms >= self.end_ms() {
            return None;
        }
        usize::try_from((at_ms - self.start_ms) / MINUTE_MS).ok()
    }
}

/// One metric's sum in each minute of a [`Window`], oldest first (0 where
/// nothing was published).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: Metric,
    pub per_minute: Vec<f64>,
}

impl Series {
    /// The sum over the whole window.
    pub fn total(&self) -> f64 {
        self.per_minute.iter().sum()
    }
}

/// Errors reading the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("CloudWatch {operation} failed: {source}")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

/// The published metrics, read back.
#[async_trait]
pub trait MetricHistory: Send + Sync + std::fmt::Debug {
    /// Each of `metrics` summed per minute over `window`, across job types,
    /// in the order asked.
    async fn per_minute(
        &self,
        metrics: &[Metric],
        window: Window,
    ) -> Result<Vec<Series>, HistoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_ends_with_the_current_minute() {
        let now = 10 * MINUTE_MS + 1_234;
        let window = Window::last(3, now);
        assert_eq!(window.start_ms, 8 * MINUTE_MS);
        assert_eq!(window.end_ms(), 11 * MINUTE_MS);
        assert_eq!(window.minute_of(8 * MINUTE_MS), Some(0));
        assert_eq!(window.minute_of(now), Some(2), "the current minute, so far");
        assert_eq!(window.minute_of(11 * MINUTE_MS), None);
        assert_eq!(window.minute_of(8 * MINUTE_MS - 1), None);
    }
}
