//! The operator's commands, which read the table and queues with the
//! operator's own AWS credentials (`jobs`, `retry`, `console`, `migrate`,
//! `dlq`, `callers`): one function each.

use super::{CliError, Exit, dlq_config, jobs_table, operator_clients, run_dlq, tools_sdk_config};
use crate::args::{CallersCommand, ConsoleArgs, DlqCommand, MigrateArgs, RetryArgs, StateArgs};
use crate::callers;
use crate::console::guard::Guard;
use crate::console::job_files::Bucket;
use crate::console::{Console, Scheduling, serve_with};
use crate::dlq::DeadLetterQueue;
use crate::jobs::{Retried, StateQuery, list_jobs, retry};
use jobline_cloudwatch::CloudWatchHistory;
use jobline_core::error::ConfigError;
use jobline_core::store::StateListing;
use jobline_core::{Clock, Config};
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::callers::DynamoCallerCounts;
use jobline_dynamodb::migrate::{Migration, MigrationPage};
use jobline_s3::S3Bucket;
use jobline_sqs::SqsJobQueue;
use std::io::Write;
use std::sync::Arc;

/// `jobline jobs`: every caller's jobs in one state, from the table (an operator's).
pub(super) async fn jobs(
    args: StateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    if StateListing::of(args.state) == StateListing::Unlisted {
        writeln!(
            err,
            "succeeded jobs are in no index, so they are not listed by state (an index entry \
             would cost every job write units): `jobline list` lists a caller's own jobs, \
             `jobline status ID` shows one, and the JobsSucceeded metric counts them"
        )?;
        return Ok(Exit::Usage);
    }
    let table = jobs_table(|name| std::env::var(name).ok())?;
    let store = DynamoJobStore::on_table(&tools_sdk_config().await, table);
    let query = StateQuery {
        job_type: args.job_type,
        owner: args.owner,
        created_since: args.since,
        created_before: args.before,
        ..StateQuery::new(args.state, args.limit.get())
    };
    list_jobs(&store, &query, Clock::system().now_ms(), out)
        .await?
        .report(err)?;
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
        bucket: config
            .results_bucket
            .as_ref()
            .map(|bucket| Bucket::of(Arc::new(S3Bucket::from_sdk(&sdk, bucket)))),
    };
    // The schedule pages and Run now act through the API's own code, on
    // the operator's credentials; with schedules only where the
    // configuration has them (SCHEDULES_TABLE, SCHEDULE_GROUP).
    let scheduling = Scheduling::from_sdk(&sdk, &config);
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
    serve_with(listener, Arc::new(console), Some(scheduling), stop).await?;
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

/// `jobline migrate`: the table brought to the current layout, a page at a
/// time, each page's totals on `err` (with where to resume), the run's on
/// `out` with its cost at on-demand prices.
pub(super) async fn migrate(
    args: MigrateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let table = jobs_table(|name| std::env::var(name).ok())?;
    let migration = Migration::from_sdk(&tools_sdk_config().await, &table);
    let mut total = MigrationPage {
        next: args.from,
        ..MigrationPage::default()
    };
    loop {
        let page = migration
            .page(
                total.next.as_deref(),
                args.dry_run,
                Clock::system().now_ms(),
            )
            .await
            .map_err(CliError::Migrate)?;
        total.add(page);
        writeln!(
            err,
            "{} items read, {} rewritten{}, {} checkpoints moved{}",
            total.scanned,
            total.rewritten,
            if args.dry_run { " (dry run)" } else { "" },
            total.checkpoints_moved,
            total
                .next
                .as_deref()
                .map(|next| format!("; resume with --from {next}"))
                .unwrap_or_default()
        )?;
        if total.next.is_none() {
            break;
        }
    }
    let json = serde_json::json!({
        "table": table,
        "dryRun": args.dry_run,
        "scanned": total.scanned,
        "rewritten": total.rewritten,
        "checkpointsMoved": total.checkpoints_moved,
        "movedMeanwhile": total.moved,
        "readUnits": total.read_units,
        "writeUnits": total.write_units,
        "costUsd": cost_usd(total.read_units, total.write_units),
    });
    writeln!(out, "{json}")?;
    Ok(Exit::Success)
}

/// On-demand list price in us-east-1 (checked 2026-11-27): $0.125 per
/// million read units, $0.625 per million write units.
fn cost_usd(read_units: u64, write_units: u64) -> f64 {
    (read_units as f64 * 0.125 + write_units as f64 * 0.625) / 1e6
}

/// `jobline callers show|recount OWNER`: a caller's counts (`CALLERS_TABLE`).
pub(super) async fn callers(
    command: CallersCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    let table = std::env::var("CALLERS_TABLE")
        .ok()
        .filter(|table| !table.is_empty())
        .ok_or(ConfigError::Missing("CALLERS_TABLE"))?;
    let sdk = tools_sdk_config().await;
    let now = Clock::system().now_ms();
    let shown = match command {
        CallersCommand::Show(args) => {
            let counts = DynamoCallerCounts::from_sdk(&sdk, table);
            callers::show(&counts, &args.owner, now).await?
        }
        CallersCommand::Recount(args) => {
            let store =
                DynamoJobStore::on_table(&sdk, jobs_table(|name| std::env::var(name).ok())?);
            let counts = DynamoCallerCounts::beside(&store, table);
            callers::recount(&store, &counts, &args.owner, now).await?
        }
    };
    writeln!(out, "{shown}")?;
    Ok(Exit::Success)
}
