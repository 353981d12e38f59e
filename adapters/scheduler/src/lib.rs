//! [`EventBridgeTimers`]: the [`Timers`] adapter on EventBridge Scheduler,
//! one schedule a timer, all in the stack's schedule group, each invoking
//! the fire function ([`TimerTarget`]) with the timer's input.
//!
//! The service's limits shape the code (EventBridge Scheduler API
//! Reference: `CreateSchedule`, `UpdateSchedule`, `RetryPolicy`; User
//! Guide: "Schedule types on EventBridge Scheduler", "Quotas for Amazon
//! EventBridge Scheduler"; Lambda Developer Guide: "Invoke a Lambda function
//! on a schedule"):
//! - A schedule's name is 1 to 64 characters of `[0-9a-zA-Z-_.]`: checked
//!   here, so a bad name is [`TimerError::Invalid`] before any call, and
//!   the same locally, where the emulator checks nothing.
//! - A one-time schedule is `at(yyyy-mm-ddThh:mm:ss)`, to the second, in
//!   its `ScheduleExpressionTimezone` (UTC here); every schedule type fires
//!   within the minute of its time (60-second precision), and only with
//!   `FlexibleTimeWindow` mode `OFF` is that "on time" rather than spread
//!   over a window.
//! - `ActionAfterCompletion` `DELETE` has the service delete a one-time
//!   schedule after its fire, so fired timers do not accumulate against
//!   the account's number of schedules.
//! - `CreateSchedule` (like every call) is rate-limited per account and
//!   Region; past the quota the service answers `ThrottlingException`,
//!   [`TimerError::Throttled`], for the caller to try later.
//! - `UpdateSchedule` replaces the whole definition: an omitted field
//!   reverts to its default, so [`Timers::put`] always sends it in full.
//! - The retry policy is the service's most persistent (and default): up to
//!   185 retries over at most 86,400 s (24 h).
//! - The service delivers at least once and invokes a Lambda target
//!   asynchronously (`Event`): a fire may come twice, or late, and its
//!   function's result is not the fire's; the fire function must be
//!   idempotent.

mod at;

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, ScheduleState, Target,
};
use jobline_aws::sdk_error;
use jobline_core::timers::{Timer, TimerError, TimerTiming, Timers};
use std::sync::{Arc, OnceLock};

/// Sends `builder` (`CreateSchedule`'s or `UpdateSchedule`'s, whose
/// fluent builders are distinct types with the same setters) with the whole
/// `definition` of timer `name` in the target's group.
macro_rules! send_definition {
    ($builder:expr, $timers:expr, $name:expr, $definition:expr) => {
        $builder
            .group_name(&$timers.target.group)
            .name($name)
            .schedule_expression($definition.expression)
            .schedule_expression_timezone($definition.timezone)
            .action_after_completion($definition.after)
            .state($definition.state)
            .flexible_time_window($definition.window)
            .target($definition.target)
            .send()
            .await
            .map(drop)
            .map_err(Failure::from)
    };
}

/// A schedule name's longest (`CreateSchedule`'s `Name`).
pub const MAX_NAME_CHARS: usize = 64;

/// The most a page of [`Timers::names`] lists (`ListSchedules`' maximum).
pub const NAMES_PAGE: i32 = 100;

/// The retry policy's bounds: the most EventBridge Scheduler allows, and
/// its defaults (`RetryPolicy`).
pub const MAX_EVENT_AGE_SECS: i32 = 86_400;
pub const MAX_RETRY_ATTEMPTS: i32 = 185;

/// The time zone of one-time schedules' `at()` expressions.
const UTC: &str = "UTC";

/// Where the schedules live and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTarget {
    /// The schedule group that holds every timer (the stack's).
    pub group: String,
    /// The ARN of the function each fire invokes.
    pub target_arn: String,
    /// The role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
    /// The SQS queue that gets a fire whose retries are spent, if any.
    pub dead_letter_arn: Option<String>,
}

