//! Configuration, read once from the environment at cold start.
//!
//! The SAM template sets the same variables that the local runner and the
//! tests set, so one code path serves both.

mod callers;
mod schedules;

use callers::caller_limits;
pub use callers::{
    CallerLimits, CallerOverride, DEFAULT_MAX_UNFINISHED_PER_CALLER,
    DEFAULT_MAX_UPLOAD_GIB_PER_CALLER_PER_DAY, DEFAULT_MAX_UPLOADS_PER_CALLER_PER_DAY,
};
use schedules::schedule_config;
pub use schedules::{DEFAULT_MAX_SCHEDULES_PER_CALLER, ScheduleConfig};

use crate::backoff::Backoff;
use crate::error::ConfigError;
pub use crate::limits::{API_SEQUENTIAL_CALLS, LAMBDA_MAX_TIMEOUT_SECS, SQS_MAX_VISIBILITY_SECS};
use crate::limits::{
    API_TIMEOUT_SECS, DLQ_RETENTION_SECS, QUEUE_RETENTION_SECS, WORKER_TIMEOUT_SECS,
};
use std::str::FromStr;
use std::time::Duration;

/// The largest `API_AWS_TIMEOUT_MS`: [`API_SEQUENTIAL_CALLS`] of them, and
/// a second for the rest of the request, fit in the API function's timeout.
pub const MAX_API_AWS_TIMEOUT_MS: u64 =
    (API_TIMEOUT_SECS as u64 * 1000 - 1000) / API_SEQUENTIAL_CALLS;

/// Settings shared by every Jobline binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// `JOBS_TABLE`: the DynamoDB table of job records.
    pub table_name: String,
    /// `JOBS_QUEUE_URL`: the SQS queue that carries job ids.
    pub queue_url: String,
    /// `JOBS_DLQ_URL`: the dead-letter queue (only the CLI needs it).
    pub dlq_url: Option<String>,
    /// `RESULTS_BUCKET`: where results over 100 KiB go (up to 64 MiB),
    /// handed out as presigned links; without it such a result fails its job.
    pub results_bucket: Option<String>,
    /// `JOB_RETENTION_DAYS` (default [`DEFAULT_RETENTION_DAYS`]): how long
    /// DynamoDB keeps a job. At least [`min_retention_days`] of
    /// `MAX_JOB_RUN_SECS`, so a dead-lettered job's record is there for as
    /// long as its message can be replayed.
    pub retention_days: u32,
    /// `PUBLIC_BASE_URL`: the base of `statusUrl`; by default, deployed, the
    /// API Gateway domain (and stage) of the request context. Never taken
    /// from the request's `Host`, which the client chooses.
    pub public_base_url: Option<String>,
    /// `ALLOW_ANONYMOUS` (default `false`): whether a request with no
    /// authorizer context is served, as the caller `anonymous` (the local
    /// runner and the tests). Deployed it stays off: such a request is 401.
    pub allow_anonymous: bool,
    /// `ASSUMED_ROLE_OWNER` (`role`, the default, or `session`): whose jobs
    /// an IAM caller in an assumed-role session
    /// (`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`) owns (see
    /// [`AssumedRoleOwner`]). Changing it on a running deployment changes
    /// those callers' owner: the jobs they submitted before belong to the old
    /// owner string, which the new one does not see (they stay in the table
    /// until their retention); an `Idempotency-Key` reused under the new
    /// owner makes a new job, since job ids are derived from owner and key;
    /// and the caller's webhook secret, derived from the owner, is new.
    pub assumed_role_owner: AssumedRoleOwner,
    /// `DEMO_JOB_TYPES` (default `false`): whether the API accepts and the
    /// worker runs the demonstration job types (`sleep`, `fail-times`,
    /// `always-fail`, `primes`, `prime-count`), which exist to try Jobline
    /// out: any caller could use them to hold workers for minutes or to fill
    /// the dead-letter queue. The local runner and the tests always have
    /// them; a deployment only with the template's `EnableDemoJobTypes`.
    pub demo_job_types: bool,
    /// `API_AWS_TIMEOUT_MS` (default 2000, at most [`MAX_API_AWS_TIMEOUT_MS`]):
    /// the bound on each DynamoDB or SQS operation of the API, retries
    /// included, so that a submission's [`API_SEQUENTIAL_CALLS`] calls in a
    /// row end, as a 503 if AWS is slow, within the function's timeout.
    pub api_aws_timeout: Duration,
    /// `MAX_BACKLOG` (default 100000, 0 = no limit): above this many messages
    /// in the queue, the API refuses new submissions with 429.
    pub max_backlog: u64,
    /// `TLS_TRUST_ROOTS` (`amazon`, the default, or `system`): the
    /// certificate authorities the Lambda functions' SDK clients trust (see
    /// [`TrustRoots`]). Tools always use the system's.
    pub trust_roots: TrustRoots,
    /// Worker settings.
    pub worker: WorkerConfig,
    /// Webhook settings (the API and the notifier).
    pub webhooks: WebhookConfig,
    /// Schedules and long delays (the API and the fire function): on when
    /// `SCHEDULES_TABLE` and `SCHEDULE_GROUP` are set.
    pub schedules: Option<ScheduleConfig>,
    /// Each caller's bounds (the API; the notifier counts).
    pub callers: CallerLimits,
}

