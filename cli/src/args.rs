//! The command line of `jobline`, as clap derive types. `docs/cli.md`
//! describes every command, flag and environment variable declared here.

use clap::{Args, Parser, Subcommand};
use jobline_core::{JobId, JobState};
use std::num::NonZeroUsize;
use std::path::PathBuf;

mod schedule;
mod smoke;
mod upload;
pub use schedule::*;
pub use smoke::*;
pub use upload::*;

/// The default API base URL: the local server of `jobline-local serve`.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3000";

/// `jobline`: the Jobline command-line tool.
#[derive(Debug, Parser)]
#[command(
    name = "jobline",
    version,
    about = "Submit and watch Jobline jobs, and list, replay and discard the dead-letter queue"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit a job (POST /jobs) and print the API's 202 body; with --at or
    /// --in it is scheduled to run later.
    Submit(SubmitArgs),
    /// Print a job (GET /jobs/{id}).
    Status(JobArgs),
    /// Poll a job until it succeeds (exit 0), fails or is cancelled (exit 1),
    /// or the timeout passes (exit 2), showing its progress on stderr; prints
    /// the last job JSON.
    Wait(WaitArgs),
    /// Cancel a job (POST /jobs/{id}/cancel): a queued job is cancelled, a
    /// running one stops at its next heartbeat; prints the job JSON, or exits
    /// 1 if the job had already finished.
    Cancel(JobArgs),
    /// Run a scheduled job now (POST /jobs/{id}/run) instead of at its time;
    /// prints the job JSON, or exits 1 if the job is not scheduled.
    Run(JobArgs),
    /// List your jobs, newest first (GET /jobs), one JSON object a line.
    List(JobsArgs),
    /// Delete a finished job, its payload and its result at once (DELETE
    /// /jobs/{id}); exits 1 if the job has not finished.
    Delete(JobArgs),
    /// Upload a file for a job to name (POST /uploads, then the file to its
    /// URL) and print the upload; `upload show ID` prints one.
    Upload(UploadArgs),
    /// Your recurring schedules (through the API): create, list, show,
    /// update, pause, resume, trigger and delete them.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Check a deployed stack end to end with `ping` jobs (a round trip,
    /// idempotency, an unknown id, a cancel, a result link, and optionally a
    /// webhook and the dead-letter queue's depth); prints a table of the
    /// checks and exits 1 if any failed.
    Smoke(SmokeArgs),
    /// Print your webhook signing secret (GET /webhook-secret), `whsec_...`:
    /// give it to a Standard Webhooks library to verify your jobs' events.
    WebhookSecret(ApiArgs),
    /// List every caller's jobs in one state, newest first, one JSON summary
    /// (with its owner) a line: failed and cancelled ones from the jobs
    /// table's state index, queued and running ones from its due index
    /// (needs JOBS_TABLE and AWS credentials).
    Jobs(StateArgs),
    /// Run a failed job again (any caller's): back to queued, and a new
    /// message on the jobs queue (needs JOBS_TABLE, JOBS_QUEUE_URL and AWS
    /// credentials).
    Retry(RetryArgs),
    /// Start the web console on 127.0.0.1 and print its URL (with this
    /// launch's token): jobs by state, queues, activity, every job, the
    /// dead letters, every caller's schedules (with SCHEDULES_TABLE and
    /// SCHEDULE_GROUP), and cancel, run now, retry, replay, discard, and a
    /// schedule's pause, resume, trigger and delete (needs JOBS_TABLE,
    /// JOBS_QUEUE_URL, JOBS_DLQ_URL and AWS credentials). Ctrl-C stops it.
    Console(ConsoleArgs),
    /// Bring a jobs table an earlier release wrote to the current layout
    /// (a resumable scan; see docs/deploy.md, "Upgrading"): prints a line per
    /// page on stderr and a JSON summary with the cost on stdout (needs
    /// JOBS_TABLE and AWS credentials).
    Migrate(MigrateArgs),
    /// Inspect, replay and discard the dead-letter queue (needs JOBS_TABLE,
    /// JOBS_QUEUE_URL, JOBS_DLQ_URL and AWS credentials).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// A caller's counts in the callers table: its unfinished jobs (which
    /// its bound admits new ones against) and its uploads of today, UTC
    /// (needs CALLERS_TABLE and AWS credentials; `recount` also JOBS_TABLE).
    #[command(subcommand)]
    Callers(CallersCommand),
}

