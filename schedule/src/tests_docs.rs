//! The documentation's own examples: every expression on "Schedule types on EventBridge Scheduler" and
//! the examples table of the EventBridge cron reference it mirrors, each with the meaning the docs give
//! it, checked as next fires from a fixed instant.

use crate::{Recurrence, ScheduleError};

/// Milliseconds of an RFC 3339 instant (jiff's parser, independent of the code under test).
pub(crate) fn ms(instant: &str) -> i64 {
    instant
        .parse::<jiff::Timestamp>()
        .expect("test instant")
        .as_millisecond()
}

/// An RFC 3339 instant, for readable failures.
pub(crate) fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("instant in range")
        .to_string()
}

pub(crate) fn isos(fires: &[i64]) -> Vec<String> {
    fires.iter().map(|&fire| iso(fire)).collect()
}

struct Example {
    expression: &'static str,
    timezone: &'static str,
    meaning: &'static str,
    after: &'static str,
    fires: &'static [&'static str],
}

const EXAMPLES: &[Example] = &[
    // "Schedule types on EventBridge Scheduler", Cron-based schedules, Examples.
    Example {
        expression: "cron(15 10 ? * 6L 2022-2023)",
        timezone: "UTC",
        meaning: "runs at 10:15am UTC+0 on the last Friday of each month during the years 2022 to 2023",
        after: "2022-01-01T00:00:00Z",
        fires: &[
            "2022-01-28T10:15:00Z",
            "2022-02-25T10:15:00Z",
            "2022-03-25T10:15:00Z",
            "2022-04-29T10:15:00Z",
        ],
    },
    // Time zones on EventBridge Scheduler.
    Example {
        expression: "cron(30 8 * * ? *)",
        timezone: "America/New_York",
        meaning: "invokes a target in America/New_York every day at 8:30 a.m.",
        after: "2026-11-01T00:00:00Z",
        // EDT (-4) until 2026-11-01 02:00, EST (-5) after.
        fires: &["2026-11-01T13:30:00Z", "2026-11-02T13:30:00Z"],
    },
    // Daylight savings time on EventBridge Scheduler, Example (spring forward 2027-03-14, fall back 2027-11-07).
    Example {
        expression: "cron(30 2 * * ? *)",
        timezone: "America/Los_Angeles",
        meaning: "Spring-forward: skips the schedule invocation on that day, and resumes running normally the following day",
        after: "2027-03-13T00:00:00Z",
        fires: &["2027-03-13T10:30:00Z", "2027-03-15T09:30:00Z"],
    },
    // Los Angeles really falls back from 01:59 to 01:00 (the doc's "2:59 a.m. to 2:00 a.m." is
    // illustrative), so its 2:30 runs once anyway; the repeated half hour there is 1:30.
    Example {
        expression: "cron(30 2 * * ? *)",
        timezone: "America/Los_Angeles",
        meaning: "Fall-back: runs only once at 2:30 a.m.",
        after: "2027-11-06T00:00:00Z",
        fires: &[
            "2027-11-06T09:30:00Z",
            "2027-11-07T10:30:00Z",
            "2027-11-08T10:30:00Z",
        ],
    },
    Example {
        expression: "cron(30 1 * * ? *)",
        timezone: "America/Los_Angeles",
        meaning: "Fall-back: runs only once, before the shift occurs, but does not repeat the invocation after the time shift",
        after: "2027-11-06T00:00:00Z",
        fires: &[
            "2027-11-06T08:30:00Z",
            "2027-11-07T08:30:00Z",
            "2027-11-08T09:30:00Z",
        ],
    },
    // The EventBridge cron reference's examples table (the same syntax), from Thursday 2026-01-01.
    Example {
        expression: "cron(0 10 * * ? *)",
        timezone: "UTC",
        meaning: "Run at 10:00 am (UTC+0) every day",
        after: "2026-01-01T00:00:00Z",
        fires: &[
            "2026-01-01T10:00:00Z",
            "2026-01-02T10:00:00Z",
            "2026-01-03T10:00:00Z",
        ],
    },
    Example {
        expression: "cron(15 12 * * ? *)",
        timezone: "UTC",
        meaning: "Run at 12:15 pm (UTC+0) every day",
        after: "2026-01-01T00:00:00Z",
        fires: &[
            "2026-01-01T12:15:00Z",
            "2026-01-02T12:15:00Z",
            "2026-01-03T12:15:00Z",
        ],
    },
    Example {
        expression: "cron(0 18 ? * MON-FRI *)",
        timezone: "UTC",
        meaning: "Run at 6:00 pm (UTC+0) every Monday through Friday",
        after: "2026-01-01T00:00:00Z",
        fires: &[
            "2026-01-01T18:00:00Z",
            "2026-01-02T18:00:00Z",
            "2026-01-05T18:00:00Z",
        ],
    },
    Example {
        expression: "cron(0 8 1 * ? *)",
        timezone: "UTC",
        meaning: "Run at 8:00 am (UTC+0) every 1st day of the month",
        after: "2026-01-01T00:00:00Z",
        fires: &[
            "2026-01-01T08:00:00Z",
            "2026-02-01T08:00:00Z",
            "2026-03-01T08:00:00Z",
        ],
    },
    Example {
        expression: "cron(0/15 * * * ? *)",
        timezone: "UTC",
        meaning: "Run every 15 minutes",
        after: "2026-01-01T00:00:00Z",
        fires: &[
            "2026-01-01T00:15:00Z",
            "2026-01-01T00:30:00Z",
            "2026-01-01T00:45:00Z",
            "2026-01-01T01:00:00Z",
        ],
    },
    Example {
        expression: "cron(0/10 * ? * MON-FRI *)",
        timezone: "UTC",
        meaning: "Run every 10 minutes Monday through Friday",
        after: "2026-01-02T23:40:00Z",
        fires: &[
            "2026-01-02T23:50:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-05T00:10:00Z",
        ],
    },
    Example {
        expression: "cron(0/5 8-17 ? * MON-FRI *)",
        timezone: "UTC",
        meaning: "Run every 5 minutes Monday through Friday between 8:00 am and 5:55 pm (UTC+0)",
        after: "2026-01-02T17:50:00Z",
        fires: &[
            "2026-01-02T17:55:00Z",
            "2026-01-05T08:00:00Z",
            "2026-01-05T08:05:00Z",
        ],
    },
    Example {
        expression: "cron(0 9 ? * 2#1 *)",
        timezone: "UTC",
        meaning: "Run at 9:00 am (UTC+0) on the first Monday of each month",
        after: "2026-01-01T00:00:00Z",
        fires: &[
            "2026-01-05T09:00:00Z",
            "2026-02-02T09:00:00Z",
            "2026-03-02T09:00:00Z",
        ],
    },
];

