//! The notifier Lambda's entry point: logs, config and SDK clients once per
//! cold start, then every event goes to [`jobline_notifier::Notifier::handle`]:
//! the jobs table's stream records (relayed to the notifier's queue) and that
//! queue's messages (delivered as signed webhooks).

use jobline_notifier::Notifier;
use jobline_shared::aws::{AwsTimeouts, Clients};
use jobline_shared::error::ConfigError;
use jobline_shared::webhook::Deliverer;
use jobline_shared::{Config, SqsJobQueue, telemetry};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::for_lambda(config.trust_roots)
        .await
        .with_timeouts(AwsTimeouts::notifier());
    let keys = clients
        .webhook_keys(&config)
        .ok_or(ConfigError::Missing("WEBHOOK_SECRET_ID"))?;
    let queue_url = config
        .webhooks
        .queue_url
        .as_deref()
        .ok_or(ConfigError::Missing("NOTIFY_QUEUE_URL"))?;
    let notifier = Arc::new(Notifier::new(
        Arc::new(clients.store(&config)),
        Arc::new(SqsJobQueue::new(clients.sqs.clone(), queue_url)),
        Arc::new(keys),
        Deliverer::new().with_timeout(config.webhooks.timeout),
        &config.webhooks,
    ));
    run(service_fn(move |event: LambdaEvent<Value>| {
        let notifier = Arc::clone(&notifier);
        async move { Ok::<Value, Error>(notifier.handle(event.payload).await) }
    }))
    .await
}