#[derive(Debug, Subcommand)]
pub enum CallersCommand {
    /// Print what is counted of OWNER, as JSON.
    Show(OwnerArgs),
    /// Count OWNER's unfinished jobs in the jobs table and set its count to
    /// that: the repair of a count that drifted. A job accepted or finished
    /// meanwhile can leave it off by one: run it again when OWNER is quiet.
    Recount(OwnerArgs),
}

#[derive(Debug, Args)]
pub struct OwnerArgs {
    /// The caller, as a job's `owner` shows it (`jobline jobs` prints it).
    pub owner: String,
}

/// Where the API is and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the Jobline API, e.g. an API Gateway stage URL.
    #[arg(long = "api", env = "JOBLINE_API_URL", default_value = DEFAULT_API_URL, value_name = "URL")]
    pub api_url: String,
    /// Bearer token (a JWT) for an API with a JWT authorizer.
    #[arg(
        long,
        env = "JOBLINE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Sign requests with SigV4 (service `execute-api`) for an API with IAM
    /// authorization, using the AWS default credential chain and region.
    /// Takes precedence over a token, so an exported JOBLINE_TOKEN does not
    /// get in the way.
    #[arg(long)]
    pub sigv4: bool,
    /// Send a request again, with backoff, up to this many times when the
    /// API answers 429 or 503 (after its Retry-After) or cannot be reached.
    #[arg(long, env = "JOBLINE_RETRIES", default_value_t = 3, value_name = "N")]
    pub retries: u32,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The job type, e.g. `primes` or `csv-stats`.
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Sent as the `Idempotency-Key` header: submitting the same key and
    /// request again returns the same job instead of a new one.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// POST the job's final state to this https URL, signed with your
    /// secret (`jobline webhook-secret`).
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    #[command(flatten)]
    pub when: WhenArgs,
    #[command(flatten)]
    pub upload: SubmitUploadArgs,
}

/// The job payload: inline or from a file, at most one of them; neither is
/// the empty object `{}` (a type like `always-fail` needs nothing).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct PayloadArgs {
    /// The payload as JSON text, e.g. '{"upTo": 1000}'.
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// A file holding the payload JSON; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
}

/// The API and one job: `status`, `cancel`, `run`, `delete`.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The job id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: JobId,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only jobs in this state: scheduled, queued, running, succeeded,
    /// failed or cancelled.
    #[arg(long, value_name = "STATE")]
    pub status: Option<JobState>,
    /// Only the jobs this schedule created.
    #[arg(long, value_name = "ID")]
    pub schedule_id: Option<jobline_core::schedule::ScheduleId>,
    /// Only jobs of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: Option<String>,
    /// At most this many jobs (following the API's pages).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Go on from where an earlier listing stopped (it prints the cursor).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

/// `retry`: which job.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The job id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: JobId,
}

/// `console`: where it listens.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, env = "JOBLINE_CONSOLE_PORT", default_value_t = 7878)]
    pub port: u16,
    /// Accepted so that scripts written for earlier versions still run: the
    /// console only prints its URL and never opens a browser (see
    /// `console::guard`), so there is nothing left for it to turn off.
    #[arg(long, hide = true)]
    pub no_open: bool,
}

/// `jobs`: which state, how many, and the filters.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state: scheduled, queued, running, failed or cancelled
    /// (succeeded jobs are in no index: `jobline list` lists a caller's own).
    #[arg(long, value_name = "STATE")]
    pub state: JobState,
    /// Print at most N jobs.
    #[arg(long, default_value = "50", value_name = "N")]
    pub limit: NonZeroUsize,
    /// Only jobs of this type (filtered as the pages are read).
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: Option<String>,
    /// Only jobs of this caller (filtered as the pages are read).
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Only jobs created at or after this UTC minute, e.g. 2026-11-30T10:15
    /// (a failed or cancelled listing stops at the first older job).
    #[arg(long, value_name = "UTC", value_parser = utc_minute)]
    pub since: Option<i64>,
    /// Only jobs created before this UTC minute (a failed or cancelled
    /// listing starts there).
    #[arg(long, value_name = "UTC", value_parser = utc_minute)]
    pub before: Option<i64>,
}

