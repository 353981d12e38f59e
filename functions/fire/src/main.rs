//! The fire function's entry point: logs, config and SDK clients once per
//! cold start, then every invocation's payload (the timer's input, which
//! EventBridge Scheduler sends as the event) goes to
//! [`jobline_api::Api::fire`].
//!
//! Scheduler invokes it asynchronously: an error makes Lambda retry the
//! fire (twice, `EventInvokeConfig`) and then send it to the failures
//! queue, whose alarm an operator sees.

use jobline_api::Api;
use jobline_aws::{AwsTimeouts, bounded, lambda_sdk_config};
use jobline_core::{Config, Metrics, spans, telemetry};
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::callers::DynamoCallerCounts;
use jobline_dynamodb::schedules::DynamoScheduleStore;
use jobline_scheduler::{EventBridgeTimers, TimerTarget};
use jobline_sqs::SqsJobQueue;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let schedules = config
        .schedules
        .clone()
        .ok_or("the fire function needs SCHEDULES_TABLE and SCHEDULE_GROUP")?;
    let sdk = bounded(
        &lambda_sdk_config(config.trust_roots),
        AwsTimeouts::api(&config),
    );
    let queue = Arc::new(SqsJobQueue::from_sdk(&sdk, &config.queue_url));
    let timers = EventBridgeTimers::from_sdk(&sdk, TimerTarget::of(&schedules));
    let jobs = DynamoJobStore::from_sdk(&sdk, &config);
    let store = DynamoScheduleStore::beside(&jobs, schedules.table_name.clone());
    // A fire's job counts against its caller's bound, as POST /jobs's does.
    let counts = config
        .callers
        .table_name
        .as_ref()
        .map(|table| DynamoCallerCounts::beside(&jobs, table.clone()));
    let mut api = Api::new(
        Arc::new(jobs),
        queue.clone(),
        jobline_jobs::registry(config.demo_job_types),
        &config,
    )
    .with_queue_depth(queue)
    .with_timers(Arc::new(timers))
    .with_schedules(Arc::new(store), schedules.max_per_caller);
    if let Some(counts) = counts {
        api = api.with_caller_counts(Arc::new(counts));
    }
    let api = Arc::new(api);
    run(service_fn(move |event: LambdaEvent<Value>| {
        let api = Arc::clone(&api);
        async move {
            let mut metrics = Metrics::new();
            let fired = api.fire(&event.payload.to_string(), &mut metrics).await;
            metrics.emit();
            // Before the answer: Lambda may freeze the process right after.
            spans::flush().await;
            fired.map(|_| ()).map_err(Error::from)
        }
    }))
    .await
}
