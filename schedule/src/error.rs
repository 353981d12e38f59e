//! Why a schedule was refused: one variant per kind of mistake, each message saying what is wrong and
//! what is allowed, and [`ScheduleError::field`] naming the request field an API's 422 points at.
//!
//! The messages follow EventBridge Scheduler's documented rules (see the `cron` and `rate`
//! modules): the API refuses here what AWS would refuse later, when the schedule is created.

/// A schedule's expression or time zone that EventBridge Scheduler would not accept.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error(
        "the schedule expression is empty: expected cron(minutes hours day-of-month month day-of-week year) or rate(value unit)"
    )]
    Empty,
    #[error("the schedule expression is {len} bytes long: at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error(
        "at(...) is a one-time schedule, not a recurring one: to run a job once at a given time, create a delayed job instead (runAt on POST /jobs)"
    )]
    OneTime,
    #[error(
        "unrecognised schedule expression: expected cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 9 ? * MON-FRI *), or rate(value unit), e.g. rate(15 minutes)"
    )]
    Unrecognised,
    /// A `rate(...)` expression's value or unit is wrong; the text says which and what is allowed.
    #[error("invalid rate expression: {0}")]
    Rate(String),
    /// A `cron(...)` expression's field is wrong; the text names the field and what it accepts.
    #[error("invalid cron expression: {0}")]
    Cron(String),
    #[error(
        "the cron expression never fires: no date and time in its years (at most 1970-2199) matches all its fields in this time zone, e.g. day 30 of February"
    )]
    NeverFires,
    #[error(
        "unknown time zone {0:?}: expected an IANA time zone name spelled as in the database, e.g. Europe/Paris, America/New_York or UTC"
    )]
    UnknownTimeZone(String),
}

impl ScheduleError {
    /// The request field at fault: "expression" or "timezone".
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::UnknownTimeZone(_) => "timezone",
            _ => "expression",
        }
    }
}
