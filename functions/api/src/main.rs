//! The API Lambda's entry point: logs, config and SDK clients once per cold
//! start, then every request goes to [`jobline_api::Api::handle`].
//!
//! The clients bound every operation by `API_AWS_TIMEOUT_MS`, so a submission
//! answers (202 or 503) within the function's timeout even when AWS is slow.

use jobline_api::Api;
use jobline_shared::aws::{AwsTimeouts, Clients};
use jobline_shared::{Config, telemetry};
use lambda_http::{Error, Request, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::for_lambda(config.trust_roots)
        .await
        .with_timeouts(AwsTimeouts::api(&config));
    let mut api = Api::new(
        Arc::new(clients.store(&config)),
        Arc::new(clients.queue(&config)),
        jobline_jobs::registry(config.demo_job_types),
        &config,
    )
    .with_queue_depth(Arc::new(clients.queue(&config)));
    if let Some(results) = clients.results(&config) {
        api = api.with_results(Arc::new(results));
    }
    // Read on first use (GET /webhook-secret), not at every cold start.
    if let Some(keys) = clients.webhook_keys(&config) {
        api = api.with_webhook_keys(Arc::new(keys));
    }
    let api = Arc::new(api);
    run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Error>(api.handle(request).await.response) }
    }))
    .await
}
