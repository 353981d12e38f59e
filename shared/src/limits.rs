//! The numbers every part of Jobline shares: AWS's own limits, and the
//! function timeouts and queue retentions `template.yaml` deploys. They
//! live here, importing nothing, so that the configuration, the
//! provisioning and the backoff read them without importing each other.

/// The longest timeout Lambda allows a function, 15 minutes.
pub const LAMBDA_MAX_TIMEOUT_SECS: u32 = 900;

/// The longest visibility timeout SQS accepts, 12 hours.
pub const SQS_MAX_VISIBILITY_SECS: u32 = 43_200;

/// The notifier function's timeout in `template.yaml`, seconds: a few
/// deliveries of at most [`WebhookConfig::timeout`](crate::config::WebhookConfig)
/// each.
pub const NOTIFIER_TIMEOUT_SECS: u32 = 30;

/// The API function's timeout in `template.yaml`, seconds (API Gateway's
/// HTTP API waits at most 30).
pub const API_TIMEOUT_SECS: u32 = 10;

/// The most AWS calls one API request makes one after another: a
/// submission's `PutItem`, the repeat's mark, `SendMessage` and the
/// enqueue-failed mark (the backlog's depth is read at most every few
/// seconds, and before them).
pub const API_SEQUENTIAL_CALLS: u64 = 4;

/// The worker function's timeout `template.yaml` deploys by default
/// (parameter `WorkerTimeoutSeconds`), seconds.
pub const WORKER_TIMEOUT_SECS: u32 = 60;

/// How long the job and notifier queues keep a message, seconds: 4 days,
/// SQS's default.
pub const QUEUE_RETENTION_SECS: u32 = 4 * 86_400;

/// How long both dead-letter queues keep a message, seconds: 14 days, SQS's
/// most. A dead-lettered job can be replayed only while its message is
/// there, so a job's record must outlive it (`JOB_RETENTION_DAYS`, which
/// [`Config`](crate::config::Config) checks against it).
pub const DLQ_RETENTION_SECS: u32 = 1_209_600;