/// What callback URLs a deployment accepts (the SSRF guard,
/// `jobline_webhooks::target`, enforces it). The default, for the deployed
/// functions, accepts public https receivers only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Lets loopback addresses (127.0.0.0/8, ::1) through: for the local
    /// runner and tests only, never in a deployment.
    pub allow_loopback: bool,
    /// Accepts `http://` when the host is `127.0.0.1`, `[::1]` or
    /// `localhost`, for a receiver on the developer's machine. Useful only
    /// with `allow_loopback`, which lets those addresses through.
    ///
    /// The address decides, not its spelling: `127.1`, `0x7f000001` or
    /// `2130706433` are `127.0.0.1` (the URL Standard's reading, where a
    /// browser would go too) and are accepted like it, while `127.0.0.2` in
    /// any spelling, or `[::ffff:127.0.0.1]` (an IPv6 address), is not.
    pub allow_http_loopback: bool,
}

impl CallbackPolicy {
    /// The local runner's policy: loopback receivers, over http or https.
    pub const LOCAL: Self = Self {
        allow_loopback: true,
        allow_http_loopback: true,
    };
}

/// Settings of webhook callbacks.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `WEBHOOK_SECRET_ID`: the Secrets Manager secret (name or ARN) holding
    /// the master key each caller's signing secret is derived from. Without
    /// it, webhooks are off: a submission's `callbackUrl` is refused.
    pub secret_id: Option<String>,
    /// `NOTIFY_QUEUE_URL`: the queue of deliveries to make (the notifier's).
    pub queue_url: Option<String>,
    /// `ALLOW_LOCAL_CALLBACKS` (default `false`): accept `http://` callback
    /// URLs to loopback addresses, for a receiver on a developer's machine.
    /// The local runner's setting; never for a deployment.
    pub allow_local_callbacks: bool,
    /// `NOTIFY_MAX_RECEIVE_COUNT` (default 8): the notifier queue's redrive
    /// `maxReceiveCount`; a failure on this receive is the last.
    pub max_receive_count: u32,
    /// `NOTIFY_RETRY_BASE_DELAY_SECONDS` (default 30): the first retry's
    /// delay, doubling per receive.
    pub retry_base_delay_secs: u32,
    /// `NOTIFY_RETRY_MAX_DELAY_SECONDS` (default 900): the cap of a delay.
    pub retry_max_delay_secs: u32,
    /// `WEBHOOK_TIMEOUT_MS` (default 5000): one POST's bound, connect to
    /// answer.
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            secret_id: None,
            queue_url: None,
            allow_local_callbacks: false,
            max_receive_count: 8,
            retry_base_delay_secs: 30,
            retry_max_delay_secs: 900,
            timeout: Duration::from_secs(5),
        }
    }
}

