//! The numbers every part of Jobline shares: AWS's own limits, and the
//! function timeouts and queue retentions `template.yaml` deploys. They
//! live here, importing nothing, so that the configuration, the
//! provisioning and the backoff read them without importing each other.

/// The longest timeout Lambda allows a function, 15 minutes.
pub const LAMBDA_MAX_TIMEOUT_SECS: u32 = 900;

/// The longest visibility timeout SQS accepts, 12 hours.
pub const SQS_MAX_VISIBILITY_SECS: u32 = 43_200;

/// The most entries one SQS batch request takes (`DeleteMessageBatch`,
/// `ChangeMessageVisibilityBatch`).
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;

/// SQS's longest `DelaySeconds` (15 minutes): a job delayed longer waits
/// for a one-time timer instead ([`crate::timers`]).
pub const SQS_MAX_DELAY_SECS: u32 = 900;

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

/// Queue settings, as in `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Main queue visibility timeout: at least 6 × the worker's timeout, as
    /// AWS advises for queues that trigger Lambda.
    pub visibility_timeout_secs: u32,
    /// Main queue retention.
    pub retention_secs: u32,
    /// DLQ retention: longer than the main queue's, because SQS keeps a
    /// message's original enqueue time when it moves it to the DLQ.
    pub dlq_retention_secs: u32,
    /// Deliveries before SQS moves a message to the DLQ.
    pub max_receive_count: u32,
}

impl QueueSettings {
    /// The values `template.yaml` deploys by default.
    pub const TEMPLATE: Self = Self::for_worker_timeout(WORKER_TIMEOUT_SECS);

    /// The notifier's queue of webhook deliveries in `template.yaml`: six
    /// times the notifier's timeout, and 8 receives (about 45 minutes of
    /// retries at the default backoff) before the DLQ.
    pub const NOTIFY: Self = Self {
        visibility_timeout_secs: 6 * NOTIFIER_TIMEOUT_SECS,
        retention_secs: QUEUE_RETENTION_SECS,
        dlq_retention_secs: DLQ_RETENTION_SECS,
        max_receive_count: 8,
    };

    /// The values `template.yaml` deploys for a worker timeout of
    /// `timeout_secs`: a visibility timeout of six times it (the template's
    /// `VisibilityTimeouts` mapping), within SQS's 12 hours.
    pub const fn for_worker_timeout(timeout_secs: u32) -> Self {
        let visibility = timeout_secs.saturating_mul(6);
        Self {
            visibility_timeout_secs: if visibility > SQS_MAX_VISIBILITY_SECS {
                SQS_MAX_VISIBILITY_SECS
            } else {
                visibility
            },
            retention_secs: QUEUE_RETENTION_SECS,
            dlq_retention_secs: DLQ_RETENTION_SECS,
            max_receive_count: 5,
        }
    }
}

// The job record's size budgets: every part of a job item has one, so that
// no job can grow past the largest item DynamoDB stores, whatever its
// payload, result, checkpoint and error.

/// DynamoDB's largest item, 400 KB (names and values, UTF-8).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The largest payload a job may carry, as stored (serialized JSON).
pub const PAYLOAD_BUDGET_BYTES: usize = 256 * 1024;
/// The largest result a job may store (serialized JSON).
pub const RESULT_BUDGET_BYTES: usize = 100 * 1024;
/// The largest error message stored; longer ones are cut by the store
/// (`jobline_dynamodb::item::bound_error`).
pub const ERROR_BUDGET_BYTES: usize = 1024;
/// The fixed-size attributes: names, id, owner, type, fingerprint, state,
/// times, counters, flags and the claim token (32 hex digits).
pub const FIXED_BUDGET_BYTES: usize = 1024;
/// The largest checkpoint a job may save (serialized JSON).
pub const CHECKPOINT_BUDGET_BYTES: usize = 16 * 1024;
/// The callback URL (at most 2048 bytes) and the webhook delivery's state.
pub const WEBHOOK_BUDGET_BYTES: usize = 2048 + 256;
/// The progress attribute: a fraction, a time and a message of at most
/// [`PROGRESS_MESSAGE_BYTES`](crate::job::PROGRESS_MESSAGE_BYTES) (as JSON,
/// escapes included).
pub const PROGRESS_BUDGET_BYTES: usize = 512;
/// The uploads a job reads ([`crate::files::InputFile`], at most
/// [`MAX_INPUTS`](crate::files::MAX_INPUTS) of about 250 bytes each).
pub const INPUTS_BUDGET_BYTES: usize = 2048;
/// The job's trace context: the attribute `traceparent` (11 bytes) and a
/// version-00 W3C `traceparent` (55 bytes, [`crate::trace_context`]).
pub const TRACE_CONTEXT_BUDGET_BYTES: usize = 11 + 55;
/// What is left for attributes to come (delivery state): each new one must
/// take its budget from here.
pub const RESERVED_BYTES: usize = MAX_ITEM_BYTES
    - PAYLOAD_BUDGET_BYTES
    - RESULT_BUDGET_BYTES
    - ERROR_BUDGET_BYTES
    - FIXED_BUDGET_BYTES
    - CHECKPOINT_BUDGET_BYTES
    - PROGRESS_BUDGET_BYTES
    - WEBHOOK_BUDGET_BYTES
    - INPUTS_BUDGET_BYTES
    - TRACE_CONTEXT_BUDGET_BYTES;

// A new attribute's budget must come out of the reserve, not overdraw it.
const _: () = assert!(
    RESERVED_BYTES >= 20 * 1024,
    "the budgets leave too little reserve"
);
