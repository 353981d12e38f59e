//! Summaries of repeated measurements: median and p90 by the nearest-rank
//! method, so every figure reported is one that was actually observed.

use serde::Serialize;

/// A summary of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let count = sorted.len();
        Some(Self {
            count,
            min: *sorted.first()?,
            median: nearest_rank(&sorted, 0.5),
            p90: nearest_rank(&sorted, 0.9),
            max: *sorted.last()?,
            mean: sorted.iter().sum::<f64>() / count as f64,
        })
    }
}

/// The `q` quantile of sorted, non-empty samples: the smallest sample with
/// at least `q` of all samples at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_are_observed_samples() {
        let samples: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.count, 10);
        assert_eq!((summary.min, summary.max), (1.0, 10.0));
        assert_eq!(summary.median, 5.0);
        assert_eq!(summary.p90, 9.0);
        assert_eq!(summary.mean, 5.5);
    }

    #[test]
    fn small_and_empty_sets() {
        assert_eq!(Summary::of(&[]), None);
        let one = Summary::of(&[3.0]).unwrap();
        assert_eq!((one.median, one.p90), (3.0, 3.0));
        let three = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((three.median, three.p90), (2.0, 3.0));
    }
}
