//! `FixedHistory`: a [`MetricHistory`] holding the points tests give it.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::activity::{HistoryError, MetricHistory, Series, Window};
use jobline_core::metrics::Metric;
use std::sync::Mutex;

/// Points `(metric, at_ms, value)` recorded by a test.
#[derive(Debug, Default)]
pub struct FixedHistory {
    points: Mutex<Vec<(Metric, i64, f64)>>,
}

impl FixedHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` of `metric` at `at_ms`, as a function's EMF line would.
    pub fn record(&self, metric: Metric, at_ms: i64, value: f64) {
        lock(&self.points).push((metric, at_ms, value));
    }
}

#[async_trait]
impl MetricHistory for FixedHistory {
    async fn per_minute(
        &self,
        metrics: &[Metric],
        window: Window,
    ) -> Result<Vec<Series>, HistoryError> {
        let points = lock(&self.points);
        Ok(metrics
            .iter()
            .map(|&metric| {
                let mut per_minute = vec![0.0; window.minutes];
                for &(_, at, value) in points.iter().filter(|(m, ..)| *m == metric) {
                    if let Some(minute) = window.minute_of(at) {
                        per_minute[minute] += value;
                    }
                }
                Series { metric, per_minute }
            })
            .collect())
    }
}