impl TimerTarget {
    /// The target `config` names (`SCHEDULE_GROUP`, `FIRE_FUNCTION_ARN`,
    /// `SCHEDULER_ROLE_ARN`, `FIRE_FAILURES_QUEUE_ARN`).
    pub fn of(config: &jobline_core::config::ScheduleConfig) -> Self {
        Self {
            group: config.group.clone(),
            target_arn: config.target_arn.clone(),
            role_arn: config.role_arn.clone(),
            dead_letter_arn: config.dead_letter_arn.clone(),
        }
    }
}

/// [`Timers`] on EventBridge Scheduler: each timer a schedule of the
/// target's group.
///
/// Its client is built on first use, not with the function's others at
/// its cold start: most API requests never write a timer, and building an
/// SDK client is a measurable share of the API's init (BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct EventBridgeTimers {
    client: Arc<OnceLock<Client>>,
    /// What the client is built from, on first use.
    sdk: aws_types::SdkConfig,
    target: TimerTarget,
}

impl EventBridgeTimers {
    pub fn new(client: Client, target: TimerTarget) -> Self {
        Self {
            client: Arc::new(OnceLock::from(client)),
            sdk: aws_types::SdkConfig::builder().build(),
            target,
        }
    }

    /// The timers of `target`, over a client of `sdk` built on first use.
    pub fn from_sdk(sdk: &aws_types::SdkConfig, target: TimerTarget) -> Self {
        Self {
            client: Arc::new(OnceLock::new()),
            sdk: sdk.clone(),
            target,
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::new(&self.sdk))
    }

    pub fn target(&self) -> &TimerTarget {
        &self.target
    }

    /// `timer` as a whole schedule definition, for `CreateSchedule` and
    /// `UpdateSchedule` alike.
    fn definition(&self, timer: &Timer) -> Result<Definition, TimerError> {
        let (expression, timezone, after) = match &timer.timing {
            TimerTiming::Once { at_ms } => (
                at::format(*at_ms).map_err(TimerError::Invalid)?,
                UTC.to_owned(),
                ActionAfterCompletion::Delete,
            ),
            TimerTiming::Recurring {
                expression,
                timezone,
            } => (
                expression.clone(),
                timezone.clone(),
                ActionAfterCompletion::None,
            ),
        };
        let invalid = |e: aws_sdk_scheduler::error::BuildError| TimerError::Invalid(e.to_string());
        let target = Target::builder()
            .arn(&self.target.target_arn)
            .role_arn(&self.target.role_arn)
            .input(&timer.input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECS)
                    .maximum_retry_attempts(MAX_RETRY_ATTEMPTS)
                    .build(),
            )
            .set_dead_letter_config(
                self.target
                    .dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(invalid)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(invalid)?;
        Ok(Definition {
            expression,
            timezone,
            after,
            state: if timer.enabled {
                ScheduleState::Enabled
            } else {
                ScheduleState::Disabled
            },
            target,
            window,
        })
    }

    async fn create(&self, name: &str, definition: Definition) -> Result<(), Failure> {
        send_definition!(self.client().create_schedule(), self, name, definition)
    }

    async fn update(&self, name: &str, definition: Definition) -> Result<(), Failure> {
        send_definition!(self.client().update_schedule(), self, name, definition)
    }
}

/// One schedule's whole definition.
#[derive(Debug, Clone)]
struct Definition {
    expression: String,
    timezone: String,
    after: ActionAfterCompletion,
    state: ScheduleState,
    target: Target,
    window: FlexibleTimeWindow,
}

/// A failed call: its error code, if the service answered with one, and the
/// error it maps to.
#[derive(Debug)]
struct Failure {
    code: Option<String>,
    error: TimerError,
}

impl Failure {
    fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl<E, R> From<SdkError<E, R>> for Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    fn from(error: SdkError<E, R>) -> Self {
        let code = error
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_owned);
        Self {
            code,
            error: timer_error(error),
        }
    }
}

/// What an SDK error means to the port: `ThrottlingException` is
/// [`TimerError::Throttled`], `ValidationException`
/// [`TimerError::Invalid`] with the service's message, and anything else
/// (another service error, a timeout, a dispatch or response failure)
/// [`TimerError::Unavailable`] with the error's whole chain.
pub fn timer_error<E, R>(error: SdkError<E, R>) -> TimerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match error.as_service_error().map(|e| (e.code(), e.message())) {
        Some((Some("ThrottlingException"), _)) => TimerError::Throttled,
        Some((Some("ValidationException"), message)) => {
            TimerError::Invalid(message.unwrap_or("ValidationException").to_owned())
        }
        _ => TimerError::Unavailable(sdk_error(error).to_string()),
    }
}

