//! The worker Lambda's entry point: logs, config and SDK clients once per
//! cold start, then every SQS batch goes to [`jobline_worker::Worker::process_batch`]
//! (which also writes the batch's metrics), and the batch's spans are
//! exported before its answer when an OTLP endpoint is configured
//! (`jobline_core::spans`). If a handler overran its
//! deadline, the process ends once the response is posted
//! ([`jobline_worker::restart`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use jobline_aws::{AwsTimeouts, bounded, lambda_sdk_config};
use jobline_core::{Config, spans, telemetry};
use jobline_dynamodb::DynamoJobStore;
use jobline_s3::S3Bucket;
use jobline_sqs::SqsJobQueue;
use jobline_worker::Worker;
use jobline_worker::restart::{ExitAfterResponseLayer, RestartFlag};
use lambda_runtime::{Error, LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = bounded(
        &lambda_sdk_config(config.trust_roots),
        AwsTimeouts::worker(&config.worker),
    );
    let mut worker = Worker::new(
        Arc::new(DynamoJobStore::from_sdk(&sdk, &config)),
        Arc::new(SqsJobQueue::from_sdk(&sdk, &config.queue_url)),
        jobline_jobs::registry(config.demo_job_types),
        config.worker.clone(),
    );
    if let Some(bucket) = &config.results_bucket {
        let bucket = Arc::new(S3Bucket::from_sdk(&sdk, bucket));
        worker = worker.with_results(bucket.clone()).with_files(bucket);
    }
    let worker = Arc::new(worker);
    let restart = RestartFlag::new();
    let flag = restart.clone();
    let handler = service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = Arc::clone(&worker);
        let flag = flag.clone();
        async move {
            let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            let outcome = worker.process_batch(event.payload, deadline_ms).await;
            // Before the answer: Lambda may freeze the process once it is posted.
            spans::flush().await;
            if outcome.must_restart {
                flag.request();
            }
            Ok::<SqsBatchResponse, Error>(outcome.response)
        }
    });
    // As `lambda_runtime::run`, plus the exit layer outermost (added last).
    Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(ExitAfterResponseLayer::new(restart))
        .run()
        .await
}
