//! The commands that call Jobline's HTTP API as a client does (`submit`,
//! `status`, `wait`, `list`, `cancel`, `run`, `delete`, `webhook-secret`):
//! one function each, with only the API's URL and credentials to go on.
//! The schedules' commands are in `schedule.rs`.

use super::{CliError, Exit, api_client, list_query, print_json, print_pages, read_payload};
use crate::args::{ApiArgs, JobArgs, JobsArgs, SubmitArgs, WaitArgs};
use crate::client::{Cancel, RunNow, Waited, When};
use crate::progress::{ProgressDisplay, ProgressStyle};
use jobline_core::JobState;
use std::io::Write;
use std::time::Duration;

/// `jobline submit`: one job, its `202` printed.
pub(super) async fn submit(args: SubmitArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let payload = read_payload(&args.payload)?;
    let when = match (args.when.at, args.when.delay) {
        (Some(at), _) => Some(When::At(at)),
        (None, Some(secs)) => Some(When::After(secs)),
        (None, None) => None,
    };
    let client = api_client(&args.api).await?;
    let accepted = client
        .submit(
            &args.job_type,
            &payload,
            args.callback_url.as_deref(),
            args.idempotency_key.as_deref(),
            when.as_ref(),
        )
        .await?;
    print_json(out, &accepted)?;
    Ok(Exit::Success)
}

/// `jobline status`: the job as the API shows it.
pub(super) async fn status(args: JobArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let job = api_client(&args.api).await?.status(args.id).await?;
    print_json(out, &job)?;
    Ok(Exit::Success)
}

/// `jobline wait`: polls until the job is final or the timeout passes, drawing its progress; the exit code says how it ended.
pub(super) async fn wait(
    args: WaitArgs,
    progress: ProgressStyle,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let client = api_client(&args.api).await?;
    let mut display = ProgressDisplay::new(progress);
    let waited = client
        .wait(
            args.id,
            Duration::from_secs(args.timeout),
            Duration::from_millis(args.interval),
            |job| display.show(job, &mut *err).map_err(CliError::Output),
        )
        .await;
    display.finish();
    match waited? {
        Waited::Finished { job, status } => {
            print_json(out, &job)?;
            Ok(if status == JobState::Succeeded {
                Exit::Success
            } else {
                Exit::Failed
            })
        }
        Waited::TimedOut { job, status } => {
            print_json(out, &job)?;
            writeln!(
                err,
                "timed out after {} s: job {} is still {status}",
                args.timeout, args.id
            )?;
            Ok(Exit::TimedOut)
        }
    }
}

/// `jobline list`: the caller's jobs, one JSON object a line, page after page up to `--limit`.
pub(super) async fn list(
    args: JobsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let client = api_client(&args.api).await?;
    print_pages(
        async |size, cursor| client.list(&list_query(&args, size, cursor)).await,
        "jobs",
        args.cursor.clone(),
        args.limit,
        "more jobs: jobline list --cursor",
        out,
        err,
    )
    .await?;
    Ok(Exit::Success)
}

/// `jobline webhook-secret`: the caller's signing secret.
pub(super) async fn webhook_secret(args: ApiArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let secret = api_client(&args).await?.webhook_secret().await?;
    writeln!(out, "{secret}")?;
    Ok(Exit::Success)
}

/// `jobline delete`: a finished job and its payload, at once.
pub(super) async fn delete(args: JobArgs, err: &mut dyn Write) -> Result<Exit, CliError> {
    let id = args.id;
    match api_client(&args.api).await?.delete(id).await? {
        None => {
            writeln!(err, "job {id} is deleted")?;
            Ok(Exit::Success)
        }
        Some(state) => {
            writeln!(
                err,
                "job {id} is {state}: only a finished job can be deleted (cancel it first)"
            )?;
            Ok(Exit::Failed)
        }
    }
}

/// `jobline cancel`: a queued job is cancelled at once; a running one at its next heartbeat.
pub(super) async fn cancel(
    args: JobArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let id = args.id;
    match api_client(&args.api).await?.cancel(id).await? {
        Cancel::Cancelled { job } => {
            print_json(out, &job)?;
            writeln!(err, "job {id} is cancelled")?;
            Ok(Exit::Success)
        }
        Cancel::Requested { job } => {
            print_json(out, &job)?;
            writeln!(
                err,
                "cancellation requested: job {id} is running and stops at its next \
                 heartbeat (unless it finishes first)"
            )?;
            Ok(Exit::Success)
        }
        Cancel::Finished { status } => {
            writeln!(
                err,
                "job {id} had already finished ({status}): nothing to cancel"
            )?;
            Ok(Exit::Failed)
        }
    }
}

/// `jobline run`: a scheduled job runs now instead of at its time.
pub(super) async fn run(
    args: JobArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let id = args.id;
    match api_client(&args.api).await?.run_now(id).await? {
        RunNow::Queued { job } => {
            print_json(out, &job)?;
            writeln!(err, "job {id} is queued: it runs now")?;
            Ok(Exit::Success)
        }
        RunNow::NotScheduled { status } => {
            writeln!(
                err,
                "job {id} is {status}: only a scheduled job can be run now"
            )?;
            Ok(Exit::Failed)
        }
    }
}