impl WebhookConfig {
    /// Which callback URLs are accepted.
    pub fn policy(&self) -> CallbackPolicy {
        if self.allow_local_callbacks {
            CallbackPolicy::LOCAL
        } else {
            CallbackPolicy::default()
        }
    }

    /// The retry schedule of a failed delivery.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_secs: self.retry_base_delay_secs,
            max_secs: self.retry_max_delay_secs,
        }
    }
}

/// Settings only the worker reads.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// `MAX_RECEIVE_COUNT` (default 5): the queue's redrive `maxReceiveCount`.
    /// A failure on this receive is the last, so the job is marked failed.
    pub max_receive_count: u32,
    /// `RETRY_BASE_DELAY_SECONDS` (default 2): backoff for the first retry.
    pub retry_base_delay_secs: u32,
    /// `RETRY_MAX_DELAY_SECONDS` (default 300): backoff cap. SQS allows 12 h.
    pub retry_max_delay_secs: u32,
    /// `WORKER_CONCURRENCY` (default 8): jobs of one batch run at once.
    pub concurrency: usize,
    /// `WORKER_TIMEOUT_SECS` (default [`WORKER_TIMEOUT_SECS`], at most
    /// Lambda's 900): the worker function's timeout. The queue's visibility
    /// timeout is six times it ([`crate::limits::QueueSettings::for_worker_timeout`]).
    pub function_timeout_secs: u32,
    /// `HEARTBEAT_SECS` (default 10): how often a running job renews its
    /// lease and its message's visibility, and writes its progress. Its lease
    /// lasts two beats, so a crashed worker's job runs again within about
    /// two beats.
    pub heartbeat_secs: u32,
    /// `MAX_JOB_RUN_SECS` (default 3600): the longest a run may last, from its
    /// first start, across all its invocations and continuations.
    pub max_run_secs: u32,
}

impl WorkerConfig {
    /// The retry schedule of a failed attempt.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_secs: self.retry_base_delay_secs,
            max_secs: self.retry_max_delay_secs,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            retry_base_delay_secs: 2,
            retry_max_delay_secs: 300,
            concurrency: 8,
            function_timeout_secs: WORKER_TIMEOUT_SECS,
            heartbeat_secs: 10,
            max_run_secs: 3_600,
        }
    }
}

/// How long DynamoDB keeps a job unless `JOB_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// The shortest `JOB_RETENTION_DAYS` for jobs that run at most
/// `max_run_secs` (`MAX_JOB_RUN_SECS`): whole days covering the queue's
/// retention ([`QUEUE_RETENTION_SECS`], 4 days), that run and the
/// dead-letter queue's retention ([`DLQ_RETENTION_SECS`], 14 days). The
/// record's retention counts from its submission (or replay); its message
/// may wait in the backlog for the queue's whole retention before the run
/// starts, the run's last message may be sent (a continuation) as late as
/// its end, and the DLQ keeps it 14 days from then. A record that expired
/// sooner would leave a message that finds no job (acknowledged as
/// "missing") or a dead letter whose replay finds none.
pub fn min_retention_days(max_run_secs: u32) -> u32 {
    let secs =
        u64::from(QUEUE_RETENTION_SECS) + u64::from(max_run_secs) + u64::from(DLQ_RETENTION_SECS);
    u32::try_from(secs.div_ceil(86_400)).unwrap_or(u32::MAX)
}

/// Which certificate authorities the SDK's HTTPS connections trust
/// (`TLS_TRUST_ROOTS`); `jobline_aws::lambda_sdk_config` applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The operating system's CA store, read when the clients are built.
    System,
    /// Only the Amazon Trust Services roots: enough for any AWS endpoint,
    /// and no file to read at start-up.
    AmazonTrustServices,
}

impl FromStr for TrustRoots {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "system" => Ok(Self::System),
            "amazon" => Ok(Self::AmazonTrustServices),
            _ => Err("expected `amazon` or `system`".into()),
        }
    }
}

