//! The `cron(...)` syntax, as EventBridge Scheduler documents it, parsed into sets of values.
//!
//! "A cron expression consists of six fields separated by white spaces: (minutes hours day_of_month
//! month day_of_week year)" (the API reference); the user guide's table gives each field's values and
//! wildcards, which this module accepts and nothing more:
//!
//! | field        | values                      | wildcards       |
//! |--------------|-----------------------------|-----------------|
//! | minutes      | 0-59                        | `, - * /`       |
//! | hours        | 0-23                        | `, - * /`       |
//! | day-of-month | 1-31                        | `, - * ? / L W` |
//! | month        | 1-12 or JAN-DEC             | `, - * /`       |
//! | day-of-week  | 1-7 or SUN-SAT (1 = Sunday) | `, - * ? L #`   |
//! | year         | 1970-2199                   | `, - * /`       |
//!
//! The day fields follow the documented rules: "You can't use * in both the Day-of-month and
//! Day-of-week fields. If you use it in one, you must use ? in the other", so exactly one of the two is
//! `?`. `L` is the last day of the month (day-of-month) or of the week, Saturday (day-of-week); `6L` is
//! the month's last Friday; `LW` the month's last weekday; `15W` "the weekday closest to" the 15th,
//! never leaving the month (Quartz's rule, which EventBridge's syntax comes from: a Saturday 1st gives
//! Monday the 3rd, a Sunday 31st gives Friday the 29th, and `31W` does not fire in shorter months);
//! `3#2` the month's second Tuesday, and "If you use a '#' character, you can define only one
//! expression in the day-of-week field". `L`, `LW`, `nW`, `nL` and `n#k` stand alone in their field.
//! Steps are `start/step`, `*/step` or `low-high/step`; ranges go from low to high (no wrapping).
//! Names and letters are case-insensitive; "cron(" itself is lowercase, as the docs write it.
//!
//! "Cron expressions that lead to rates faster than 1 minute are not supported": with no seconds field,
//! every expression fires at most once a minute by construction.

use crate::ScheduleError;

/// A set of small values (a field's values; years are stored from 1970, so 0-229).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bits([u64; 4]);

impl Bits {
    pub(crate) fn has(self, value: i32) -> bool {
        (0..256).contains(&value) && (self.0[value as usize / 64] >> (value % 64)) & 1 == 1
    }

    fn insert(&mut self, value: i32) {
        if (0..256).contains(&value) {
            self.0[value as usize / 64] |= 1 << (value % 64);
        }
    }

    pub(crate) fn count(self) -> u32 {
        self.0.iter().map(|word| word.count_ones()).sum()
    }

    /// The values in `low..=high`, in order.
    pub(crate) fn values(self, low: i32, high: i32) -> Vec<i32> {
        (low..=high).filter(|&value| self.has(value)).collect()
    }
}

/// A parsed cron expression: the values each field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    pub(crate) minutes: Bits,
    pub(crate) hours: Bits,
    pub(crate) days: Days,
    pub(crate) months: Bits,
    /// Years less 1970.
    pub(crate) years: Bits,
}

/// Which days fire: by day-of-month (day-of-week is `?`) or by day-of-week (day-of-month is `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Days {
    OfMonth(MonthDays),
    OfWeek(WeekDays),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonthDays {
    /// Days 1-31; a day the month lacks (31 in April) does not fire that month.
    List(Bits),
    /// `L`: the month's last day.
    Last,
    /// `LW`: the month's last weekday (Monday to Friday).
    LastWeekday,
    /// `nW`: the weekday nearest day n, within the month.
    NearestWeekday(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeekDays {
    /// Days of the week, 1 = Sunday to 7 = Saturday.
    List(Bits),
    /// `nL`: the month's last day n of the week.
    Last(i32),
    /// `n#k`: the month's k-th day n of the week (k is 1-5).
    Nth(i32, i32),
}

/// One field's name, range and value names, for parsing and for messages.
struct Field {
    name: &'static str,
    min: i32,
    max: i32,
    /// Subtracted before storing (1970 for years, so they fit in [`Bits`]).
    base: i32,
    names: &'static [&'static str],
    allowed: &'static str,
}

const MINUTES: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    base: 0,
    names: &[],
    allowed: "0-59 (wildcards , - * /)",
};
const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    base: 0,
    names: &[],
    allowed: "0-23 (wildcards , - * /)",
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    base: 0,
    names: &[],
    allowed: "1-31 (wildcards , - * ? / L W, e.g. L, LW or 15W)",
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    base: 0,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    allowed: "1-12 or JAN-DEC (wildcards , - * /)",
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    base: 0,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    allowed: "1-7 (1 = Sunday) or SUN-SAT (wildcards , - * ? L #, e.g. L, 6L or 3#2)",
};
const YEAR: Field = Field {
    name: "year",
    min: 1970,
    max: 2199,
    base: 1970,
    names: &[],
    allowed: "1970-2199 (wildcards , - * /)",
};

