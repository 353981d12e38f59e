//! `jobline smoke`: a deployer's end-to-end checks of a stack, run after
//! `sam deploy` with their own credentials (the client commands' flags).
//! Each check submits `ping` jobs (registered in every deployment; the
//! `upload` check a `csv-stats` job, also always registered) through
//! `jobline-client` and follows them, within `--timeout`; the table printed
//! at the end says what passed, how long it took, and why not. The checks:
//!
//! - `echo`: a `{"echo": …}` job succeeds and its result echoes the payload
//!   (the API, the queue, the worker and the table, end to end);
//! - `idempotency`: one submission sent twice with its `Idempotency-Key` is
//!   one job;
//! - `unknown job`: `GET /jobs/{random id}` is `404 job_not_found`;
//! - `cancel`: a `{"sleepMs": …}` job cancelled at once ends `cancelled`
//!   (at once if it was queued, at its next heartbeat if it was running);
//! - `result link`: a `{"bytes": 200000}` job's result is stored apart, and
//!   its `resultUrl` fetches exactly those bytes with no credentials;
//! - `upload`: a small CSV sent through an upload link is read by a
//!   `csv-stats` job; and other bytes of the declared length, sent to a
//!   second link, are refused by the storage (S3 checks the checksum the
//!   link signs; an emulator checks none, which the detail then says);
//! - `webhook` (with `--webhook-receiver`): a job with that `callbackUrl`
//!   has its webhook `delivered`;
//! - `dead-letter queue` (with `--dlq-url` or `JOBS_DLQ_URL`): its
//!   approximate depth, read with the SQS SDK and the caller's credentials.

use super::{CliError, Exit, api_client, error_chain, tools_sdk_config};
use crate::args::SmokeArgs;
use crate::progress::{ProgressDisplay, ProgressStyle};
use jobline_client::{
    Cancel, Client, ClientError, DeliveryState, Job, NewUpload, Submission, WaitOptions, Waited,
};
use jobline_core::{JobId, JobQueue, JobState};
use jobline_sqs::SqsJobQueue;
use serde_json::{Value, json};
use std::io::{self, Write};
use std::time::Duration;
use tokio::time::Instant;

/// The size of the result the `result link` check asks for: over the 100
/// KiB a job's item keeps inline, so it is stored in the results bucket.
pub const LINKED_RESULT_BYTES: u64 = 200_000;

/// How long the `cancel` check's job would sleep: longer than a heartbeat
/// (`HEARTBEAT_SECS`, 10 s by default), so a cancel that finds it running
/// reaches it before it ends.
pub const CANCEL_SLEEP_MS: u64 = 25_000;

/// How many rows the `upload` check's CSV has.
pub const UPLOAD_ROWS: u64 = 100;

/// How long a check may run past its `--timeout` to finish the request it
/// is making and say what it waited for, before it is cut off.
const GRACE: Duration = Duration::from_secs(2);

/// How often the `webhook` check reads the job while its delivery is pending.
const WEBHOOK_POLL: Duration = Duration::from_secs(1);

/// How a check ended, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
    /// Not run (its flag was not given), or not completely: why.
    Skipped(String),
}

impl Outcome {
    /// The result column: ✓, ✗ or `skipped`.
    fn mark(&self) -> &'static str {
        match self {
            Self::Passed(_) => "✓",
            Self::Failed(_) => "✗",
            Self::Skipped(_) => "skipped",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Passed(detail) | Self::Failed(detail) | Self::Skipped(detail) => detail,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub name: &'static str,
    pub outcome: Outcome,
    /// How long it took (`None`: skipped before it started).
    pub millis: Option<u128>,
}

/// What one check runs with: the client, its deadline, and where its
/// progress goes.
struct Check<'a> {
    client: &'a Client,
    deadline: Instant,
    progress: ProgressStyle,
    err: &'a mut dyn Write,
}

