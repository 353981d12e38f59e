//! The `rate(value unit)` expression: a fixed period, counted from the schedule's start.
//!
//! EventBridge Scheduler's API reference: "A rate expression consists of a value as a positive
//! integer, and a unit with the following options: minute | minutes | hour | hours | day | days".
//! EventBridge's rate reference adds "If the value is equal to 1, then the unit must be singular. If the
//! value is greater than 1, the unit must be plural"; Scheduler's own guide writes `rate(1 days)`, so
//! a plural unit is accepted for 1, while a singular unit with a larger value (`rate(5 minute)`) is
//! refused. The docs set no upper bound; values above [`MAX_RATE_VALUE`] are refused (a million days
//! is over 2,700 years: a larger value is a mistake).
//!
//! Rates ignore the time zone and daylight saving: "days represents a 24-hour duration on the clock.
//! This means that when daylight savings time causes a day to shorten to 23 hours, or extend to 25
//! hours, EventBridge Scheduler still evaluates the rate expression 24 hours after the schedule's last
//! invocation." So fires are exactly `anchor + k * period` in milliseconds.
//!
//! The first fire is the anchor itself (k = 0): "If you do not provide a StartDate for a rate-based
//! schedule, your schedule starts invoking the target immediately", and with one, "you use the
//! StartDate property to set the first occurrence of the schedule". Jobline's anchor is the schedule's
//! creation (or its expression's last change), so a caller that wants that immediate fire asks for
//! fires after `anchor - 1`.

use crate::ScheduleError;

/// The largest value a rate takes, whatever its unit.
pub const MAX_RATE_VALUE: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) value: u32,
    pub(crate) unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Minute,
    Hour,
    Day,
}

impl Rate {
    /// Parses the text between `rate(` and `)`.
    pub(crate) fn parse(body: &str) -> Result<Rate, ScheduleError> {
        let invalid = |why: String| ScheduleError::Rate(why);
        let parts: Vec<&str> = body.split_ascii_whitespace().collect();
        let [value, unit] = parts[..] else {
            return Err(invalid(
                "expected rate(value unit): a whole number and minute(s), hour(s) or day(s), e.g. rate(15 minutes)".to_owned(),
            ));
        };
        if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid(format!(
                "the value {value:?} is not a positive whole number (e.g. rate(15 minutes))"
            )));
        }
        let value = match value.trim_start_matches('0') {
            "" => 0,
            digits if digits.len() > 7 => u32::MAX,
            digits => digits.parse().unwrap_or(u32::MAX),
        };
        if value == 0 {
            return Err(invalid(
                "the value must be at least 1: rate(0 ...) would never fire".to_owned(),
            ));
        }
        if value > MAX_RATE_VALUE {
            return Err(invalid(format!(
                "the value {value} is too large: at most {MAX_RATE_VALUE}"
            )));
        }
        let (unit, singular) = match unit {
            "minute" => (Unit::Minute, true),
            "minutes" => (Unit::Minute, false),
            "hour" => (Unit::Hour, true),
            "hours" => (Unit::Hour, false),
            "day" => (Unit::Day, true),
            "days" => (Unit::Day, false),
            _ => {
                return Err(invalid(format!(
                    "the unit {unit:?} is not valid: it takes minute, minutes, hour, hours, day or days (lowercase)"
                )));
            }
        };
        if singular && value != 1 {
            return Err(invalid(format!(
                "a value above 1 takes the plural unit: rate({value} {}s), not rate({value} {})",
                unit.name(),
                unit.name()
            )));
        }
        Ok(Rate { value, unit })
    }

    /// The period in milliseconds.
    pub(crate) fn period_ms(self) -> i64 {
        let unit_ms: i64 = match self.unit {
            Unit::Minute => 60_000,
            Unit::Hour => 3_600_000,
            Unit::Day => 86_400_000,
        };
        i64::from(self.value) * unit_ms
    }

    /// The first `anchor_ms + k * period` (k >= 0) strictly after `after_ms`; None past `i64::MAX`.
    pub(crate) fn next_after(self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        if after_ms < anchor_ms {
            return Some(anchor_ms);
        }
        let period = i128::from(self.period_ms());
        let periods = (i128::from(after_ms) - i128::from(anchor_ms)) / period + 1;
        i64::try_from(i128::from(anchor_ms) + periods * period).ok()
    }
}

impl Unit {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }
}
