//! One-time schedules' `at(yyyy-mm-ddThh:mm:ss)` expressions, in UTC, to
//! and from a timer's instant (ms since the epoch).
//!
//! EventBridge Scheduler's `at()` has no unit finer than the second and a
//! four-digit year ("Schedule types on EventBridge Scheduler", one-time
//! schedules), so an instant is rounded *up* to its second (a fire never
//! scheduled before it) and must fall in years 0000 to 9999.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The `at()` expression of the instant `at_ms`, in UTC; a sub-second
/// instant is rounded up to the next second. An error names an instant
/// outside years 0000 to 9999.
pub(crate) fn format(at_ms: i64) -> Result<String, String> {
    let secs = at_ms.div_euclid(1000) + i64::from(at_ms.rem_euclid(1000) != 0);
    let at = OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .filter(|at| (0..=9999).contains(&at.year()))
        .ok_or_else(|| {
            format!("{at_ms} ms since the epoch is outside at()'s years 0000 to 9999")
        })?;
    Ok(format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    ))
}

/// The instant (ms since the epoch) of an `at(yyyy-mm-ddThh:mm:ss)`
/// expression read in UTC, or `None` if `expression` is not one.
pub(crate) fn parse(expression: &str) -> Option<i64> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    let bytes = inner.as_bytes();
    // yyyy-mm-ddThh:mm:ss: digits everywhere but these separators.
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if bytes.len() != 19
        || separators.iter().any(|&(i, c)| bytes[i] != c)
        || bytes
            .iter()
            .enumerate()
            .any(|(i, b)| !separators.iter().any(|&(s, _)| s == i) && !b.is_ascii_digit())
    {
        return None;
    }
    let number = |from: usize, to: usize| inner[from..to].parse::<u16>().ok();
    let month = Month::try_from(u8::try_from(number(5, 7)?).ok()?).ok()?;
    let date = Date::from_calendar_date(
        i32::from(number(0, 4)?),
        month,
        u8::try_from(number(8, 10)?).ok()?,
    )
    .ok()?;
    let time = Time::from_hms(
        u8::try_from(number(11, 13)?).ok()?,
        u8::try_from(number(14, 16)?).ok()?,
        u8::try_from(number(17, 19)?).ok()?,
    )
    .ok()?;
    let secs = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    secs.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_is_written_in_utc_to_the_second_and_read_back() {
        // 2026-03-01T12:34:56Z
        let at_ms = 1_772_368_496_000;
        assert_eq!(format(at_ms).unwrap(), "at(2026-03-01T12:34:56)");
        assert_eq!(parse("at(2026-03-01T12:34:56)"), Some(at_ms));
        for at_ms in [0, 951_782_400_000, 4_102_444_799_000, 253_402_300_799_000] {
            assert_eq!(parse(&format(at_ms).unwrap()), Some(at_ms), "{at_ms}");
        }
        assert_eq!(format(0).unwrap(), "at(1970-01-01T00:00:00)");
        // 2000-02-29, a leap day.
        assert_eq!(format(951_782_400_000).unwrap(), "at(2000-02-29T00:00:00)");
    }

    #[test]
    fn a_sub_second_instant_rounds_up_never_earlier() {
        assert_eq!(format(1).unwrap(), "at(1970-01-01T00:00:01)");
        assert_eq!(format(999).unwrap(), "at(1970-01-01T00:00:01)");
        assert_eq!(format(1_000).unwrap(), "at(1970-01-01T00:00:01)");
        assert_eq!(format(-1).unwrap(), "at(1970-01-01T00:00:00)");
    }

    #[test]
    fn instants_outside_four_digit_years_are_refused() {
        assert!(format(253_402_300_800_000).is_err(), "year 10000");
        assert!(format(-62_167_219_201_000).is_err(), "year -1");
        assert!(format(-62_167_219_200_000).is_ok(), "0000-01-01");
        assert!(format(i64::MAX).is_err());
        assert!(format(i64::MIN).is_err());
    }

    #[test]
    fn only_well_formed_at_expressions_parse() {
        for expression in [
            "rate(5 minutes)",
            "cron(0 12 * * ? *)",
            "at(2026-03-01T12:34)",
            "at(2026-03-01 12:34:56)",
            "at(2026-03-01T12:34:56Z)",
            "at(2026-02-30T00:00:00)",
            "at(2026-13-01T00:00:00)",
            "at(2026-01-01T24:00:00)",
            "at(+026-01-01T00:00:00)",
            "at(2026-01-01T00:00:0١)",
            "at(2026-01-01T00:00:00",
            "at()",
        ] {
            assert_eq!(parse(expression), None, "{expression}");
        }
    }
}
