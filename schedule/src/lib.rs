//! Recurring schedules' timing, read exactly as EventBridge Scheduler reads it.
//!
//! A Jobline schedule is an EventBridge Scheduler schedule: in AWS, EventBridge Scheduler fires it;
//! locally (moto fires nothing) `jobline-local` fires it itself. Both, the API's validation,
//! `GET /schedules/{id}` (the next five fires) and the console ("the expression in words") must agree
//! with what AWS will do, so this crate is the one reading of a schedule's expression and time zone:
//! [`Recurrence::parse`] accepts what EventBridge Scheduler documents and rejects the rest with a
//! message that says why, and [`Recurrence::next_after`] gives the instants AWS fires at.
//!
//! The rules come from "Schedule types on EventBridge Scheduler"
//! (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html>), its API reference
//! (`ScheduleExpression`: "A cron expression consists of six fields separated by white spaces";
//! "A rate expression consists of a value as a positive integer, and a unit") and the EventBridge cron
//! reference it mirrors. Each module cites the part it implements: `cron` the syntax, `fire` the
//! time-zone and daylight-saving rules, `rate` the fixed periods, `words` the console's sentence.
//!
//! Times in and out are `i64` milliseconds since the Unix epoch, as everywhere else in Jobline.
//! Nothing here panics or loops without bound on any input: expressions are at most
//! [`MAX_EXPRESSION_LEN`] bytes and every search stops at the cron year field's last year, 2199.

mod cron;
mod error;
mod fire;
mod rate;
mod words;

#[cfg(test)]
mod tests_docs;
#[cfg(test)]
mod tests_dst;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_parse;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use error::ScheduleError;
pub use rate::MAX_RATE_VALUE;

/// The longest expression accepted, in bytes (after trimming): the longest sensible cron is far shorter.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// The longest time zone name looked up; IANA names are at most about 30 bytes.
const MAX_TIMEZONE_LEN: usize = 64;

/// Cron searches start no earlier than this (1969-12-30T00:00Z): cron years start at 1970 in any zone.
const EARLIEST_SEARCH_MS: i64 = -2 * 86_400_000;

/// A recurring schedule's timing: an EventBridge Scheduler `cron(...)` or `rate(...)` expression in an IANA zone.
#[derive(Debug, Clone)]
pub struct Recurrence {
    expression: String,
    timezone: String,
    zone: TimeZone,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(cron::Cron),
    Rate(rate::Rate),
}

impl Recurrence {
    /// Parses `expression` (trimmed) in the IANA time zone `timezone` (exactly as the database spells
    /// it, `UTC` included). A cron expression that no date in its years can match is rejected too.
    pub fn parse(expression: &str, timezone: &str) -> Result<Recurrence, ScheduleError> {
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if expression.len() > MAX_EXPRESSION_LEN {
            return Err(ScheduleError::TooLong {
                len: expression.len(),
                max: MAX_EXPRESSION_LEN,
            });
        }
        let kind = if let Some(body) = call(expression, "cron") {
            Kind::Cron(cron::Cron::parse(body)?)
        } else if let Some(body) = call(expression, "rate") {
            Kind::Rate(rate::Rate::parse(body)?)
        } else if expression
            .get(..3)
            .is_some_and(|start| start.eq_ignore_ascii_case("at("))
        {
            return Err(ScheduleError::OneTime);
        } else {
            return Err(ScheduleError::Unrecognised);
        };
        let zone = time_zone(timezone)?;
        let recurrence = Recurrence {
            expression: expression.to_owned(),
            timezone: timezone.to_owned(),
            zone,
            kind,
        };
        if matches!(recurrence.kind, Kind::Cron(_)) && recurrence.next_after(i64::MIN, 0).is_none()
        {
            return Err(ScheduleError::NeverFires);
        }
        Ok(recurrence)
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The IANA time zone name as given.
    pub fn timezone(&self) -> &str {
        &self.timezone
    }

    /// The first fire strictly after `after_ms`. `anchor_ms` is when the schedule started
    /// (created, or its expression last changed): rate schedules count their period from it,
    /// cron schedules ignore it. None when there is no later fire (a cron whose years ran out).
    ///
    /// A rate schedule fires at `anchor_ms + k * period` for every `k >= 0`: EventBridge Scheduler
    /// starts invoking a rate schedule immediately (see the `rate` module), so its first fire is the anchor itself.
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        match &self.kind {
            Kind::Rate(rate) => rate.next_after(after_ms, anchor_ms),
            Kind::Cron(cron) => {
                let after = Timestamp::from_millisecond(after_ms.max(EARLIEST_SEARCH_MS)).ok()?;
                fire::next_after(cron, &self.zone, after).map(Timestamp::as_millisecond)
            }
        }
    }

    /// Up to `n` fires strictly after `after_ms` (GET shows five).
    pub fn next_fires(&self, after_ms: i64, anchor_ms: i64, n: usize) -> Vec<i64> {
        self.fires(after_ms, anchor_ms, n, i64::MAX)
    }

    /// Every fire in (from_ms, to_ms], in order, at most `limit` of them (the local firer after the clock moved).
    pub fn fires_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        anchor_ms: i64,
        limit: usize,
    ) -> Vec<i64> {
        self.fires(from_ms, anchor_ms, limit, to_ms)
    }

    /// The expression in words for the console, e.g. "at 09:00, Monday to Friday (Europe/Paris)",
    /// "every 15 minutes", "at 02:30 every day (Europe/Paris)". Best effort for complex crons, never panics;
    /// falls back to the expression itself.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Rate(rate) => words::describe_rate(*rate),
            Kind::Cron(cron) => words::describe_cron(cron, &self.timezone)
                .unwrap_or_else(|| self.expression.clone()),
        }
    }

    fn fires(&self, after_ms: i64, anchor_ms: i64, limit: usize, until_ms: i64) -> Vec<i64> {
        let mut fires = Vec::with_capacity(limit.min(64));
        let mut after = after_ms;
        while fires.len() < limit {
            match self.next_after(after, anchor_ms) {
                Some(at) if at <= until_ms => {
                    fires.push(at);
                    after = at;
                }
                _ => break,
            }
        }
        fires
    }
}

/// The body of `name(body)`, when `expression` is that call (names are lowercase, as the docs write them).
fn call<'a>(expression: &'a str, name: &str) -> Option<&'a str> {
    expression
        .strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// The IANA zone named exactly `name`: jiff's lookup ignores case, EventBridge Scheduler's does not
/// promise to, so a name must be spelled as the database spells it ("Europe/Paris", "UTC").
fn time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    let unknown = || ScheduleError::UnknownTimeZone(name.chars().take(MAX_TIMEZONE_LEN).collect());
    if name.is_empty() || name.len() > MAX_TIMEZONE_LEN {
        return Err(unknown());
    }
    match TimeZone::get(name) {
        Ok(zone) if zone.iana_name() == Some(name) => Ok(zone),
        _ => Err(unknown()),
    }
}