/// Who owns the jobs of an IAM caller in an assumed-role session
/// (`ASSUMED_ROLE_OWNER`). IAM Identity Center roles (`AWSReservedSSO_*`)
/// always keep the session, which is the person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AssumedRoleOwner {
    /// `role`: the role (`arn:aws:iam::ACCT:role/ROLE`), whatever the session
    /// name, which most SDKs choose anew with each set of credentials: one
    /// service keeps its jobs, and every session of the role shares them.
    #[default]
    Role,
    /// `session`: the whole session ARN, so sessions of one role never see
    /// each other's jobs; only for callers that choose a stable session
    /// name (`--role-session-name`), else each new session starts empty.
    Session,
}

impl FromStr for AssumedRoleOwner {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "role" => Ok(Self::Role),
            "session" => Ok(Self::Session),
            _ => Err("expected `role` or `session`".into()),
        }
    }
}

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, set by Lambda: the function's memory in
/// MB, which bounds how many jobs the worker runs at once. `None` outside
/// Lambda (or if unreadable): no bound but `WORKER_CONCURRENCY`.
pub fn function_memory_mb(lookup: impl Fn(&str) -> Option<String>) -> Option<u32> {
    lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")?.parse().ok()
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration of a stack on `table`, `queue_url` and `dlq_url`
    /// with every other setting at its default, serving anonymous callers and
    /// with no backlog bound: what the integration tests and the benchmark
    /// run, as the local runner does.
    pub fn for_resources(table: &str, queue_url: &str, dlq_url: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            let value = match name {
                "JOBS_TABLE" => table,
                "JOBS_QUEUE_URL" => queue_url,
                "JOBS_DLQ_URL" => dlq_url,
                "ALLOW_ANONYMOUS" => "true",
                "MAX_BACKLOG" => "0",
                _ => return None,
            };
            Some(value.to_owned())
        })
    }

    /// Reads the configuration through `lookup`, so tests need not touch
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let defaults = WorkerConfig::default();
        let worker = WorkerConfig {
            max_receive_count: parse_or(&lookup, "MAX_RECEIVE_COUNT", defaults.max_receive_count)?,
            retry_base_delay_secs: parse_or(
                &lookup,
                "RETRY_BASE_DELAY_SECONDS",
                defaults.retry_base_delay_secs,
            )?,
            retry_max_delay_secs: parse_or(
                &lookup,
                "RETRY_MAX_DELAY_SECONDS",
                defaults.retry_max_delay_secs,
            )?,
            concurrency: parse_or(&lookup, "WORKER_CONCURRENCY", defaults.concurrency)?,
            function_timeout_secs: parse_or(
                &lookup,
                "WORKER_TIMEOUT_SECS",
                defaults.function_timeout_secs,
            )?,
            heartbeat_secs: parse_or(&lookup, "HEARTBEAT_SECS", defaults.heartbeat_secs)?,
            max_run_secs: parse_or(&lookup, "MAX_JOB_RUN_SECS", defaults.max_run_secs)?,
        };
        if !(1..=LAMBDA_MAX_TIMEOUT_SECS).contains(&worker.function_timeout_secs) {
            return Err(ConfigError::Invalid {
                name: "WORKER_TIMEOUT_SECS",
                value: worker.function_timeout_secs.to_string(),
                reason: format!("Lambda allows 1 to {LAMBDA_MAX_TIMEOUT_SECS} seconds"),
            });
        }
        if worker.heartbeat_secs == 0 || worker.max_run_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "HEARTBEAT_SECS/MAX_JOB_RUN_SECS",
                value: format!("{}/{}", worker.heartbeat_secs, worker.max_run_secs),
                reason: "must be at least 1".into(),
            });
        }
        if worker.max_receive_count == 0 || worker.concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "MAX_RECEIVE_COUNT/WORKER_CONCURRENCY",
                value: format!("{}/{}", worker.max_receive_count, worker.concurrency),
                reason: "must be at least 1".into(),
            });
        }
        if worker.retry_max_delay_secs > SQS_MAX_VISIBILITY_SECS {
            return Err(ConfigError::Invalid {
                name: "RETRY_MAX_DELAY_SECONDS",
                value: worker.retry_max_delay_secs.to_string(),
                reason: format!("SQS allows at most {SQS_MAX_VISIBILITY_SECS} seconds"),
            });
        }
        // After the worker's settings: the bound depends on MAX_JOB_RUN_SECS.
        let retention_days = parse_or(&lookup, "JOB_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?;
        let min_days = min_retention_days(worker.max_run_secs);
        if retention_days < min_days {
            return Err(ConfigError::Invalid {
                name: "JOB_RETENTION_DAYS",
                value: retention_days.to_string(),
                reason: format!(
                    "must be at least {min_days} days: a job's message may wait {} days in \
                     the queue, the job may run {} s (MAX_JOB_RUN_SECS), and the dead-letter \
                     queue keeps its message {} days more; a job whose record has expired \
                     can no longer run or be replayed",
                    QUEUE_RETENTION_SECS / 86_400,
                    worker.max_run_secs,
                    DLQ_RETENTION_SECS / 86_400
                ),
            });
        }
        let hooks = WebhookConfig::default();
        let webhooks = WebhookConfig {
            secret_id: lookup("WEBHOOK_SECRET_ID").filter(|v| !v.is_empty()),
            queue_url: lookup("NOTIFY_QUEUE_URL").filter(|v| !v.is_empty()),
            allow_local_callbacks: parse_or(&lookup, "ALLOW_LOCAL_CALLBACKS", false)?,
            max_receive_count: parse_or(
                &lookup,
                "NOTIFY_MAX_RECEIVE_COUNT",
                hooks.max_receive_count,
            )?,
            retry_base_delay_secs: parse_or(
                &lookup,
                "NOTIFY_RETRY_BASE_DELAY_SECONDS",
                hooks.retry_base_delay_secs,
            )?,
            retry_max_delay_secs: parse_or(
                &lookup,
                "NOTIFY_RETRY_MAX_DELAY_SECONDS",
                hooks.retry_max_delay_secs,
            )?,
            timeout: Duration::from_millis(parse_or(&lookup, "WEBHOOK_TIMEOUT_MS", 5_000)?),
        };
        if webhooks.max_receive_count == 0 || webhooks.timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "NOTIFY_MAX_RECEIVE_COUNT/WEBHOOK_TIMEOUT_MS",
                value: format!("{}/{:?}", webhooks.max_receive_count, webhooks.timeout),
                reason: "must be at least 1".into(),
            });
        }
        if webhooks.retry_max_delay_secs > SQS_MAX_VISIBILITY_SECS {
            return Err(ConfigError::Invalid {
                name: "NOTIFY_RETRY_MAX_DELAY_SECONDS",
                value: webhooks.retry_max_delay_secs.to_string(),
                reason: format!("SQS allows at most {SQS_MAX_VISIBILITY_SECS} seconds"),
            });
        }
        let api_aws_timeout_ms: u64 = parse_or(&lookup, "API_AWS_TIMEOUT_MS", 2_000)?;
        if api_aws_timeout_ms == 0 || api_aws_timeout_ms > MAX_API_AWS_TIMEOUT_MS {
            return Err(ConfigError::Invalid {
                name: "API_AWS_TIMEOUT_MS",
                value: api_aws_timeout_ms.to_string(),
                reason: format!(
                    "must be from 1 to {MAX_API_AWS_TIMEOUT_MS}: a request makes up to \
                     {API_SEQUENTIAL_CALLS} calls in a row, which must end within the API \
                     function's {API_TIMEOUT_SECS} s timeout"
                ),
            });
        }
        Ok(Self {
            table_name: required("JOBS_TABLE")?,
            queue_url: required("JOBS_QUEUE_URL")?,
            dlq_url: lookup("JOBS_DLQ_URL").filter(|v| !v.is_empty()),
            results_bucket: lookup("RESULTS_BUCKET").filter(|v| !v.is_empty()),
            retention_days,
            public_base_url: lookup("PUBLIC_BASE_URL")
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_end_matches('/').to_owned()),
            allow_anonymous: parse_or(&lookup, "ALLOW_ANONYMOUS", false)?,
            assumed_role_owner: parse_or(&lookup, "ASSUMED_ROLE_OWNER", AssumedRoleOwner::Role)?,
            demo_job_types: parse_or(&lookup, "DEMO_JOB_TYPES", false)?,
            api_aws_timeout: Duration::from_millis(api_aws_timeout_ms),
            max_backlog: parse_or(&lookup, "MAX_BACKLOG", 100_000)?,
            trust_roots: parse_or(&lookup, "TLS_TRUST_ROOTS", TrustRoots::AmazonTrustServices)?,
            worker,
            webhooks,
            schedules: schedule_config(&lookup)?,
            callers: caller_limits(&lookup)?,
        })
    }
}

