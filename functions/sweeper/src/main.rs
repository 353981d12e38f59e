//! The sweeper Lambda's entry point: logs, config and the DynamoDB client
//! once per cold start; then each scheduled event (EventBridge, every
//! `SweepIntervalMinutes`) runs [`Sweeper::invoke`]: a run, its
//! `JobsSwept` metrics, a log line, and the run's counts as the answer. A run goes on past
//! a failed query or write, then ends as an invocation error (for the
//! errors alarm); the next run tries again (sweeping is idempotent). With
//! `NOTIFY_QUEUE_URL`, it also hands owed webhooks back to the notifier.
//!
//! The event's content is not read: the run's time is the clock's, so a
//! late or retried invocation sweeps what is overdue when it runs.

use jobline_aws::{AwsTimeouts, bounded, lambda_sdk_config};
use jobline_core::{Clock, Config, telemetry};
use jobline_dynamodb::DynamoJobStore;
use jobline_sqs::SqsJobQueue;
use jobline_sweeper::Sweeper;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = bounded(
        &lambda_sdk_config(config.trust_roots),
        AwsTimeouts::sweeper(),
    );
    let mut sweeper = Sweeper::new(Arc::new(DynamoJobStore::from_sdk(&sdk, &config)));
    if let Some(notify_url) = config.webhooks.queue_url.as_deref() {
        sweeper = sweeper.with_webhooks(Arc::new(SqsJobQueue::from_sdk(&sdk, notify_url)));
    }
    let sweeper = Arc::new(sweeper);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let sweeper = Arc::clone(&sweeper);
        async move {
            let answer = sweeper.invoke(Clock::system().now_ms()).await?;
            Ok::<Value, Error>(answer)
        }
    }))
    .await
}
