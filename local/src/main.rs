//! `jobline-local`: runs Jobline on this machine against the endpoint in
//! `AWS_ENDPOINT_URL` (moto, when started by `scripts/dev`).
//!
//! - `jobline-local provision [--name N]` creates the table, the job and
//!   notifier queues with their DLQs, the results bucket and the webhook
//!   master key secret, with the template's settings, and prints their names
//!   as `export` lines.
//! - `jobline-local serve [--port 3000]` serves the API and feeds the worker
//!   from the queue (and, with webhooks configured, the notifier from the
//!   table's stream and its queue) until Ctrl-C or SIGTERM, then stops
//!   gracefully (see [`jobline_local::stack`]). With `--ingest-metrics` it
//!   also puts the functions' metrics into the emulator's CloudWatch, which
//!   nothing else does locally, for the console's chart.
//!
//! Errors are printed as one plain sentence and exit with status 1.

use clap::{Parser, Subcommand};
use jobline_aws::AwsTimeouts;
use jobline_cloudwatch::CloudWatchHistory;
use jobline_core::limits::QueueSettings;
use jobline_core::{Config, ConfigError, telemetry};
use jobline_local::Clients;
use jobline_local::poller::PollerSettings;
use jobline_local::provision;
use jobline_local::provision::ProvisionError;
use jobline_local::server::{self, BindError};
use jobline_local::stack::{Webhooks, notifier_poller_settings};
use jobline_local::stream::{StreamError, StreamReader};
use jobline_local::{ServeError, Stack, shutdown};
use jobline_sqs::SqsJobQueue;
use jobline_webhooks::Deliverer;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
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
    /// Create the table, queues, bucket and webhook secret (idempotent) and
    /// print their names as shell exports.
    Provision {
        /// Base name: the table and queue are NAME, the DLQ NAME-dlq.
        #[arg(long, default_value = "jobline-local")]
        name: String,
    },
    /// Serve the API and run the worker from the queue, until Ctrl-C or SIGTERM.
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The port; 0 picks a free one (the address is printed).
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Records per worker invocation (the mapping's BatchSize).
        #[arg(long, default_value_t = 10)]
        batch_size: usize,
        /// The mapping's MaximumBatchingWindowInSeconds.
        #[arg(long, default_value_t = 1)]
        batching_window_secs: u64,
        /// Concurrent pollers (the mapping scales them up to MaximumConcurrency);
        /// 0 serves the API alone, for a worker in another process.
        #[arg(long, default_value_t = 2)]
        pollers: usize,
        /// Messages the pollers hold to hand out as SQS fair queues do, by
        /// each job's caller (its message group); 0: in the order received.
        /// The model acts only with 30 or more messages in flight
        /// (3 pollers or more at the default batch size).
        #[arg(long, default_value_t = 100)]
        fair_window: usize,
        /// The worker function's timeout: each batch's deadline (default
        /// WORKER_TIMEOUT_SECS, else 60). At most the queue's visibility
        /// timeout, as Lambda requires of a mapping.
        #[arg(long)]
        function_timeout_secs: Option<u32>,
        /// Seconds between sweeps for jobs past their time bound (the
        /// template's SweepIntervalMinutes).
        #[arg(long, default_value_t = 300)]
        sweep_interval_secs: u64,
        /// Accept http:// callback URLs to loopback (127.0.0.1, [::1],
        /// localhost), for a webhook receiver on this machine. Never in a
        /// deployment, which accepts public https receivers only.
        #[arg(long)]
        allow_local_callbacks: bool,
        /// A PEM file of extra roots the notifier trusts, for a local https
        /// receiver with a certificate of its own CA.
        #[arg(long)]
        webhook_ca: Option<std::path::PathBuf>,
        /// Put the functions' metrics into the emulator's CloudWatch (as
        /// CloudWatch Logs does with their EMF lines when deployed), so that
        /// `jobline console` charts them. `scripts/dev` turns it on.
        #[arg(long)]
        ingest_metrics: bool,
    },
}