impl Check<'_> {
    /// Time left before the check's deadline.
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Submits `payload` as a `ping` job (with `callback_url`, if any).
    async fn submit(&self, payload: Value, callback_url: Option<&str>) -> Result<JobId, String> {
        self.submit_as("ping", payload, callback_url).await
    }

    /// Submits `payload` as a job of type `job_type`.
    async fn submit_as(
        &self,
        job_type: &str,
        payload: Value,
        callback_url: Option<&str>,
    ) -> Result<JobId, String> {
        let mut submission = Submission::new(job_type, payload);
        if let Some(url) = callback_url {
            submission = submission.with_callback_url(url);
        }
        self.client
            .submit(&submission)
            .await
            .map(|accepted| accepted.job_id)
            .map_err(|e| format!("submitting: {}", error_chain(&e)))
    }

    /// Polls job `id` until it is final, showing its progress, until the
    /// deadline: `Ok` with the final job, `Err` with what it still was.
    async fn wait(&mut self, id: JobId) -> Result<Job, String> {
        let options = WaitOptions::with_timeout(self.remaining());
        let mut display = ProgressDisplay::new(self.progress);
        let err = &mut *self.err;
        let waited = self
            .client
            .wait(id, &options, |job| {
                let _ = display.show(&json!({ "progress": job.progress }), err);
            })
            .await;
        display.finish();
        match waited.map_err(|e| format!("reading job {id}: {}", error_chain(&e)))? {
            Waited::Finished { job, .. } => Ok(job),
            Waited::TimedOut { status, .. } => Err(format!(
                "job {id} is still {status} after {} s",
                options.timeout.as_secs()
            )),
        }
    }

    /// Submits a `ping` job with `payload` and waits for it to succeed.
    async fn run_to_success(&mut self, payload: Value) -> Result<Job, String> {
        let id = self.submit(payload, None).await?;
        let job = self.wait(id).await?;
        if job.status == JobState::Succeeded {
            Ok(job)
        } else {
            Err(ended_otherwise(&job))
        }
    }
}

/// `job {id} ended {status}`, with its error if it has one.
fn ended_otherwise(job: &Job) -> String {
    match &job.error {
        Some(error) => format!("job {} ended {}: {error}", job.job_id, job.status),
        None => format!("job {} ended {}", job.job_id, job.status),
    }
}

/// `jobline smoke`: runs every check in turn, then prints the table; exit 1
/// if a check failed.
pub(super) async fn smoke(
    args: SmokeArgs,
    progress: ProgressStyle,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let client = api_client(&args.api).await?;
    let timeout = Duration::from_secs(args.timeout);
    writeln!(
        err,
        "checking {} with ping jobs (at most {} s a check)",
        client.base_url(),
        args.timeout
    )?;
    let mut rows = Vec::new();
    for name in CHECKS {
        let skipped = match name {
            WEBHOOK if args.webhook_receiver.is_none() => Some("no --webhook-receiver given"),
            DLQ if args.dlq_url.is_none() => Some("no --dlq-url (or JOBS_DLQ_URL) given"),
            _ => None,
        };
        if let Some(reason) = skipped {
            rows.push(CheckRow {
                name,
                outcome: Outcome::Skipped(reason.to_owned()),
                millis: None,
            });
            continue;
        }
        writeln!(err, "{name}…")?;
        err.flush()?;
        let started = Instant::now();
        let mut check = Check {
            client: &client,
            deadline: started + timeout,
            progress,
            err: &mut *err,
        };
        let run = run_check(name, &mut check, &args);
        let outcome = tokio::time::timeout(timeout + GRACE, run)
            .await
            .unwrap_or_else(|_| Outcome::Failed(format!("no answer within {} s", args.timeout)));
        rows.push(CheckRow {
            name,
            outcome,
            millis: Some(started.elapsed().as_millis()),
        });
    }
    render_table(&rows, out)?;
    Ok(
        if rows
            .iter()
            .any(|row| matches!(row.outcome, Outcome::Failed(_)))
        {
            Exit::Failed
        } else {
            Exit::Success
        },
    )
}

