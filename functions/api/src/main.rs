//! The API Lambda's entry point: logs, config and SDK clients once per cold
//! start, then every request goes to [`jobline_api::Api::handle`]; a
//! submission's span is exported before its answer when an OTLP endpoint is
//! configured (`jobline_core::spans`).
//!
//! The clients bound every operation by `API_AWS_TIMEOUT_MS`, so a submission
//! answers (202 or 503) within the function's timeout even when AWS is slow.

use jobline_api::Api;
use jobline_aws::{AwsTimeouts, bounded, lambda_sdk_config};
use jobline_core::{Config, spans, telemetry};
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::callers::DynamoCallerCounts;
use jobline_dynamodb::schedules::DynamoScheduleStore;
use jobline_s3::S3Bucket;
use jobline_scheduler::{EventBridgeTimers, TimerTarget};
use jobline_sqs::SqsJobQueue;
use jobline_webhooks::SecretsManagerKeys;
use lambda_http::{Error, Request, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = bounded(
        &lambda_sdk_config(config.trust_roots),
        AwsTimeouts::api(&config),
    );
    let queue = Arc::new(SqsJobQueue::from_sdk(&sdk, &config.queue_url));
    let jobs = DynamoJobStore::from_sdk(&sdk, &config);
    let schedules = config.schedules.as_ref().map(|schedules| {
        (
            // Its client built on first use: most requests write no timer.
            Arc::new(EventBridgeTimers::from_sdk(
                &sdk,
                TimerTarget::of(schedules),
            )),
            Arc::new(DynamoScheduleStore::beside(
                &jobs,
                schedules.table_name.clone(),
            )),
            schedules.max_per_caller,
        )
    });
    let counts = config
        .callers
        .table_name
        .as_ref()
        .map(|table| Arc::new(DynamoCallerCounts::beside(&jobs, table.clone())));
    let mut api = Api::new(
        Arc::new(jobs),
        queue.clone(),
        jobline_jobs::registry(config.demo_job_types),
        &config,
    )
    .with_queue_depth(queue);
    if let Some(counts) = counts {
        api = api.with_caller_counts(counts);
    }
    if let Some(bucket) = &config.results_bucket {
        let bucket = Arc::new(S3Bucket::from_sdk(&sdk, bucket));
        api = api.with_results(bucket.clone()).with_files(bucket);
    }
    // Read on first use (GET /webhook-secret), not at every cold start.
    if let Some(secret_id) = &config.webhooks.secret_id {
        api = api.with_webhook_keys(Arc::new(SecretsManagerKeys::from_sdk(&sdk, secret_id)));
    }
    if let Some((timers, store, max_per_caller)) = schedules {
        api = api
            .with_timers(timers)
            .with_schedules(store, max_per_caller);
    }
    let api = Arc::new(api);
    run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move {
            let response = api.handle(request).await.response;
            // Before the answer: Lambda may freeze the process once it is posted.
            spans::flush().await;
            Ok::<_, Error>(response)
        }
    }))
    .await
}
