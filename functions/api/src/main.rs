//! The API Lambda's entry point: logs, config and SDK clients once per cold
//! start, then every request goes to [`jobline_api::Api::handle`].
//!
//! The clients bound every operation by `API_AWS_TIMEOUT_MS`, so a submission
//! answers (202 or 503) within the function's timeout even when AWS is slow.

use jobline_api::Api;
use jobline_aws::{AwsTimeouts, bounded, lambda_sdk_config};
use jobline_core::{Config, telemetry};
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::schedules::DynamoScheduleStore;
use jobline_s3::S3ResultStore;
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
    let mut api = Api::new(
        Arc::new(jobs),
        queue.clone(),
        jobline_jobs::registry(config.demo_job_types),
        &config,
    )
    .with_queue_depth(queue);
    if let Some(bucket) = &config.results_bucket {
        api = api.with_results(Arc::new(S3ResultStore::from_sdk(&sdk, bucket)));
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
        async move { Ok::<_, Error>(api.handle(request).await.response) }
    }))
    .await
}