const ECHO: &str = "echo";
const IDEMPOTENCY: &str = "idempotency";
const UNKNOWN_JOB: &str = "unknown job";
const CANCEL: &str = "cancel";
const RESULT_LINK: &str = "result link";
const UPLOAD: &str = "upload";
const WEBHOOK: &str = "webhook";
const DLQ: &str = "dead-letter queue";

/// The checks, in the order they run and are listed.
pub const CHECKS: [&str; 8] = [
    ECHO,
    IDEMPOTENCY,
    UNKNOWN_JOB,
    CANCEL,
    RESULT_LINK,
    UPLOAD,
    WEBHOOK,
    DLQ,
];

/// Runs check `name`: its outcome, a failure's detail included.
async fn run_check(name: &str, check: &mut Check<'_>, args: &SmokeArgs) -> Outcome {
    let result = match name {
        ECHO => echo(check).await,
        IDEMPOTENCY => idempotency(check).await,
        UNKNOWN_JOB => unknown_job(check).await,
        CANCEL => cancel(check).await,
        RESULT_LINK => result_link(check).await,
        UPLOAD => upload(check).await,
        WEBHOOK => webhook(check, args.webhook_receiver.as_deref().unwrap_or_default()).await,
        DLQ => dlq_depth(args.dlq_url.as_deref().unwrap_or_default()).await,
        _ => Err(format!("no check is named {name}")),
    };
    result.unwrap_or_else(Outcome::Failed)
}

/// `echo`: a round trip through the API, the queue and the worker.
async fn echo(check: &mut Check<'_>) -> Result<Outcome, String> {
    let sent = json!({ "smoke": uuid::Uuid::new_v4().to_string() });
    let job = check.run_to_success(json!({ "echo": sent })).await?;
    let result = job.result.unwrap_or_default();
    if result["echo"] != sent {
        return Err(format!(
            "job {} succeeded, but its result does not echo the payload: {result}",
            job.job_id
        ));
    }
    let at = result["at"].as_str().unwrap_or("(no time)");
    Ok(Outcome::Passed(format!(
        "job {} succeeded; the worker's clock said {at}",
        job.job_id
    )))
}

/// `idempotency`: the same submission, with its key, twice is one job.
async fn idempotency(check: &mut Check<'_>) -> Result<Outcome, String> {
    let key = format!("jobline-smoke-{}", uuid::Uuid::new_v4());
    let submission =
        Submission::new("ping", json!({ "echo": "idempotency" })).with_idempotency_key(&key);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let accepted = check
            .client
            .submit(&submission)
            .await
            .map_err(|e| format!("submitting: {}", error_chain(&e)))?;
        ids.push(accepted.job_id);
    }
    if ids[0] != ids[1] {
        return Err(format!(
            "Idempotency-Key {key} gave two jobs: {} and {}",
            ids[0], ids[1]
        ));
    }
    Ok(Outcome::Passed(format!(
        "job {} both times (Idempotency-Key {key})",
        ids[0]
    )))
}

/// `unknown job`: a random id is nobody's job.
async fn unknown_job(check: &mut Check<'_>) -> Result<Outcome, String> {
    let id = JobId::random();
    match check.client.status(id).await {
        Ok(job) => Err(format!("GET /jobs/{id} found a job: {}", job.status)),
        Err(error) => not_found(&error, id),
    }
}

/// Whether `error` is the `404 job_not_found` an unknown id must get.
fn not_found(error: &ClientError, id: JobId) -> Result<Outcome, String> {
    let status = error.status().map(|status| status.as_u16());
    match (status, error.code().as_deref()) {
        (Some(404), Some("job_not_found")) => Ok(Outcome::Passed(format!(
            "GET /jobs/{id}: 404 job_not_found"
        ))),
        _ => Err(format!(
            "GET /jobs/{id}: expected 404 job_not_found, got {}",
            error_chain(error)
        )),
    }
}

