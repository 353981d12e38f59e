//! The worker Lambda's entry point: logs, config and SDK clients once per
//! cold start, then every SQS batch goes to [`jobline_worker::Worker::process_batch`].

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use jobline_shared::aws::Clients;
use jobline_shared::{Config, JobTypes, telemetry};
use jobline_worker::Worker;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::for_lambda(config.trust_roots).await;
    let worker = Arc::new(Worker::new(
        Arc::new(clients.store(&config)),
        Arc::new(clients.queue(&config)),
        JobTypes::builtin(),
        config.worker.clone(),
    ));
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = Arc::clone(&worker);
        async move {
            let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            let outcome = worker.process_batch(event.payload, deadline_ms).await;
            outcome.metrics.emit();
            Ok::<SqsBatchResponse, Error>(outcome.response)
        }
    }))
    .await
}