#[test]
fn every_documented_cron_example_fires_as_its_meaning_says() {
    for example in EXAMPLES {
        let recurrence = Recurrence::parse(example.expression, example.timezone)
            .unwrap_or_else(|error| panic!("{} should parse: {error}", example.expression));
        let fires = recurrence.next_fires(ms(example.after), 0, example.fires.len());
        let expected: Vec<String> = example.fires.iter().map(|fire| iso(ms(fire))).collect();
        assert_eq!(
            isos(&fires),
            expected,
            "{} in {}: {}",
            example.expression,
            example.timezone,
            example.meaning
        );
    }
}

#[test]
fn the_documented_rate_example_fires_every_five_minutes_from_its_start() {
    // "rate(5 minutes)": "starts invoking its target immediately after you create and activate it".
    let recurrence = Recurrence::parse("rate(5 minutes)", "UTC").expect("documented rate");
    let created = ms("2026-01-01T12:00:00Z");
    assert_eq!(
        isos(&recurrence.next_fires(created - 1, created, 3)),
        [
            "2026-01-01T12:00:00Z",
            "2026-01-01T12:05:00Z",
            "2026-01-01T12:10:00Z"
        ]
    );
    assert_eq!(
        iso(recurrence.next_after(created, created).expect("fires")),
        "2026-01-01T12:05:00Z"
    );
}

#[test]
fn the_documented_one_time_example_is_refused_as_not_recurring() {
    let error =
        Recurrence::parse("at(2022-11-20T13:00:00)", "America/Los_Angeles").expect_err("one-time");
    assert_eq!(error, ScheduleError::OneTime);
    assert_eq!(error.field(), "expression");
    assert!(error.to_string().contains("runAt"), "{error}");
}

#[test]
fn a_cron_whose_years_ran_out_has_no_next_fire() {
    let recurrence = Recurrence::parse("cron(15 10 ? * 6L 2022-2023)", "UTC").expect("parses");
    assert_eq!(recurrence.next_after(ms("2023-12-29T10:15:00Z"), 0), None);
    assert_eq!(
        iso(recurrence
            .next_after(ms("2023-12-29T10:14:59Z"), 0)
            .expect("last fire")),
        "2023-12-29T10:15:00Z"
    );
    assert!(
        recurrence
            .next_fires(ms("2024-01-01T00:00:00Z"), 0, 5)
            .is_empty()
    );
}