fn parse_or<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn requires_table_and_queue() {
        assert!(matches!(
            config(&[("JOBS_QUEUE_URL", "q")]),
            Err(ConfigError::Missing("JOBS_TABLE"))
        ));
        assert!(matches!(
            config(&[("JOBS_TABLE", "t")]),
            Err(ConfigError::Missing("JOBS_QUEUE_URL"))
        ));
    }

    #[test]
    fn applies_defaults_and_overrides() {
        let c = config(&[
            ("JOBS_TABLE", "t"),
            ("JOBS_QUEUE_URL", "q"),
            ("MAX_RECEIVE_COUNT", "7"),
            ("PUBLIC_BASE_URL", "https://api.example.com/"),
        ])
        .unwrap();
        assert_eq!(c.worker.max_receive_count, 7);
        assert_eq!(c.worker.retry_max_delay_secs, 300);
        assert_eq!(c.retention_days, 30);
        assert_eq!(
            c.public_base_url.as_deref(),
            Some("https://api.example.com")
        );
    }

    #[test]
    fn rejects_bad_numbers_by_name() {
        let err = config(&[
            ("JOBS_TABLE", "t"),
            ("JOBS_QUEUE_URL", "q"),
            ("WORKER_CONCURRENCY", "many"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("WORKER_CONCURRENCY"), "{err}");
        let err = config(&[
            ("JOBS_TABLE", "t"),
            ("JOBS_QUEUE_URL", "q"),
            ("RETRY_MAX_DELAY_SECONDS", "50000"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("43200"), "{err}");
    }

    #[test]
    fn assumed_role_owners_default_to_the_role() {
        let base = [("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")];
        let owner = |value: &str| {
            config(&[base[0], base[1], ("ASSUMED_ROLE_OWNER", value)]).map(|c| c.assumed_role_owner)
        };
        assert_eq!(
            config(&base).unwrap().assumed_role_owner,
            AssumedRoleOwner::Role
        );
        assert_eq!(owner("").unwrap(), AssumedRoleOwner::Role);
        assert_eq!(owner("role").unwrap(), AssumedRoleOwner::Role);
        assert_eq!(owner("session").unwrap(), AssumedRoleOwner::Session);
        let err = owner("Session").unwrap_err();
        assert!(err.to_string().contains("ASSUMED_ROLE_OWNER"), "{err}");
    }

    #[test]
    fn api_settings_default_to_closed_bounded_and_generous() {
        let base = [("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")];
        let c = config(&base).unwrap();
        assert!(!c.allow_anonymous);
        assert_eq!(c.api_aws_timeout, Duration::from_secs(2));
        assert_eq!(c.max_backlog, 100_000);
        let c = config(&[
            base[0],
            base[1],
            ("ALLOW_ANONYMOUS", "true"),
            ("API_AWS_TIMEOUT_MS", "1500"),
            ("MAX_BACKLOG", "0"),
        ])
        .unwrap();
        assert!(c.allow_anonymous);
        assert_eq!(c.api_aws_timeout, Duration::from_millis(1500));
        assert_eq!(c.max_backlog, 0);
        for (name, value) in [
            ("ALLOW_ANONYMOUS", "yes"),
            ("API_AWS_TIMEOUT_MS", "0"),
            ("API_AWS_TIMEOUT_MS", "3000"),
            ("MAX_BACKLOG", "-1"),
        ] {
            let err = config(&[base[0], base[1], (name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn retention_outlives_the_dead_letter_queue_and_the_longest_run() {
        let base = [("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")];
        // 4 days in the queue, the default hour's run, 14 days in the DLQ.
        assert_eq!(min_retention_days(WorkerConfig::default().max_run_secs), 19);
        assert_eq!(min_retention_days(0), 18);
        assert_eq!(min_retention_days(86_400), 19);
        assert_eq!(min_retention_days(86_401), 20);
        let c = config(&[base[0], base[1], ("JOB_RETENTION_DAYS", "19")]).unwrap();
        assert_eq!(c.retention_days, 19);
        for short in ["18", "14", "1", "0"] {
            let message = config(&[base[0], base[1], ("JOB_RETENTION_DAYS", short)])
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("JOB_RETENTION_DAYS")
                    && message.contains("at least 19 days")
                    && message.contains("dead-letter queue"),
                "{message}"
            );
        }
        // The bound follows MAX_JOB_RUN_SECS: a week's run needs 25 days.
        let week = ("MAX_JOB_RUN_SECS", "604800");
        let c = config(&[base[0], base[1], week, ("JOB_RETENTION_DAYS", "25")]).unwrap();
        assert_eq!((c.retention_days, c.worker.max_run_secs), (25, 604_800));
        let message = config(&[base[0], base[1], week, ("JOB_RETENTION_DAYS", "24")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("at least 25 days") && message.contains("604800 s"),
            "{message}"
        );
        // The default fits the longest run the template allows.
        let c = config(&[base[0], base[1], week]).unwrap();
        assert_eq!(c.retention_days, DEFAULT_RETENTION_DAYS);
    }

    #[test]
    fn demo_job_types_are_off_unless_turned_on() {
        let base = [("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")];
        assert!(!config(&base).unwrap().demo_job_types);
        for (value, expected) in [("true", true), ("false", false)] {
            let c = config(&[base[0], base[1], ("DEMO_JOB_TYPES", value)]).unwrap();
            assert_eq!(c.demo_job_types, expected, "{value}");
        }
        let err = config(&[base[0], base[1], ("DEMO_JOB_TYPES", "yes")]).unwrap_err();
        assert!(err.to_string().contains("DEMO_JOB_TYPES"), "{err}");
    }

    #[test]
    fn function_memory_is_read_when_lambda_sets_it() {
        let lookup = |value: &'static str| {
            move |name: &str| (name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE").then(|| value.to_owned())
        };
        assert_eq!(function_memory_mb(lookup("512")), Some(512));
        assert_eq!(function_memory_mb(lookup("lots")), None);
        assert_eq!(function_memory_mb(|_| None), None);
    }

    #[test]
    fn a_local_stack_serves_anonymous_callers_with_the_defaults() {
        let c = Config::for_resources("t", "q", "d").unwrap();
        assert_eq!((c.table_name.as_str(), c.queue_url.as_str()), ("t", "q"));
        assert_eq!(c.dlq_url.as_deref(), Some("d"));
        assert!(c.allow_anonymous);
        assert_eq!(c.max_backlog, 0);
        assert_eq!(c.retention_days, DEFAULT_RETENTION_DAYS);
        assert_eq!(c.worker, WorkerConfig::default());
        assert!(Config::for_resources("", "q", "d").is_err());
    }

    #[test]
    fn trust_roots_default_to_amazon_trust_services() {
        let base = [("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")];
        assert_eq!(
            config(&base).unwrap().trust_roots,
            TrustRoots::AmazonTrustServices
        );
        for (value, expected) in [
            ("system", TrustRoots::System),
            ("amazon", TrustRoots::AmazonTrustServices),
        ] {
            let c = config(&[base[0], base[1], ("TLS_TRUST_ROOTS", value)]).unwrap();
            assert_eq!(c.trust_roots, expected);
        }
        let err = config(&[base[0], base[1], ("TLS_TRUST_ROOTS", "mozilla")]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("TLS_TRUST_ROOTS") && message.contains("mozilla"),
            "{message}"
        );
    }
}