/// Refuses a name EventBridge Scheduler would: empty, over
/// [`MAX_NAME_CHARS`], or with a character outside `[0-9a-zA-Z-_.]`.
pub fn check_name(name: &str) -> Result<(), TimerError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(TimerError::Invalid(format!(
            "timer name {name:?}: a schedule's name is 1 to {MAX_NAME_CHARS} of [0-9a-zA-Z-_.]"
        )));
    }
    Ok(())
}

const CONFLICT: &str = "ConflictException";
const NOT_FOUND: &str = "ResourceNotFoundException";

#[async_trait]
impl Timers for EventBridgeTimers {
    /// `CreateSchedule`; if the name is taken, `UpdateSchedule` with the
    /// same whole definition. Should the schedule vanish in between (a
    /// one-time schedule deleted after its fire), it is created once more.
    async fn put(&self, timer: &Timer) -> Result<(), TimerError> {
        check_name(&timer.name)?;
        let definition = self.definition(timer)?;
        let mut last = None;
        for _ in 0..2 {
            match self.create(&timer.name, definition.clone()).await {
                Err(failure) if failure.is(CONFLICT) => {}
                done => return done.map_err(|f| f.error),
            }
            match self.update(&timer.name, definition.clone()).await {
                Err(failure) if failure.is(NOT_FOUND) => last = Some(failure.error),
                done => return done.map_err(|f| f.error),
            }
        }
        Err(last.unwrap_or_else(|| TimerError::Unavailable("no attempt made".to_owned())))
    }

    async fn delete(&self, name: &str) -> Result<(), TimerError> {
        check_name(name)?;
        match self
            .client()
            .delete_schedule()
            .group_name(&self.target.group)
            .name(name)
            .send()
            .await
            .map_err(Failure::from)
        {
            Err(failure) if failure.is(NOT_FOUND) => Ok(()),
            done => done.map(drop).map_err(|f| f.error),
        }
    }

    /// The schedule read back: an `at()` expression in UTC is
    /// [`TimerTiming::Once`]; any other is [`TimerTiming::Recurring`] as
    /// the service holds it, in its time zone (UTC when it has none).
    async fn get(&self, name: &str) -> Result<Option<Timer>, TimerError> {
        check_name(name)?;
        let schedule = match self
            .client()
            .get_schedule()
            .group_name(&self.target.group)
            .name(name)
            .send()
            .await
            .map_err(Failure::from)
        {
            Ok(schedule) => schedule,
            Err(failure) if failure.is(NOT_FOUND) => return Ok(None),
            Err(failure) => return Err(failure.error),
        };
        let expression = schedule.schedule_expression().unwrap_or_default();
        let timezone = schedule.schedule_expression_timezone().unwrap_or(UTC);
        let timing = match at::parse(expression) {
            Some(at_ms) if timezone == UTC => TimerTiming::Once { at_ms },
            _ => TimerTiming::Recurring {
                expression: expression.to_owned(),
                timezone: timezone.to_owned(),
            },
        };
        Ok(Some(Timer {
            name: schedule.name().unwrap_or(name).to_owned(),
            timing,
            input: schedule
                .target()
                .and_then(Target::input)
                .unwrap_or_default()
                .to_owned(),
            enabled: schedule.state() != Some(&ScheduleState::Disabled),
        }))
    }

    async fn names(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), TimerError> {
        let page = self
            .client()
            .list_schedules()
            .group_name(&self.target.group)
            .max_results(NAMES_PAGE)
            .set_next_token(token)
            .send()
            .await
            .map_err(timer_error)?;
        let names = page
            .schedules()
            .iter()
            .filter_map(|s| s.name().map(str::to_owned))
            .collect();
        let next = page.next_token().filter(|t| !t.is_empty());
        Ok((names, next.map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests;
