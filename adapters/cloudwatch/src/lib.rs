//! [`CloudWatchHistory`]: [`MetricHistory`] on CloudWatch's `GetMetricData`.
//!
//! One request asks for every metric at once (up to 500 queries a request),
//! as the `Sum` of each minute of the no-dimension rollup: a metric query
//! costs $0.01 per 1,000 metrics requested, so a look at the console's
//! overview costs about $0.00003.

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MetricDataQuery, MetricDatum, MetricStat, StandardUnit};
use jobline_aws::sdk_error;
use jobline_core::activity::{HistoryError, MetricHistory, Series, Window};
use jobline_core::metrics::{Metric, Metrics, NAMESPACE};

/// [`MetricHistory`] on the `Jobline` namespace of one account and region.
#[derive(Debug, Clone)]
pub struct CloudWatchHistory {
    client: Client,
}

impl CloudWatchHistory {
    /// On `shared`, a tool's SDK configuration (the CLI's and the local
    /// runner's `aws_config::load_defaults`).
    pub fn new(shared: &aws_types::SdkConfig) -> Self {
        Self {
            client: Client::new(shared),
        }
    }
}

fn aws(operation: &'static str) -> impl FnOnce(BoxedSdkError) -> HistoryError {
    move |source| HistoryError::Aws { operation, source }
}

type BoxedSdkError = jobline_core::error::BoxError;

/// `PutMetricData`'s caps: datums a request, values a datum.
const MAX_DATUMS: usize = 1_000;
const MAX_VALUES: usize = 150;

impl CloudWatchHistory {
    /// Puts `metrics` into CloudWatch as EMF ingestion would, at `at_ms`,
    /// in the no-dimension rollup the console reads. For the local runner,
    /// where nothing ingests EMF lines (see
    /// [`metrics::forward_to`](jobline_core::metrics::forward_to)); deployed,
    /// CloudWatch Logs does this from the functions' logs, under `JobType`
    /// too. (moto sums every series of a name into a no-dimension query, so
    /// a `JobType` series would be counted twice there.)
    pub async fn ingest(&self, metrics: &Metrics, at_ms: i64) -> Result<(), HistoryError> {
        let mut datums = Vec::new();
        for (_, metric, values) in metrics.figures() {
            for part in values.chunks(MAX_VALUES) {
                datums.push(
                    MetricDatum::builder()
                        .metric_name(metric.name())
                        .set_values(Some(part.to_vec()))
                        .unit(StandardUnit::from(metric.unit()))
                        .timestamp(DateTime::from_millis(at_ms))
                        .build(),
                );
            }
        }
        for batch in datums.chunks(MAX_DATUMS) {
            self.client
                .put_metric_data()
                .namespace(NAMESPACE)
                .set_metric_data(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| aws("PutMetricData")(sdk_error(e)))?;
        }
        Ok(())
    }

    /// Puts every figure received on `forwarded` into CloudWatch, until the
    /// channel closes; a failed put is logged and dropped.
    pub async fn ingest_forwarded(self, mut forwarded: tokio::sync::mpsc::Receiver<Metrics>) {
        while let Some(metrics) = forwarded.recv().await {
            if let Err(error) = self
                .ingest(&metrics, jobline_core::clock::Clock::system().now_ms())
                .await
            {
                tracing::warn!(%error, "could not put metrics into CloudWatch");
            }
        }
    }
}

#[async_trait]
impl MetricHistory for CloudWatchHistory {
    async fn per_minute(
        &self,
        metrics: &[Metric],
        window: Window,
    ) -> Result<Vec<Series>, HistoryError> {
        let queries = metrics
            .iter()
            .enumerate()
            .map(|(i, metric)| {
                let stat = MetricStat::builder()
                    .metric(
                        aws_sdk_cloudwatch::types::Metric::builder()
                            .namespace(NAMESPACE)
                            .metric_name(metric.name())
                            .build(),
                    )
                    .period(60)
                    .stat("Sum")
                    .build();
                MetricDataQuery::builder()
                    .id(format!("m{i}"))
                    .metric_stat(stat)
                    .return_data(true)
                    .build()
            })
            .collect::<Vec<_>>();
        let mut series: Vec<Series> = metrics
            .iter()
            .map(|&metric| Series {
                metric,
                per_minute: vec![0.0; window.minutes],
            })
            .collect();
        let mut next_token = None;
        loop {
            let output = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from_millis(window.start_ms))
                .end_time(DateTime::from_millis(window.end_ms()))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| aws("GetMetricData")(sdk_error(e)))?;
            for result in output.metric_data_results() {
                let index = result
                    .id()
                    .and_then(|id| id.strip_prefix('m')?.parse::<usize>().ok());
                let Some(series) = index.and_then(|i| series.get_mut(i)) else {
                    continue;
                };
                for (at, value) in result.timestamps().iter().zip(result.values()) {
                    let minute = at.to_millis().ok().and_then(|ms| window.minute_of(ms));
                    if let Some(minute) = minute {
                        series.per_minute[minute] += value;
                    }
                }
            }
            next_token = output.next_token;
            if next_token.is_none() {
                return Ok(series);
            }
        }
    }
}