/// `cancel`: a sleeping ping cancelled at once ends `cancelled`.
async fn cancel(check: &mut Check<'_>) -> Result<Outcome, String> {
    let id = check
        .submit(json!({ "sleepMs": CANCEL_SLEEP_MS }), None)
        .await?;
    let cancelled = check
        .client
        .cancel(id)
        .await
        .map_err(|e| format!("cancelling job {id}: {}", error_chain(&e)))?;
    match cancelled {
        Cancel::Cancelled { .. } => Ok(Outcome::Passed(format!(
            "job {id} was queued: cancelled at once"
        ))),
        Cancel::Requested { .. } => {
            let asked = Instant::now();
            let job = check.wait(id).await?;
            if job.status == JobState::Cancelled {
                Ok(Outcome::Passed(format!(
                    "job {id} was running: cancelRequested, then cancelled {} ms later",
                    asked.elapsed().as_millis()
                )))
            } else {
                Err(format!(
                    "cancelRequested, but {} (its heartbeat should have stopped it)",
                    ended_otherwise(&job)
                ))
            }
        }
        Cancel::Finished { status } => Err(format!(
            "job {id} had already finished ({status}) when it was cancelled"
        )),
    }
}

/// `result link`: a result over 100 KiB is stored apart and its link works
/// with no credentials.
async fn result_link(check: &mut Check<'_>) -> Result<Outcome, String> {
    let job = check
        .run_to_success(json!({ "bytes": LINKED_RESULT_BYTES }))
        .await?;
    let Some(url) = job.result_url.as_deref() else {
        return Err(format!(
            "job {} succeeded with its result inline, not as a resultUrl",
            job.job_id
        ));
    };
    let body = tokio::time::timeout(check.remaining(), check.client.fetch_link(url))
        .await
        .map_err(|_| "fetching its resultUrl: no answer in time".to_owned())?
        .map_err(|e| format!("fetching its resultUrl: {e}"))?;
    let expected = usize::try_from(LINKED_RESULT_BYTES).unwrap_or(usize::MAX);
    let is_string = body.first() == Some(&b'"') && body.last() == Some(&b'"');
    if body.len() != expected || !is_string {
        return Err(format!(
            "its resultUrl gave {} bytes, not the {expected} bytes of the JSON string",
            body.len()
        ));
    }
    Ok(Outcome::Passed(format!(
        "job {}: {} bytes fetched from its resultUrl",
        job.job_id,
        body.len()
    )))
}

/// The `upload` check's CSV: a header and [`UPLOAD_ROWS`] rows of two numbers.
fn upload_csv() -> Vec<u8> {
    let mut text = String::from("id,amount\n");
    for row in 0..UPLOAD_ROWS {
        text.push_str(&format!("{row},{}\n", row % 10));
    }
    text.into_bytes()
}

/// `upload`: a file through an upload link, read by a `csv-stats` job;
/// then other bytes of the declared length, sent to a second link, must be
/// refused (S3 checks the checksum the link signs).
async fn upload(check: &mut Check<'_>) -> Result<Outcome, String> {
    let csv = upload_csv();
    let sending = check.client.upload_bytes(csv.clone(), "text/csv");
    let upload = tokio::time::timeout(check.remaining(), sending)
        .await
        .map_err(|_| "uploading: no answer in time".to_owned())?
        .map_err(|e| format!("uploading: {}", error_chain(&e)))?;
    let id = check
        .submit_as("csv-stats", json!({ "input": upload.as_input() }), None)
        .await?;
    let job = check.wait(id).await?;
    if job.status != JobState::Succeeded {
        return Err(ended_otherwise(&job));
    }
    let result = job.result.unwrap_or_default();
    if result["rows"] != UPLOAD_ROWS || result["bytes"] != csv.len() {
        return Err(format!(
            "job {id} succeeded, but did not read the {UPLOAD_ROWS} rows and {} bytes sent: {result}",
            csv.len()
        ));
    }
    let read = format!(
        "job {id} read the {UPLOAD_ROWS} rows of upload {}",
        upload.upload_id
    );
    // The same length, one digit changed: only the checksum tells.
    let declared = NewUpload::of(&csv, "text/csv");
    let mut other = csv;
    let last_digit = other.len() - 2;
    other[last_digit] ^= 1;
    let second = check
        .client
        .create_upload(&declared)
        .await
        .map_err(|e| format!("asking for a second upload: {}", error_chain(&e)))?;
    let host = second
        .upload
        .as_ref()
        .and_then(|target| target.url.parse::<http::Uri>().ok())
        .and_then(|url| url.host().map(str::to_owned))
        .unwrap_or_default();
    let sent = check.client.send_upload(&second, other).await;
    judge_other_bytes(&read, &host, sent)
}