/// Why `jobline-local` stopped with an error.
#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("could not read the webhook CA file {path}: {reason}")]
    WebhookCa { path: String, reason: String },
    #[error(
        "the function timeout ({function_secs} s) is longer than the queue's visibility timeout \
         ({visibility_secs} s): messages would come back while their batch runs, and Lambda \
         refuses such a mapping; lower --function-timeout-secs"
    )]
    TimeoutOverVisibility {
        function_secs: u32,
        visibility_secs: i32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jobline-local: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Webhooks, if the configuration names a master key secret and a
/// notifier queue (as `provision` prints them); else they stay off.
async fn webhooks(
    clients: &Clients,
    config: &Config,
    extra_ca: Option<&std::path::Path>,
) -> Result<Option<Webhooks>, LocalError> {
    let (Some(keys), Some(queue_url)) = (
        clients.webhook_keys(config),
        config.webhooks.queue_url.as_deref(),
    ) else {
        tracing::info!("webhooks are off: WEBHOOK_SECRET_ID or NOTIFY_QUEUE_URL is not set");
        return Ok(None);
    };
    let mut deliverer = Deliverer::new();
    if let Some(path) = extra_ca {
        let failed = |reason: String| LocalError::WebhookCa {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        deliverer = Deliverer::with_extra_roots_pem(&pem).map_err(|e| failed(e.to_string()))?;
    }
    let stream = StreamReader::for_table(
        &clients.dynamodb,
        clients.streams.clone(),
        &config.table_name,
    )
    .await?;
    Ok(Some(Webhooks {
        store: Arc::new(clients.store(config)),
        keys: Arc::new(keys),
        queue: Arc::new(SqsJobQueue::new(clients.sqs.clone(), queue_url)),
        stream,
        deliverer: deliverer.with_timeout(config.webhooks.timeout),
        poller: notifier_poller_settings(),
    }))
}

async fn run(cli: Cli) -> Result<(), LocalError> {
    let clients = Clients::from_env().await;
    match cli.command {
        Command::Provision { name } => {
            provision::create_table(&clients.dynamodb, &name).await?;
            let bucket = provision::bucket_name(&name);
            provision::create_bucket(
                &clients.s3,
                &bucket,
                jobline_core::config::DEFAULT_RETENTION_DAYS,
            )
            .await?;
            let queues =
                provision::create_queues(&clients.sqs, &name, QueueSettings::TEMPLATE).await?;
            println!("export JOBS_TABLE={name}");
            println!("export JOBS_QUEUE_URL={}", queues.queue_url);
            println!("export JOBS_DLQ_URL={}", queues.dlq_url);
            println!("export RESULTS_BUCKET={bucket}");
            let notify = provision::create_queues(
                &clients.sqs,
                &provision::notify_queue_name(&name),
                QueueSettings::NOTIFY,
            )
            .await?;
            println!("export NOTIFY_QUEUE_URL={}", notify.queue_url);
            println!(
                "export NOTIFY_MAX_RECEIVE_COUNT={}",
                QueueSettings::NOTIFY.max_receive_count
            );
            let secret = provision::create_webhook_secret(&clients.secrets, &name).await?;
            println!("export WEBHOOK_SECRET_ID={secret}");
            let schedules = provision::schedules_table_name(&name);
            provision::create_schedules_table(&clients.dynamodb, &schedules).await?;
            let group = provision::schedule_group_name(&name);
            provision::create_schedule_group(&clients.scheduler, &group).await?;
            println!("export SCHEDULES_TABLE={schedules}");
            let callers = provision::callers_table_name(&name);
            provision::create_callers_table(&clients.dynamodb, &callers).await?;
            println!("export CALLERS_TABLE={callers}");
            println!("export SCHEDULE_GROUP={group}");
            // Locally the firer calls the fire function's library itself; the
            // emulator stores these as the timers' target, as deployed.
            println!(
                "export FIRE_FUNCTION_ARN={}",
                provision::local_arn("lambda", &format!("function:{name}-fire"))
            );
            println!(
                "export SCHEDULER_ROLE_ARN={}",
                provision::local_arn("iam", &format!("role/{name}-scheduler"))
            );
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
            fair_window,
            function_timeout_secs,
            sweep_interval_secs,
            allow_local_callbacks,
            webhook_ca,
            ingest_metrics,
        } => {
            let mut config = Config::from_env()?;
            config.webhooks.allow_local_callbacks |= allow_local_callbacks;
            let function_timeout_secs =
                function_timeout_secs.unwrap_or(config.worker.function_timeout_secs);
            config.worker.function_timeout_secs = function_timeout_secs;
            // Bind before anything else, so a taken port is the first error.
            let (listener, addr) = server::bind(SocketAddr::new(host, port)).await?;
            // Locally there is no authorizer: every request is `anonymous`,
            // and links point at this server unless PUBLIC_BASE_URL says
            // otherwise. Deployed, neither holds (the template sets neither).
            config.allow_anonymous = true;
            config
                .public_base_url
                .get_or_insert_with(|| format!("http://{addr}"));
            let attributes = provision::queue_attributes(&clients.sqs, &config.queue_url).await?;
            let defaults = PollerSettings::default();
            let visibility_secs = attributes
                .get("VisibilityTimeout")
                .and_then(|v| v.parse().ok())
                .unwrap_or(defaults.visibility_secs);
            if i64::from(function_timeout_secs) > i64::from(visibility_secs) {
                return Err(LocalError::TimeoutOverVisibility {
                    function_secs: function_timeout_secs,
                    visibility_secs,
                });
            }
            let poller = PollerSettings {
                batch_size: batch_size.clamp(1, 10_000),
                batching_window: Duration::from_secs(batching_window_secs),
                visibility_secs,
                function_timeout: Duration::from_secs(u64::from(function_timeout_secs)),
                fair_window,
                ..defaults
            };
            // Each part's calls bounded as its function's are deployed.
            let api = clients.clone().with_timeouts(AwsTimeouts::api(&config));
            let worker = clients
                .clone()
                .with_timeouts(AwsTimeouts::worker(&config.worker));
            let mut stack = Stack::builder(
                Arc::new(api.store(&config)),
                Arc::new(api.queue(&config)),
                &config,
            )
            .worker_clients(
                Arc::new(worker.store(&config)),
                Arc::new(worker.queue(&config)),
            );
            if let Some(bucket) = clients.results(&config) {
                let bucket = Arc::new(bucket);
                stack = stack.results(bucket.clone()).files(bucket);
            }
            if let Some(webhooks) = webhooks(&clients, &config, webhook_ca.as_deref()).await? {
                stack = stack.webhooks(webhooks);
                // Counted down by the notifier's relay, which only runs with it.
                if let Some(counts) = api.caller_counts(&config) {
                    stack = stack.caller_counts(Arc::new(counts));
                }
            }
            if let Some(schedules) = api.schedules(&config) {
                stack = stack.schedules(schedules);
            }
            let stack = stack
                .poller_settings(poller)
                .queue_arn(attributes.get("QueueArn").cloned().unwrap_or_default())
                .pollers(pollers)
                .sweep_interval(Duration::from_secs(sweep_interval_secs))
                .build();
            if pollers == 0 {
                tracing::info!(%addr, "serving the API; no worker in this process");
            } else {
                tracing::info!(%addr, pollers, "serving the API and polling the queue");
            }
            if ingest_metrics {
                // Bounded: a stalled emulator costs dropped figures, never memory.
                let (forward, forwarded) = tokio::sync::mpsc::channel(1_024);
                jobline_core::metrics::forward_to(forward);
                let history = CloudWatchHistory::new(&clients.sdk);
                tokio::spawn(history.ingest_forwarded(forwarded));
                tracing::info!("putting the metrics into the emulator's CloudWatch");
            }
            println!("Jobline API on http://{addr}  (Ctrl-C to stop)");
            jobline_local::serve(stack, listener, shutdown::signal()).await?;
        }
    }
    Ok(())
}
