//! The expression in words, for the console: "at 09:00, Monday to Friday (Europe/Paris)".
//!
//! EventBridge Scheduler's docs describe their examples this way ("Run at 10:15 am (UTC+0) every day",
//! "every 10 minutes Monday through Friday"), reading the fields as this crate parses them: day of the
//! week 1 is Sunday, `L`/`W`/`#` as the `cron` module says, wall-clock times in the schedule's zone
//! (named after the sentence, since DST moves the UTC instants). Rates name no zone: they ignore it.
//! Only common shapes get a sentence; for the rest `describe_cron` gives up (None) and the caller shows
//! the expression itself, which is never wrong.

use crate::cron::{Bits, Cron, Days, MonthDays, WeekDays};
use crate::rate::Rate;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const NTH: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

/// "every minute", "every 15 minutes", "every day"...
pub(crate) fn describe_rate(rate: Rate) -> String {
    match rate.value {
        1 => format!("every {}", rate.unit.name()),
        value => format!("every {value} {}s", rate.unit.name()),
    }
}

/// The cron expression in words, with its zone; None when its shape has no simple sentence.
pub(crate) fn describe_cron(cron: &Cron, timezone: &str) -> Option<String> {
    let (mut text, daily) = times(cron)?;
    let mut qualifiers = Vec::new();
    if let Some(days) = days(cron.days)? {
        qualifiers.push(days);
    }
    if cron.months.count() < 12 {
        qualifiers.push(format!(
            "in {}",
            spans(cron.months, 1, 12, |month| name(&MONTHS, month - 1))
        ));
    }
    if cron.years.count() < 230 {
        qualifiers.push(format!(
            "in {}",
            spans(cron.years, 0, 229, |year| (year + 1970).to_string())
        ));
    }
    if qualifiers.is_empty() {
        if daily {
            text.push_str(" every day");
        }
    } else {
        text.push_str(", ");
        text.push_str(&qualifiers.join(", "));
    }
    Some(format!("{text} ({timezone})"))
}

/// The times of day in words, and whether they are a few fixed times (then "every day" reads well).
fn times(cron: &Cron) -> Option<(String, bool)> {
    let minutes = cron.minutes.values(0, 59);
    let hours = cron.hours.values(0, 23);
    let (&first_minute, &last_minute) = (minutes.first()?, minutes.last()?);
    let (&first_hour, &last_hour) = (hours.first()?, hours.last()?);
    let one_run = runs(cron.hours, 0, 23).len() == 1;
    if minutes.len() * hours.len() <= 4 {
        let times = hours
            .iter()
            .flat_map(|&hour| minutes.iter().map(move |&minute| clock(hour, minute)));
        return Some((format!("at {}", list(times.collect())), true));
    }
    if minutes.len() == 1 {
        let minute = first_minute;
        let text = if hours.len() == 24 {
            match minute {
                0 => "every hour".to_owned(),
                _ => format!("every hour at minute {minute}"),
            }
        } else if let Some(step) = progression(&hours, 24) {
            match (first_hour, minute) {
                (0, 0) => format!("every {step} hours"),
                _ => format!("every {step} hours from {}", clock(first_hour, minute)),
            }
        } else if one_run {
            format!(
                "every hour from {} to {}",
                clock(first_hour, minute),
                clock(last_hour, minute)
            )
        } else {
            return None;
        };
        return Some((text, false));
    }
    let every = match progression(&minutes, 60) {
        Some(step) if first_minute == 0 && 60 % step == 0 => match step {
            1 => "every minute".to_owned(),
            _ => format!("every {step} minutes"),
        },
        _ => return None,
    };
    if hours.len() == 24 {
        Some((every, false))
    } else if one_run {
        Some((
            format!(
                "{every} between {} and {}",
                clock(first_hour, 0),
                clock(last_hour, last_minute)
            ),
            false,
        ))
    } else {
        None
    }
}

/// The day fields in words: Some(None) for every day, None when there is no simple sentence.
fn days(days: Days) -> Option<Option<String>> {
    let text = match days {
        Days::OfMonth(MonthDays::List(bits)) if bits.count() == 31 => return Some(None),
        Days::OfMonth(MonthDays::List(bits)) => {
            let noun = if bits.count() == 1 { "day" } else { "days" };
            format!(
                "on {noun} {} of the month",
                spans(bits, 1, 31, |day| day.to_string())
            )
        }
        Days::OfMonth(MonthDays::Last) => "on the last day of the month".to_owned(),
        Days::OfMonth(MonthDays::LastWeekday) => "on the last weekday of the month".to_owned(),
        Days::OfMonth(MonthDays::NearestWeekday(day)) => {
            format!("on the weekday nearest day {day} of the month")
        }
        Days::OfWeek(WeekDays::List(bits)) if bits.count() == 7 => return Some(None),
        Days::OfWeek(WeekDays::List(bits)) => match runs(bits, 1, 7)[..] {
            [(first, last)] if last - first >= 2 => {
                format!(
                    "{} to {}",
                    name(&WEEKDAYS, first - 1),
                    name(&WEEKDAYS, last - 1)
                )
            }
            [(only, last)] if only == last => format!("every {}", name(&WEEKDAYS, only - 1)),
            _ => format!("on {}", spans(bits, 1, 7, |day| name(&WEEKDAYS, day - 1))),
        },
        Days::OfWeek(WeekDays::Last(day)) => {
            format!("on the last {} of the month", name(&WEEKDAYS, day - 1))
        }
        Days::OfWeek(WeekDays::Nth(day, nth)) => {
            format!(
                "on the {} {} of the month",
                name(&NTH, nth - 1),
                name(&WEEKDAYS, day - 1)
            )
        }
    };
    Some(Some(text))
}

/// `HH:MM`.
fn clock(hour: i32, minute: i32) -> String {
    format!("{hour:02}:{minute:02}")
}

fn name(names: &[&str], index: i32) -> String {
    usize::try_from(index)
        .ok()
        .and_then(|index| names.get(index))
        .map_or_else(|| index.to_string(), |name| (*name).to_owned())
}

/// The step of `values` when they are every step-th value of a cycle of `cycle` from their first, to its end.
fn progression(values: &[i32], cycle: i32) -> Option<i32> {
    let (&first, &second, &last) = (values.first()?, values.get(1)?, values.last()?);
    let step = second - first;
    let even = values.windows(2).all(|pair| pair[1] - pair[0] == step);
    (step > 0 && even && first < step && last + step >= cycle).then_some(step)
}

/// The runs of consecutive values of `bits` in `low..=high`, as (first, last).
fn runs(bits: Bits, low: i32, high: i32) -> Vec<(i32, i32)> {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for value in bits.values(low, high) {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == value => *last = value,
            _ => runs.push((value, value)),
        }
    }
    runs
}

/// The runs of `bits` in words: "Monday, Wednesday and Friday", "March to June", "2022 to 2023".
fn spans(bits: Bits, low: i32, high: i32, label: impl Fn(i32) -> String) -> String {
    let items = runs(bits, low, high)
        .into_iter()
        .flat_map(|(first, last)| match last - first {
            0 => vec![label(first)],
            1 => vec![label(first), label(last)],
            _ => vec![format!("{} to {}", label(first), label(last))],
        })
        .collect();
    list(items)
}

/// "a", "a and b", "a, b and c".
fn list(mut items: Vec<String>) -> String {
    match items.pop() {
        None => String::new(),
        Some(last) if items.is_empty() => last,
        Some(last) => format!("{} and {last}", items.join(", ")),
    }
}
