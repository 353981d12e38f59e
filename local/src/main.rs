//! `jobline-local`: runs Jobline on this machine against the endpoint in
//! `AWS_ENDPOINT_URL` (moto, when started by `scripts/dev`).
//!
//! - `jobline-local provision [--name N]` creates the table, queue and DLQ
//!   with the template's settings and prints their names as `export` lines.
//! - `jobline-local serve [--port 3000]` serves the API and feeds the worker
//!   from the queue until Ctrl-C.

use clap::{Parser, Subcommand};
use jobline_api::Api;
use jobline_local::poller::{Poller, PollerSettings};
use jobline_local::server;
use jobline_shared::aws::Clients;
use jobline_shared::provision::{self, QueueSettings, WORKER_TIMEOUT_SECS};
use jobline_shared::{Config, telemetry};
use jobline_worker::Worker;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(version, about = "Run Jobline locally against an AWS emulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the table, queue and DLQ (idempotent) and print their names.
    Provision {
        /// Base name: the table and queue are NAME, the DLQ NAME-dlq.
        #[arg(long, default_value = "jobline-local")]
        name: String,
    },
    /// Serve the API and run the worker from the queue, until Ctrl-C.
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Records per worker invocation (the mapping's BatchSize).
        #[arg(long, default_value_t = 10)]
        batch_size: usize,
        /// The mapping's MaximumBatchingWindowInSeconds.
        #[arg(long, default_value_t = 1)]
        batching_window_secs: u64,
        /// Concurrent pollers (the mapping scales them up to MaximumConcurrency).
        #[arg(long, default_value_t = 2)]
        pollers: usize,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let cli = Cli::parse();
    let clients = Clients::from_env().await;
    match cli.command {
        Command::Provision { name } => {
            provision::create_table(&clients.dynamodb, &name).await?;
            let queues =
                provision::create_queues(&clients.sqs, &name, QueueSettings::TEMPLATE).await?;
            println!("export JOBS_TABLE={name}");
            println!("export JOBS_QUEUE_URL={}", queues.queue_url);
            println!("export JOBS_DLQ_URL={}", queues.dlq_url);
            println!(
                "export MAX_RECEIVE_COUNT={}",
                QueueSettings::TEMPLATE.max_receive_count
            );
        }
        Command::Serve {
            host,
            port,
            batch_size,
            batching_window_secs,
            pollers,
        } => {
            let config = Config::from_env()?;
            let store = Arc::new(clients.store(&config));
            let queue = Arc::new(clients.queue(&config));
            let job_types = jobline_jobs::registry();
            let api = Arc::new(Api::new(
                store.clone(),
                queue.clone(),
                job_types.clone(),
                &config,
            ));
            let worker = Arc::new(Worker::new(
                store,
                queue.clone(),
                job_types,
                config.worker.clone(),
            ));
            let attributes = provision::queue_attributes(&clients.sqs, &config.queue_url).await?;
            let visibility_secs = attributes
                .get("VisibilityTimeout")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            let settings = PollerSettings {
                batch_size: batch_size.clamp(1, 10_000),
                batching_window: Duration::from_secs(batching_window_secs),
                wait_secs: 20,
                visibility_secs,
                function_timeout: Duration::from_secs(u64::from(WORKER_TIMEOUT_SECS)),
            };
            let queue_arn = attributes.get("QueueArn").cloned().unwrap_or_default();
            let (listener, addr) = server::bind(SocketAddr::new(host, port)).await?;
            tracing::info!(%addr, pollers, "serving the API and polling the queue; Ctrl-C stops");
            println!("Jobline API on http://{addr}  (Ctrl-C to stop)");
            let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..pollers.max(1) {
                let poller =
                    Poller::new(queue.clone(), worker.clone(), settings, queue_arn.clone());
                let mut stopped = stop_receiver.clone();
                tasks.spawn(async move {
                    poller
                        .run(async move { drop(stopped.wait_for(|s| *s).await) })
                        .await;
                });
            }
            let shutdown = async {
                drop(tokio::signal::ctrl_c().await);
            };
            server::serve(listener, api, shutdown).await?;
            tracing::info!("stopping");
            stop_sender.send_replace(true);
            while tasks.join_next().await.is_some() {}
        }
    }
    Ok(())
}
