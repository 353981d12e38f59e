//! The timers' port: what Jobline asks of a time-based trigger engine.
//!
//! A *timer* is one entry of the engine: a one-time trigger (a delayed
//! job's, fired once at its `runAt` and then deleted by the engine) or a
//! recurring one (a caller's schedule, fired on its expression in its time
//! zone). Deployed, the engine is EventBridge Scheduler
//! (`jobline_scheduler::EventBridgeTimers`, one schedule a timer in the
//! stack's schedule group); locally the same schedules live in the
//! emulator, which stores them but fires nothing, so `jobline-local` fires
//! them itself on the movable [`Clock`](crate::Clock). Either way a fire
//! invokes the fire function with the timer's `input`, where the text
//! [`SCHEDULED_TIME`] is replaced by the fire's scheduled time (RFC 3339,
//! UTC, to the second), as EventBridge Scheduler's context attribute is.
//!
//! A *schedule* is the caller's record of a recurring timer, with its job
//! type, payload and fire history (the schedules table); this port knows
//! nothing of it.

use async_trait::async_trait;

/// EventBridge Scheduler's context attribute for a fire's scheduled time,
/// replaced in a timer's input at each fire.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// When a timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerTiming {
    /// Once, at `at_ms` (ms since the epoch, whole seconds: EventBridge
    /// Scheduler's `at()` has no finer unit); the engine deletes the timer
    /// after its fire.
    Once { at_ms: i64 },
    /// On `expression` (EventBridge Scheduler's own `cron(…)` or `rate(…)`
    /// syntax) in the IANA time zone `timezone`.
    Recurring {
        expression: String,
        timezone: String,
    },
}

/// One timer of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Unique in the engine's group: `[0-9A-Za-z_.-]`, at most 64 characters.
    pub name: String,
    pub timing: TimerTiming,
    /// The fire function's input, JSON, with [`SCHEDULED_TIME`] where the
    /// fire's scheduled time goes.
    pub input: String,
    /// A disabled timer keeps its definition and fires nothing (a paused
    /// schedule); enabling it again fires from then on, with no catch-up.
    pub enabled: bool,
}

/// Why the engine refused or failed a call.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The engine throttled the call (EventBridge Scheduler's
    /// `ThrottlingException`): try again later.
    #[error("the scheduler throttled the request")]
    Throttled,
    /// The engine refused the timer as invalid (`ValidationException`):
    /// the same call can never succeed.
    #[error("the scheduler refused the timer: {0}")]
    Invalid(String),
    /// The engine could not be reached or failed.
    #[error("the scheduler failed: {0}")]
    Unavailable(String),
}

/// The timers, as an engine holds them.
#[async_trait]
pub trait Timers: Send + Sync + std::fmt::Debug {
    /// Creates `timer`, or replaces the one of its name (definition and
    /// state) when it exists.
    async fn put(&self, timer: &Timer) -> Result<(), TimerError>;

    /// Deletes the timer named `name`; one that does not exist is `Ok`.
    async fn delete(&self, name: &str) -> Result<(), TimerError>;

    /// The timer named `name`, if it exists.
    async fn get(&self, name: &str) -> Result<Option<Timer>, TimerError>;

    /// The names of the group's timers, a page at a time: the page after
    /// `token` (the first when `None`), and the token of the next page.
    async fn names(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), TimerError>;
}
