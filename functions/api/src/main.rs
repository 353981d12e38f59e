//! The API Lambda's entry point: logs, config and SDK clients once per cold
//! start, then every request goes to [`jobline_api::Api::handle`].

use jobline_api::Api;
use jobline_shared::aws::Clients;
use jobline_shared::{Config, telemetry};
use lambda_http::{Error, Request, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::for_lambda(config.trust_roots).await;
    let api = Arc::new(Api::new(
        Arc::new(clients.store(&config)),
        Arc::new(clients.queue(&config)),
        jobline_jobs::registry(),
        &config,
    ));
    run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move {
            let reply = api.handle(request).await;
            reply.metrics.emit();
            Ok::<_, Error>(reply.response)
        }
    }))
    .await
}
