//! The operator's commands, which read the table and queues with the
//! operator's own AWS credentials (`jobs`, `retry`, `console`, `dlq`): one
//! function each.

use super::{CliError, Exit, dlq_config, jobs_table, operator_clients, run_dlq, tools_sdk_config};
use crate::args::{ConsoleArgs, DlqCommand, RetryArgs, StateArgs};
use crate::console::guard::Guard;
use crate::console::{Console, serve};
use crate::dlq::DeadLetterQueue;
use crate::jobs::{Retried, StateQuery, list_jobs, retry};
use jobline_cloudwatch::CloudWatchHistory;
use jobline_core::{Clock, Config};
use jobline_dynamodb::DynamoJobStore;
use jobline_sqs::SqsJobQueue;
use std::io::Write;
use std::sync::Arc;

/// `jobline jobs`: every caller's jobs in one state, from the table (an operator's).
pub(super) async fn jobs(
    args: StateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let table = jobs_table(|name| std::env::var(name).ok())?;
    let store = DynamoJobStore::on_table(&tools_sdk_config().await, table);
    let query = StateQuery {
        job_type: args.job_type,
        owner: args.owner,
        created_since: args.since,
        created_before: args.before,
        ..StateQuery::new(args.state, args.limit.get())
    };
    list_jobs(&store, &query, out).await?.report(err)?;
    Ok(Exit::Success)
}

/// `jobline retry`: a failed job queued again from its record.
pub(super) async fn retry_job(
    args: RetryArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let (config, sdk) = operator_clients(Config::from_env()).await?;
    let outcome = retry(
        &DynamoJobStore::from_sdk(&sdk, &config),
        &SqsJobQueue::from_sdk(&sdk, &config.queue_url),
        args.id,
        Clock::system().now_ms(),
    )
    .await?;
    let exit = match outcome {
        Retried::Requeued { message_id } => {
            writeln!(
                out,
                "job {} is queued again (message {message_id})",
                args.id
            )?;
            Exit::Success
        }
        Retried::SentAgain { message_id } => {
            writeln!(
                out,
                "job {} was already queued: its message was sent again ({message_id})",
                args.id
            )?;
            Exit::Success
        }
        Retried::Unchanged(state) => {
            writeln!(
                err,
                "job {} is {state}: only a failed job is retried",
                args.id
            )?;
            Exit::Failed
        }
        Retried::Missing => {
            writeln!(err, "job {} not found", args.id)?;
            Exit::Failed
        }
    };
    Ok(exit)
}

/// `jobline console`: the web console on 127.0.0.1 until Ctrl-C.
pub(super) async fn console(args: ConsoleArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let (config, dlq_url) = dlq_config(Config::from_env())?;
    let sdk = tools_sdk_config().await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|source| CliError::Listen {
            port: args.port,
            source,
        })?;
    let port = listener.local_addr()?.port();
    let console = Console {
        store: Arc::new(DynamoJobStore::from_sdk(&sdk, &config)),
        queue: Arc::new(SqsJobQueue::from_sdk(&sdk, &config.queue_url)),
        dlq: Arc::new(SqsJobQueue::from_sdk(&sdk, dlq_url)),
        history: Arc::new(CloudWatchHistory::new(&sdk)),
        guard: Guard::new(port),
        emulated: std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        clock: Clock::system(),
    };
    // Printed, never handed to a browser opener: that would put the
    // token on a command line every local user can read (the guard's
    // module doc says why, and why not through a file either).
    let url = console.guard.launch_url();
    writeln!(out, "Jobline console: {url}")?;
    writeln!(
        out,
        "(open it in your browser: it works once, for the first browser that opens it; \
         Ctrl-C stops the console)"
    )?;
    out.flush()?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, Arc::new(console), stop).await?;
    Ok(Exit::Success)
}

/// `jobline dlq …`: the DLQ tools on the configured queues and table.
pub(super) async fn dlq(command: DlqCommand, out: &mut dyn Write) -> Result<Exit, CliError> {
    let (config, dlq_url) = dlq_config(Config::from_env())?;
    let sdk = tools_sdk_config().await;
    let dlq = SqsJobQueue::from_sdk(&sdk, dlq_url);
    let queue = SqsJobQueue::from_sdk(&sdk, &config.queue_url);
    let store = DynamoJobStore::from_sdk(&sdk, &config);
    let tools = DeadLetterQueue::new(&dlq, &queue, &store);
    run_dlq(command, tools, out).await
}