pub(crate) const FIRST_YEAR: i32 = 1970;
pub(crate) const LAST_YEAR: i32 = 2199;

impl Cron {
    /// Parses the text between `cron(` and `)`.
    pub(crate) fn parse(body: &str) -> Result<Cron, ScheduleError> {
        let body = body.to_ascii_uppercase();
        let fields: Vec<&str> = body.split_ascii_whitespace().collect();
        let [minutes, hours, day_of_month, month, day_of_week, year] = fields[..] else {
            let hint = match fields.len() {
                5 => ": the year is required (use * for every year)",
                7 => ": EventBridge cron has no seconds field",
                _ => "",
            };
            return Err(ScheduleError::Cron(format!(
                "expected six fields (minutes hours day-of-month month day-of-week year), found {}{hint}",
                fields.len()
            )));
        };
        let days = match (
            parse_day_of_month(day_of_month)?,
            parse_day_of_week(day_of_week)?,
        ) {
            (Some(days), None) => Days::OfMonth(days),
            (None, Some(days)) => Days::OfWeek(days),
            (Some(_), Some(_)) => {
                return Err(ScheduleError::Cron(
                    "day-of-month and day-of-week can't both be specified: use ? in one of them (e.g. cron(0 9 * * ? *) or cron(0 9 ? * MON-FRI *))"
                        .to_owned(),
                ));
            }
            (None, None) => {
                return Err(ScheduleError::Cron(
                    "day-of-month and day-of-week can't both be ?: specify one of them (* for every day) and use ? in the other"
                        .to_owned(),
                ));
            }
        };
        Ok(Cron {
            minutes: parse_plain(&MINUTES, minutes)?,
            hours: parse_plain(&HOURS, hours)?,
            days,
            months: parse_plain(&MONTH, month)?,
            years: parse_plain(&YEAR, year)?,
        })
    }
}

fn error(field: &Field, text: &str, why: &str) -> ScheduleError {
    ScheduleError::Cron(format!("the {} field {text:?} {why}", field.name))
}

/// A field that takes only `, - * /` (minutes, hours, month, year).
fn parse_plain(field: &Field, text: &str) -> Result<Bits, ScheduleError> {
    if text.contains(['?', '#']) {
        return Err(error(
            field,
            text,
            &format!(
                "is not valid: ? and # belong to the day fields; it takes {}",
                field.allowed
            ),
        ));
    }
    parse_list(field, text)
}

fn parse_day_of_month(text: &str) -> Result<Option<MonthDays>, ScheduleError> {
    let field = &DAY_OF_MONTH;
    match text {
        "?" => return Ok(None),
        "L" => return Ok(Some(MonthDays::Last)),
        "LW" => return Ok(Some(MonthDays::LastWeekday)),
        _ => {}
    }
    if let Some(day) = text
        .strip_suffix('W')
        .filter(|day| day.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Ok(Some(MonthDays::NearestWeekday(value(field, day)?)));
    }
    if text.contains(['L', 'W']) {
        return Err(error(
            field,
            text,
            "is not valid: L, LW and nW (e.g. 15W) must stand alone in day-of-month",
        ));
    }
    if text.contains(['?', '#']) {
        return Err(error(
            field,
            text,
            "is not valid: ? stands alone, and # belongs to day-of-week",
        ));
    }
    parse_list(field, text).map(|days| Some(MonthDays::List(days)))
}

