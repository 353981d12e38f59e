//! The commands that call Jobline's HTTP API as a client does (`submit`,
//! `status`, `wait`, `list`, `cancel`, `run`, `delete`, `webhook-secret`):
//! one function each, with only the API's URL and credentials to go on,
//! through `jobline-client`; what they print is the API's JSON as it came
//! ([`jobline_client::RawJson`]). The schedules' commands are in
//! `schedule.rs`, the uploads' in `upload.rs`.

use super::upload::{name_upload, upload_file};
use super::{CliError, Exit, api_client, print_json, print_pages, read_payload};
use crate::args::{ApiArgs, JobArgs, JobsArgs, SubmitArgs, WaitArgs};
use crate::progress::{ProgressDisplay, ProgressStyle};
use jobline_client::{Cancel, Deleted, ListJobs, RunNow, Submission, WaitOptions, Waited, When};
use jobline_core::JobState;
use std::io::Write;
use std::time::Duration;

/// `jobline submit`: one job (after its file, with `--upload`), its `202` printed.
pub(super) async fn submit(
    args: SubmitArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let mut payload = read_payload(&args.payload)?;
    let when = match (args.when.at, args.when.delay) {
        (Some(at), _) => Some(When::At(at)),
        (None, Some(secs)) => Some(When::After(secs)),
        (None, None) => None,
    };
    let client = api_client(&args.api).await?;
    if let Some(path) = &args.upload.upload {
        // Refused before the upload, rather than after it.
        name_upload(&mut payload, None)?;
        let upload = upload_file(&client, path, args.upload.content_type.as_deref()).await?;
        writeln!(
            err,
            "uploaded {} as upload {}",
            path.display(),
            upload.upload_id
        )?;
        name_upload(&mut payload, Some(upload.upload_id))?;
    }
    let mut submission = Submission::new(args.job_type, payload).with_when(when);
    if let Some(url) = args.callback_url {
        submission = submission.with_callback_url(url);
    }
    if let Some(key) = args.idempotency_key {
        submission = submission.with_idempotency_key(key);
    }
    let accepted = client.json().submit(&submission).await?;
    print_json(out, &accepted)?;
    Ok(Exit::Success)
}

/// `jobline status`: the job as the API shows it.
pub(super) async fn status(args: JobArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let job = api_client(&args.api).await?.json().status(args.id).await?;
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
    let options = WaitOptions {
        timeout: Duration::from_secs(args.timeout),
        first_interval: Duration::from_millis(args.interval),
        ..WaitOptions::default()
    };
    let mut display = ProgressDisplay::new(progress);
    let mut shown = Ok(());
    let waited = client
        .json()
        .wait(args.id, &options, |job| {
            if shown.is_ok() {
                shown = display.show(job, &mut *err);
            }
        })
        .await;
    display.finish();
    let waited = waited?;
    shown?;
    match waited {
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
    let page = |limit: usize, cursor: Option<&str>| ListJobs {
        status: args.status,
        job_type: args.job_type.clone(),
        schedule_id: args.schedule_id,
        limit: Some(limit),
        cursor: cursor.map(str::to_owned),
    };
    print_pages(
        async |size, cursor| client.json().list(&page(size, cursor)).await,
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
        Deleted::Deleted => {
            writeln!(err, "job {id} is deleted")?;
            Ok(Exit::Success)
        }
        Deleted::NotFinished { status: state } => {
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
    match api_client(&args.api).await?.json().cancel(id).await? {
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
    match api_client(&args.api).await?.json().run_now(id).await? {
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