/// `migrate`: where to resume, and whether to write.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Resume after this key (what an interrupted run's last line says
    /// after `--from`).
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Count what would change and what it would cost; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--since` and `--before`: a UTC minute, in ms since the epoch.
fn utc_minute(text: &str) -> Result<i64, String> {
    crate::jobs::parse_utc_minute(text)
        .ok_or_else(|| format!("{text:?} is not a UTC minute such as 2026-11-30T10:15"))
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The job id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: JobId,
    /// Give up after this many seconds (exit 2).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Milliseconds between the first two polls; each next interval is 1.5
    /// times longer, up to 5 s (or this, if longer).
    #[arg(long, default_value_t = 500, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead messages with their jobs; changes nothing.
    List(ListArgs),
    /// Put dead jobs back to work: replay each job, send it to the main
    /// queue, then delete its dead message.
    Replay(SelectArgs),
    /// Give up on dead jobs for good: mark each job failed (discarded),
    /// then delete its dead message.
    Discard(SelectArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List at most N messages.
    #[arg(long, value_name = "N")]
    pub limit: Option<NonZeroUsize>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which dead messages `replay` and `discard` work on.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Print what would happen and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Work on at most N messages.
    #[arg(long, value_name = "N")]
    pub limit: Option<NonZeroUsize>,
    /// Only this job (repeatable: any of the given ids).
    #[arg(long = "job-id", value_name = "ID")]
    pub job_ids: Vec<JobId>,
    /// Only jobs of this type (repeatable: any of the given types).
    #[arg(long = "type", value_name = "TYPE")]
    pub job_types: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("jobline").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn submit_takes_at_most_one_payload_source() {
        // As the README's `jobline submit --type always-fail` does: no
        // payload is the empty object.
        let Command::Submit(none) = parse(&["submit", "--type", "always-fail"]).unwrap().command
        else {
            panic!("expected submit")
        };
        assert!(none.payload.payload.is_none() && none.payload.payload_file.is_none());
        let both = parse(&[
            "submit",
            "--type",
            "primes",
            "--payload",
            "{}",
            "--payload-file",
            "p.json",
        ])
        .unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let Command::Submit(submit) = parse(&[
            "submit",
            "--type",
            "primes",
            "--payload",
            r#"{"upTo": 5}"#,
            "--idempotency-key",
            "k1",
            "--api",
            "https://api.example.com/prod",
        ])
        .unwrap()
        .command
        else {
            panic!("expected submit")
        };
        assert_eq!(submit.job_type, "primes");
        assert_eq!(submit.payload.payload.as_deref(), Some(r#"{"upTo": 5}"#));
        assert_eq!(submit.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(submit.api.api_url, "https://api.example.com/prod");
    }

    #[test]
    fn job_ids_are_checked_before_any_request() {
        let err = parse(&["status", "../admin"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let id = JobId::random();
        let Command::Status(status) = parse(&["status", &id.to_string()]).unwrap().command else {
            panic!("expected status")
        };
        assert_eq!(status.id, id);
        let Command::Cancel(cancel) = parse(&["cancel", &id.to_string(), "--token", "t"])
            .unwrap()
            .command
        else {
            panic!("expected cancel")
        };
        assert_eq!((cancel.id, cancel.api.token.as_deref()), (id, Some("t")));
        let err = parse(&["cancel", "not-a-uuid"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn submit_takes_at_most_one_time_and_schedules_parse() {
        let Command::Submit(later) = parse(&["submit", "--type", "primes", "--in", "15m"])
            .unwrap()
            .command
        else {
            panic!("expected submit")
        };
        assert_eq!(
            (later.when.delay, later.when.at.as_deref()),
            (Some(900), None)
        );
        let both = parse(&[
            "submit",
            "--type",
            "primes",
            "--in",
            "15m",
            "--at",
            "2027-03-01T08:00:00Z",
        ])
        .unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let bad = parse(&["submit", "--type", "primes", "--in", "1h30m"]).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::ValueValidation);
        assert!(bad.to_string().contains("90s, 15m, 3h or 2d"), "{bad}");
        let bad = parse(&["submit", "--type", "primes", "--at", "2027-03-01 09:00"]).unwrap_err();
        assert!(bad.to_string().contains("with an offset"), "{bad}");

        let id = jobline_core::schedule::ScheduleId::random();
        let Command::Schedule(ScheduleCommand::Update(update)) =
            parse(&["schedule", "update", &id.to_string(), "--overlap", "skip"])
                .unwrap()
                .command
        else {
            panic!("expected schedule update")
        };
        assert_eq!((update.id, update.overlap), (id, Some(OverlapArg::Skip)));
        let nothing = parse(&["schedule", "update", &id.to_string()]).unwrap_err();
        assert_eq!(nothing.kind(), ErrorKind::MissingRequiredArgument);
        let both = parse(&[
            "schedule",
            "update",
            &id.to_string(),
            "--callback-url",
            "https://example.com/hook",
            "--no-callback-url",
        ])
        .unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let not_an_id = parse(&["schedule", "pause", "../admin"]).unwrap_err();
        assert_eq!(not_an_id.kind(), ErrorKind::ValueValidation);
        let all_and_limit = parse(&["schedule", "list", "--all", "--limit", "5"]).unwrap_err();
        assert_eq!(all_and_limit.kind(), ErrorKind::ArgumentConflict);
        let Command::Schedule(ScheduleCommand::List(list)) =
            parse(&["schedule", "list", "--all"]).unwrap().command
        else {
            panic!("expected schedule list")
        };
        assert!(list.all);
        let bad_overlap = parse(&[
            "schedule",
            "create",
            "--expression",
            "rate(1 hour)",
            "--type",
            "primes",
            "--overlap",
            "sometimes",
        ])
        .unwrap_err();
        assert_eq!(bad_overlap.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn wait_interval_must_be_positive() {
        let id = JobId::random().to_string();
        let err = parse(&["wait", "--interval", "0", &id]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let Command::Wait(wait) = parse(&["wait", &id]).unwrap().command else {
            panic!("expected wait")
        };
        assert_eq!((wait.timeout, wait.interval), (300, 500));
    }

    #[test]
    fn replay_filters_repeat() {
        let a = JobId::random();
        let b = JobId::random();
        let Command::Dlq(DlqCommand::Replay(replay)) = parse(&[
            "dlq",
            "replay",
            "--job-id",
            &a.to_string(),
            "--job-id",
            &b.to_string(),
            "--type",
            "primes",
            "--limit",
            "3",
            "--dry-run",
        ])
        .unwrap()
        .command
        else {
            panic!("expected dlq replay")
        };
        assert_eq!(replay.job_ids, vec![a, b]);
        assert_eq!(replay.job_types, vec!["primes".to_owned()]);
        assert_eq!(replay.limit.map(NonZeroUsize::get), Some(3));
        assert!(replay.dry_run);
        let Command::Dlq(DlqCommand::Discard(discard)) =
            parse(&["dlq", "discard", "--type", "primes", "--type", "csv-stats"])
                .unwrap()
                .command
        else {
            panic!("expected dlq discard")
        };
        assert_eq!(discard.job_types, ["primes", "csv-stats"]);
        assert!(!discard.dry_run && discard.job_ids.is_empty() && discard.limit.is_none());
        let Command::Jobs(jobs) = parse(&["jobs", "--state", "failed"]).unwrap().command else {
            panic!("expected jobs")
        };
        assert_eq!(
            (jobs.state, jobs.limit.get(), jobs.job_type, jobs.owner),
            (JobState::Failed, 50, None, None)
        );
        let Command::Jobs(jobs) = parse(&[
            "jobs", "--state", "queued", "--limit", "5", "--type", "primes", "--owner", "alice",
        ])
        .unwrap()
        .command
        else {
            panic!("expected jobs")
        };
        assert_eq!(
            (
                jobs.limit.get(),
                jobs.job_type.as_deref(),
                jobs.owner.as_deref()
            ),
            (5, Some("primes"), Some("alice"))
        );
        let Command::Jobs(window) = parse(&[
            "jobs",
            "--state",
            "failed",
            "--since",
            "1970-01-01T00:01",
            "--before",
            "1970-01-01 00:02",
        ])
        .unwrap()
        .command
        else {
            panic!("expected jobs")
        };
        assert_eq!((window.since, window.before), (Some(60_000), Some(120_000)));
        let unreadable = parse(&["jobs", "--state", "failed", "--since", "today"]).unwrap_err();
        assert!(
            unreadable.to_string().contains("2026-11-30T10:15"),
            "{unreadable}"
        );
        assert!(parse(&["jobs"]).is_err(), "the state is required");
        assert!(parse(&["jobs", "--state", "paused"]).is_err());
        assert!(parse(&["jobs", "--state", "failed", "--limit", "0"]).is_err());
        let zero = parse(&["dlq", "list", "--limit", "0"]).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::ValueValidation);
    }
}