fn parse_day_of_week(text: &str) -> Result<Option<WeekDays>, ScheduleError> {
    let field = &DAY_OF_WEEK;
    match text {
        "?" => return Ok(None),
        // "The L wildcard in the ... Day-of-week fields specifies the last day of ... the week": Saturday.
        "L" => return Ok(Some(WeekDays::List(bits_of(&[7])))),
        _ => {}
    }
    if text.contains('?') {
        return Err(error(field, text, "is not valid: ? stands alone"));
    }
    if text.contains('/') {
        return Err(error(
            field,
            text,
            "is not valid: day-of-week takes the wildcards , - * ? L # but not /",
        ));
    }
    if let Some((day, nth)) = text.split_once('#') {
        if text.contains([',', '-', '*']) {
            return Err(error(
                field,
                text,
                "is not valid: with #, day-of-week holds one expression only (e.g. 3#2)",
            ));
        }
        let nth = number(nth).filter(|nth| (1..=5).contains(nth)).ok_or_else(|| {
            error(field, text, "is not valid: after # comes which one in the month, 1 to 5 (e.g. 3#2, the second Tuesday)")
        })?;
        return Ok(Some(WeekDays::Nth(value(field, day)?, nth)));
    }
    if let Some(day) = text.strip_suffix('L').filter(|day| !day.is_empty()) {
        if day.contains([',', '-', '*']) {
            return Err(error(
                field,
                text,
                "is not valid: nL (e.g. 6L, the last Friday) stands alone in day-of-week",
            ));
        }
        return Ok(Some(WeekDays::Last(value(field, day)?)));
    }
    parse_list(field, text).map(|days| Some(WeekDays::List(days)))
}

/// A comma-separated list of `*`, `v`, `a-b`, each optionally with `/step` (a bare `v/step` runs to the end).
fn parse_list(field: &Field, text: &str) -> Result<Bits, ScheduleError> {
    let mut bits = Bits::default();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (field.min, field.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(field, low)?, value(field, high)?)
        } else {
            let low = value(field, range)?;
            (low, if step.is_some() { field.max } else { low })
        };
        if low > high {
            return Err(error(
                field,
                item,
                "is not valid: a range goes from low to high (e.g. 1-5)",
            ));
        }
        let step = match step {
            None => 1,
            Some(step) => number(step)
                .filter(|step| (1..=field.max - field.min).contains(step))
                .ok_or_else(|| {
                    error(
                        field,
                        item,
                        &format!(
                            "is not valid: the step after / must be a number from 1 to {}",
                            field.max - field.min
                        ),
                    )
                })?,
        };
        let mut at = low;
        while at <= high {
            bits.insert(at - field.base);
            at += step;
        }
    }
    Ok(bits)
}

/// One value of a field: a number in its range, or a name (JAN, MON...).
fn value(field: &Field, text: &str) -> Result<i32, ScheduleError> {
    if let Some(index) = field.names.iter().position(|name| *name == text) {
        return Ok(index as i32 + field.min);
    }
    match number(text) {
        Some(value) if (field.min..=field.max).contains(&value) => Ok(value),
        Some(_) => Err(error(
            field,
            text,
            &format!("is out of range: it takes {}", field.allowed),
        )),
        None if text.is_empty() => Err(error(
            field,
            text,
            &format!("is missing a value: it takes {}", field.allowed),
        )),
        None => Err(error(
            field,
            text,
            &format!("is not valid: it takes {}", field.allowed),
        )),
    }
}

/// A small unsigned decimal number (at most four digits: no field goes past 2199).
fn number(text: &str) -> Option<i32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn bits_of(values: &[i32]) -> Bits {
    let mut bits = Bits::default();
    for &value in values {
        bits.insert(value);
    }
    bits
}