/// The `upload` check's outcome, once `host` (the second link's) answered
/// `sent` to other bytes than declared: refused passes; accepted fails on
/// S3, and passes with a note anywhere else (an emulator checks no
/// checksum).
fn judge_other_bytes(
    read: &str,
    host: &str,
    sent: Result<(), ClientError>,
) -> Result<Outcome, String> {
    match sent {
        Err(ClientError::UploadRefused { status, .. }) => Ok(Outcome::Passed(format!(
            "{read}; other bytes refused by the storage ({status})"
        ))),
        Ok(()) if host.ends_with(".amazonaws.com") => Err(format!(
            "{read}, but {host} accepted bytes other than the declared ones: the link must sign their checksum"
        )),
        Ok(()) => Ok(Outcome::Passed(format!(
            "{read}; {host} checks no checksum (an emulator), so other bytes were not refused: S3 refuses them"
        ))),
        Err(e) => Err(format!("{read}; sending other bytes: {}", error_chain(&e))),
    }
}

/// `webhook`: a job with `receiver` as its `callbackUrl` has its webhook
/// delivered.
async fn webhook(check: &mut Check<'_>, receiver: &str) -> Result<Outcome, String> {
    let id = check
        .submit(json!({ "echo": "webhook" }), Some(receiver))
        .await?;
    let mut job = check.wait(id).await?;
    loop {
        let Some(delivery) = &job.webhook else {
            return Err(format!(
                "job {id} ended {} with no webhook delivery",
                job.status
            ));
        };
        let attempts = match delivery.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let answered = delivery
            .last_status
            .map(|status| format!(", the receiver answered {status}"))
            .unwrap_or_default();
        match delivery.state {
            DeliveryState::Delivered => {
                return Ok(Outcome::Passed(format!(
                    "job {id}'s webhook delivered ({attempts}{answered})"
                )));
            }
            DeliveryState::Failed => {
                return Err(format!(
                    "job {id}'s webhook failed after {attempts}{answered}"
                ));
            }
            DeliveryState::Pending if check.remaining().is_zero() => {
                return Err(format!(
                    "job {id}'s webhook still pending ({attempts}{answered})"
                ));
            }
            DeliveryState::Pending => {}
        }
        tokio::time::sleep(WEBHOOK_POLL.min(check.remaining())).await;
        job = check
            .client
            .status(id)
            .await
            .map_err(|e| format!("reading job {id}: {}", error_chain(&e)))?;
    }
}

/// `dead-letter queue`: its approximate depth, read as `jobline dlq` reads
/// the queues (the SDK's default credentials and region).
async fn dlq_depth(url: &str) -> Result<Outcome, String> {
    let dlq = SqsJobQueue::from_sdk(&tools_sdk_config().await, url);
    let counts = dlq
        .counts()
        .await
        .map_err(|e| format!("reading {url}: {}", error_chain(&e)))?;
    let total = counts.total();
    let detail = format!(
        "{total} message(s) (visible {}, in flight {}, delayed {})",
        counts.visible, counts.in_flight, counts.delayed
    );
    Ok(Outcome::Passed(if total == 0 {
        detail
    } else {
        format!("{detail}: see `jobline dlq list`")
    }))
}

