//! When a cron expression fires: its wall-clock times in the schedule's time zone, turned into
//! instants by EventBridge Scheduler's daylight-saving rules.
//!
//! "EventBridge Scheduler supports configuring cron-based ... schedules in any time zone that you
//! specify. EventBridge Scheduler uses the Time Zone Database maintained by the Internet Assigned
//! Numbers Authority (IANA)." A cron's fields are wall-clock values in that zone, and its
//! "Daylight savings time on EventBridge Scheduler" section says what happens when the wall clock jumps:
//!
//! > EventBridge Scheduler automatically adjusts your schedule for daylight saving time. When time
//! > shifts *forward* in the Spring, if a cron expression falls on a non-existent date and time, your
//! > schedule invocation is skipped. When time shifts *backwards* in the Fall, your schedule runs only
//! > once and does not repeat its invocation. The following invocations occur normally at the
//! > specified date and time.
//!
//! and its example, `cron(30 2 * * ? *)` in America/Los_Angeles, says which of the two 2:30s fires:
//! "EventBridge Scheduler runs the schedule only once at 2:30 a.m. before the shift occurs, but does not
//! repeat the schedule invocation again at 2:30 a.m. after the time shift." So each matching wall-clock
//! time fires at most once: not at all when it falls in a gap, at its first occurrence when it falls in
//! a fold. This holds minute by minute, so `cron(30 * * * ? *)` fires once at 02:30 on a fall-back day
//! too (its next fire is 03:30, two hours later). Zones without DST, UTC included, never jump.
//!
//! The search walks matching dates from the wall-clock date of `after` on, bounded by the year field's
//! last year (2199), so an expression whose years ran out, or that can never match, ends in `None`.
//! With "the first occurrence" chosen in folds, wall-clock order is instant order, which is what lets
//! the walk return the first matching time whose instant is later than `after`.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::cron::{Cron, Days, FIRST_YEAR, LAST_YEAR, MonthDays, WeekDays};

/// The first fire of `cron` in `zone` strictly after `after`.
pub(crate) fn next_after(cron: &Cron, zone: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let now = zone.to_datetime(after);
    // Wall-clock minutes up to `now`'s own map to instants at or before `after` (first occurrences).
    let floor = (
        i32::from(now.year()),
        i32::from(now.month()),
        i32::from(now.day()),
        i32::from(now.hour()),
        i32::from(now.minute()),
    );
    let hours = cron.hours.values(0, 23);
    let minutes = cron.minutes.values(0, 59);
    for year in floor.0.max(FIRST_YEAR)..=LAST_YEAR {
        if !cron.years.has(year - FIRST_YEAR) {
            continue;
        }
        for month in 1..=12 {
            if !cron.months.has(month) || (year, month) < (floor.0, floor.1) {
                continue;
            }
            let Ok(first) = Date::new(i16::try_from(year).ok()?, i8::try_from(month).ok()?, 1)
            else {
                continue;
            };
            for day in 1..=i32::from(first.days_in_month()) {
                if (year, month, day) < (floor.0, floor.1, floor.2) {
                    continue;
                }
                let Ok(date) = Date::new(first.year(), first.month(), i8::try_from(day).ok()?)
                else {
                    continue;
                };
                if !day_matches(cron.days, date) {
                    continue;
                }
                for &hour in &hours {
                    for &minute in &minutes {
                        if (year, month, day, hour, minute) <= floor {
                            continue;
                        }
                        match first_instant(zone, date, hour, minute) {
                            Some(at) if at > after => return Some(at),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    None
}

/// The first instant showing `date` `hour:minute` on the zone's clock; None when the clock skips it.
fn first_instant(zone: &TimeZone, date: Date, hour: i32, minute: i32) -> Option<Timestamp> {
    let time =
        jiff::civil::Time::new(i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, 0, 0).ok()?;
    let wall = DateTime::from_parts(date, time);
    let offset = match zone.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { .. } => return None,
        AmbiguousOffset::Fold { before, .. } => before,
    };
    offset.to_timestamp(wall).ok()
}

/// Whether `date` is one of the days the expression's day fields select.
pub(crate) fn day_matches(days: Days, date: Date) -> bool {
    let day = i32::from(date.day());
    let last = i32::from(date.days_in_month());
    let weekday = i32::from(date.weekday().to_sunday_one_offset());
    match days {
        Days::OfMonth(MonthDays::List(bits)) => bits.has(day),
        Days::OfMonth(MonthDays::Last) => day == last,
        Days::OfMonth(MonthDays::LastWeekday) => {
            day == nearest_weekday(last, weekday_of(date, last), last)
        }
        Days::OfMonth(MonthDays::NearestWeekday(target)) => {
            target <= last && day == nearest_weekday(target, weekday_of(date, target), last)
        }
        Days::OfWeek(WeekDays::List(bits)) => bits.has(weekday),
        Days::OfWeek(WeekDays::Last(wanted)) => weekday == wanted && day + 7 > last,
        Days::OfWeek(WeekDays::Nth(wanted, nth)) => weekday == wanted && (day - 1) / 7 + 1 == nth,
    }
}

/// The day of the week (1 = Sunday) of day `day` in `date`'s month.
fn weekday_of(date: Date, day: i32) -> i32 {
    let shift = day - i32::from(date.day());
    (i32::from(date.weekday().to_sunday_one_offset()) - 1 + shift).rem_euclid(7) + 1
}

/// The weekday (Monday to Friday) nearest day `day` (whose day of the week is `weekday`, 1 = Sunday),
/// without leaving its month of `last` days.
fn nearest_weekday(day: i32, weekday: i32, last: i32) -> i32 {
    match weekday {
        7 if day == 1 => 3,          // Saturday the 1st: Monday the 3rd.
        7 => day - 1,                // Saturday: the Friday before.
        1 if day == last => day - 2, // Sunday, the month's last day: the Friday before.
        1 => day + 1,                // Sunday: the Monday after.
        _ => day,
    }
}
