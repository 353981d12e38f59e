//! The sweeper Lambda's entry point: logs, config and the DynamoDB client
//! once per cold start; then each scheduled event (EventBridge, every
//! `SweepIntervalMinutes`) runs [`Sweeper::sweep_once`], writes its
//! `JobsSwept` metrics and answers with the run's counts. A failed run is an
//! invocation error (the next run starts over: sweeping is idempotent).
//!
//! The event's content is not read: the run's time is the clock's, so a
//! late or retried invocation sweeps what is overdue when it runs.

use jobline_shared::aws::{AwsTimeouts, Clients};
use jobline_shared::sweeper::Sweeper;
use jobline_shared::{Clock, Config, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::for_lambda(config.trust_roots)
        .await
        .with_timeouts(AwsTimeouts::sweeper());
    let sweeper = Arc::new(Sweeper::new(Arc::new(clients.store(&config))));
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let sweeper = Arc::clone(&sweeper);
        async move {
            let report = sweeper.sweep_once(Clock::system().now_ms()).await?;
            report.metrics.emit();
            tracing::info!(
                swept = report.swept,
                skipped = report.skipped,
                scanned = report.scanned,
                queries = report.queries,
                more = report.more,
                "sweep done"
            );
            Ok::<Value, Error>(json!({
                "swept": report.swept,
                "skipped": report.skipped,
                "scanned": report.scanned,
                "queries": report.queries,
                "more": report.more,
            }))
        }
    }))
    .await
}