/// The table of `rows`: name, result, milliseconds, detail; then the counts.
pub fn render_table(rows: &[CheckRow], out: &mut dyn Write) -> io::Result<()> {
    let millis = |row: &CheckRow| row.millis.map_or("-".to_owned(), |ms| ms.to_string());
    let name_width = rows
        .iter()
        .map(|row| row.name.chars().count())
        .chain(["check".len()])
        .max()
        .unwrap_or(0);
    let mark_width = rows
        .iter()
        .map(|row| row.outcome.mark().chars().count())
        .chain(["result".len()])
        .max()
        .unwrap_or(0);
    let ms_width = rows
        .iter()
        .map(|row| millis(row).len())
        .chain(["ms".len()])
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "{:<name_width$}  {:<mark_width$}  {:>ms_width$}  detail",
        "check", "result", "ms"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<name_width$}  {:<mark_width$}  {:>ms_width$}  {}",
            row.name,
            row.outcome.mark(),
            millis(row),
            row.outcome.detail()
        )?;
    }
    let count =
        |wanted: fn(&Outcome) -> bool| rows.iter().filter(|row| wanted(&row.outcome)).count();
    writeln!(
        out,
        "{} passed, {} failed, {} skipped",
        count(|o| matches!(o, Outcome::Passed(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_and_counts() {
        let rows = [
            CheckRow {
                name: ECHO,
                outcome: Outcome::Passed("job 1 succeeded".into()),
                millis: Some(812),
            },
            CheckRow {
                name: RESULT_LINK,
                outcome: Outcome::Failed("answered 403".into()),
                millis: Some(12_345),
            },
            CheckRow {
                name: WEBHOOK,
                outcome: Outcome::Skipped("no --webhook-receiver given".into()),
                millis: None,
            },
        ];
        let mut out = Vec::new();
        render_table(&rows, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "check        result      ms  detail\n\
             echo         ✓          812  job 1 succeeded\n\
             result link  ✗        12345  answered 403\n\
             webhook      skipped      -  no --webhook-receiver given\n\
             1 passed, 1 failed, 1 skipped\n"
        );
    }

    #[test]
    fn other_bytes_must_be_refused_by_s3_and_are_noted_elsewhere() {
        let s3 = "jobline-results.s3.eu-west-1.amazonaws.com";
        let refused = || {
            Err(ClientError::UploadRefused {
                status: http::StatusCode::BAD_REQUEST,
                body: "BadDigest".into(),
            })
        };
        assert!(matches!(
            judge_other_bytes("read", s3, refused()),
            Ok(Outcome::Passed(detail)) if detail.contains("refused by the storage (400")
        ));
        let accepted = judge_other_bytes("read", s3, Ok(())).unwrap_err();
        assert!(accepted.contains("must sign their checksum"), "{accepted}");
        assert!(matches!(
            judge_other_bytes("read", "127.0.0.1", Ok(())),
            Ok(Outcome::Passed(detail)) if detail.contains("checks no checksum")
        ));
        let broken = Err(ClientError::InvalidRequest("no link".into()));
        assert!(judge_other_bytes("read", s3, broken).is_err());
    }

    #[test]
    fn every_check_has_a_distinct_name() {
        let mut names = CHECKS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
    }

    #[test]
    fn an_unknown_id_must_be_404_job_not_found() {
        let id = JobId::random();
        let missing = ClientError::Status {
            status: http::StatusCode::NOT_FOUND,
            body: r#"{"error":{"code":"job_not_found","message":"no such job"}}"#.into(),
        };
        assert!(matches!(not_found(&missing, id), Ok(Outcome::Passed(_))));
        let route = ClientError::Status {
            status: http::StatusCode::NOT_FOUND,
            body: r#"{"message":"Not Found"}"#.into(),
        };
        let err = not_found(&route, id).unwrap_err();
        assert!(err.contains("expected 404 job_not_found"), "{err}");
    }
}
