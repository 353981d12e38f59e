//! The notifier Lambda's entry point: logs, config and SDK clients once per
//! cold start, then every event goes to [`jobline_notifier::Notifier::handle`]:
//! the jobs table's stream records (relayed to the notifier's queue) and that
//! queue's messages (delivered as signed webhooks). Its `webhook` spans are
//! exported before each answer when an OTLP endpoint is configured
//! (`jobline_core::spans`).

use jobline_aws::{AwsTimeouts, bounded, lambda_sdk_config};
use jobline_core::error::ConfigError;
use jobline_core::{Config, spans, telemetry};
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::callers::DynamoCallerCounts;
use jobline_notifier::Notifier;
use jobline_sqs::SqsJobQueue;
use jobline_webhooks::{Deliverer, SecretsManagerKeys};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = bounded(
        &lambda_sdk_config(config.trust_roots),
        AwsTimeouts::notifier(),
    );
    let secret_id = config
        .webhooks
        .secret_id
        .as_deref()
        .ok_or(ConfigError::Missing("WEBHOOK_SECRET_ID"))?;
    let queue_url = config
        .webhooks
        .queue_url
        .as_deref()
        .ok_or(ConfigError::Missing("NOTIFY_QUEUE_URL"))?;
    let jobs = DynamoJobStore::from_sdk(&sdk, &config);
    let counts = config
        .callers
        .table_name
        .as_ref()
        .map(|table| DynamoCallerCounts::beside(&jobs, table.clone()));
    let mut notifier = Notifier::new(
        Arc::new(jobs),
        Arc::new(SqsJobQueue::from_sdk(&sdk, queue_url)),
        Arc::new(SecretsManagerKeys::from_sdk(&sdk, secret_id)),
        Deliverer::new().with_timeout(config.webhooks.timeout),
        &config.webhooks,
    );
    if let Some(counts) = counts {
        notifier = notifier.with_counts(Arc::new(counts));
    }
    let notifier = Arc::new(notifier);
    run(service_fn(move |event: LambdaEvent<Value>| {
        let notifier = Arc::clone(&notifier);
        async move {
            let answer = notifier.handle(event.payload).await;
            // Before the answer: Lambda may freeze the process once it is posted.
            spans::flush().await;
            Ok::<Value, Error>(answer)
        }
    }))
    .await
}
