//! What parses and what is refused (with which field and why), the special day wildcards' dates, and
//! the expression in words.

use crate::tests_docs::{isos, ms};
use crate::{Recurrence, ScheduleError};

fn refused(expression: &str, timezone: &str) -> ScheduleError {
    match Recurrence::parse(expression, timezone) {
        Ok(_) => panic!("{expression:?} in {timezone:?} should be refused"),
        Err(error) => error,
    }
}

#[test]
fn accepts_the_documented_syntax() {
    for expression in [
        "cron(0 9 ? * MON-FRI *)",
        "  cron(0 9 ? * mon-fri *)  ",
        "cron(0,15,30,45 0-23/2 * JAN,MAR,dec ? 2026-2199)",
        "cron(*/5 * * * ? *)",
        "cron(1/10 * * * ? *)",
        "cron(0-15/1 8-8 ? * 2,3,4,5,6,7 *)",
        "cron(30-30 13-13 ? * 2,4,6 *)",
        "cron(1-31/30 1-1 ? * 1,7 *)",
        "cron(0 0 L * ? *)",
        "cron(0 0 LW * ? *)",
        "cron(0 0 15W * ? *)",
        "cron(0 0 ? * L *)",
        "cron(0 0 ? * FRIL *)",
        "cron(0 0 ? * 3#2 *)",
        "cron(0 0 ? * tue#5 *)",
        "cron(0 0 1 * ? 1970)",
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(1 days)",
        "rate(1000000 minutes)",
    ] {
        let recurrence = Recurrence::parse(expression, "Europe/Paris")
            .unwrap_or_else(|error| panic!("{expression}: {error}"));
        assert_eq!(recurrence.expression(), expression.trim());
        assert_eq!(recurrence.timezone(), "Europe/Paris");
    }
}

#[test]
fn refuses_what_the_docs_refuse_and_says_why() {
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("   ", "empty"),
        ("cron(0 9 * * MON *)", "can't both be specified"),
        ("cron(0 9 * * * *)", "can't both be specified"),
        ("cron(0 9 ? * ? *)", "can't both be ?"),
        ("cron(0 9 * * ?)", "the year is required"),
        ("cron(0 0 9 * * ? *)", "no seconds field"),
        ("cron(60 9 * * ? *)", "out of range"),
        ("cron(0 24 * * ? *)", "out of range"),
        ("cron(0 9 0 * ? *)", "out of range"),
        ("cron(0 9 32 * ? *)", "out of range"),
        ("cron(0 9 * 13 ? *)", "out of range"),
        ("cron(0 9 ? * 8 *)", "out of range"),
        ("cron(0 9 ? * 0 *)", "out of range"),
        ("cron(0 9 * * ? 1969)", "out of range"),
        ("cron(0 9 * * ? 2200)", "out of range"),
        ("cron(0 9 * JANUARY ? *)", "JAN-DEC"),
        ("cron(0 9 ? * 3#1,6#3 *)", "one expression"),
        ("cron(0 9 ? * 3#6 *)", "1 to 5"),
        ("cron(0 9 ? * 1-5/2 *)", "but not /"),
        ("cron(0 9 1,L * ? *)", "stand alone"),
        ("cron(0 9 L-3 * ? *)", "stand alone"),
        ("cron(0 9 ? 3 * L)", "year"),
        ("cron(L 9 * * ? *)", "minutes"),
        ("cron(0 17-9 * * ? *)", "low to high"),
        ("cron(*/0 * * * ? *)", "step"),
        ("cron(*/60 * * * ? *)", "step"),
        ("cron(0 9 * * ? *", "unrecognised"),
        ("CRON(0 9 * * ? *)", "unrecognised"),
        ("cron (0 9 * * ? *)", "unrecognised"),
        ("every day", "unrecognised"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(-5 minutes)", "positive whole number"),
        ("rate(1.5 hours)", "positive whole number"),
        ("rate(1000001 minutes)", "too large"),
        ("rate(99999999999999999999 days)", "too large"),
        ("rate(5 minute)", "plural"),
        ("rate(5 weeks)", "minute, minutes"),
        ("rate(5 Minutes)", "minute, minutes"),
        ("rate(5)", "expected rate(value unit)"),
        ("rate(1 minute 2)", "expected rate(value unit)"),
        ("at(2030-01-01T00:00:00)", "runAt"),
        ("cron(0 0 30 2 ? *)", "never fires"),
        ("cron(0 0 31 4,6,9,11 ? *)", "never fires"),
        ("cron(0 0 ? 2 2#5 2027)", "never fires"),
        ("cron(30 2 28 3 ? 2027)", "never fires"),
    ];
    for &(expression, says) in cases {
        let error = refused(expression, "Europe/Paris");
        assert_eq!(error.field(), "expression", "{expression:?}: {error}");
        assert!(
            error.to_string().contains(says),
            "{expression:?} should say {says:?}, says: {error}"
        );
    }
    let long = format!("cron(0 9 * * ? {}*)", " ".repeat(300));
    assert_eq!(
        refused(&long, "UTC"),
        ScheduleError::TooLong {
            len: long.len(),
            max: 256
        }
    );
}

#[test]
fn time_zones_must_be_iana_names_spelled_as_the_database_does() {
    for zone in [
        "UTC",
        "Etc/UTC",
        "Europe/Paris",
        "America/Argentina/Buenos_Aires",
        "Asia/Kolkata",
    ] {
        assert!(Recurrence::parse("rate(5 minutes)", zone).is_ok(), "{zone}");
    }
    for zone in [
        "",
        "utc",
        "europe/paris",
        "Europe/Parish",
        "Mars/Olympus",
        "+02:00",
        "CET ",
        "Etc/Unknown",
        &"A/".repeat(100),
    ] {
        let error = refused("cron(0 9 * * ? *)", zone);
        assert_eq!(error.field(), "timezone", "{zone:?}: {error}");
        assert!(error.to_string().contains("IANA"), "{error}");
    }
}

#[test]
fn special_days_fall_where_quartz_and_the_docs_put_them() {
    let fires = |expression: &str, after: &str, n: usize| {
        isos(
            &Recurrence::parse(expression, "UTC")
                .expect("valid")
                .next_fires(ms(after), 0, n),
        )
    };
    // L: last day; February of a leap year.
    assert_eq!(
        fires("cron(0 0 L * ? *)", "2028-01-15T00:00:00Z", 2),
        ["2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z"]
    );
    // LW: last weekday; 2027-01-31 is a Sunday, 2027-07-31 a Saturday.
    assert_eq!(
        fires("cron(0 0 LW 1,7 ? *)", "2027-01-01T00:00:00Z", 2),
        ["2027-01-29T00:00:00Z", "2027-07-30T00:00:00Z"]
    );
    // 1W when the 1st is a Saturday (2027-05-01): Monday the 3rd; 15W on a Sunday (2027-08-15): Monday the 16th.
    assert_eq!(
        fires("cron(0 0 1W 5 ? *)", "2027-01-01T00:00:00Z", 1),
        ["2027-05-03T00:00:00Z"]
    );
    assert_eq!(
        fires("cron(0 0 15W 8 ? *)", "2027-01-01T00:00:00Z", 1),
        ["2027-08-16T00:00:00Z"]
    );
    // 31W when the 31st is a Sunday (2027-10-31): Friday the 29th; months without a 31st don't fire.
    assert_eq!(
        fires("cron(0 0 31W * ? *)", "2027-09-01T00:00:00Z", 2),
        ["2027-10-29T00:00:00Z", "2027-12-31T00:00:00Z"]
    );
    // 6L: last Friday; 3#2: second Tuesday; L in day-of-week: Saturdays.
    assert_eq!(
        fires("cron(0 0 ? * 6L *)", "2027-01-01T00:00:00Z", 2),
        ["2027-01-29T00:00:00Z", "2027-02-26T00:00:00Z"]
    );
    assert_eq!(
        fires("cron(0 0 ? * 3#2 *)", "2027-01-01T00:00:00Z", 2),
        ["2027-01-12T00:00:00Z", "2027-02-09T00:00:00Z"]
    );
    assert_eq!(
        fires("cron(0 0 ? * L *)", "2027-01-01T00:00:00Z", 2),
        ["2027-01-02T00:00:00Z", "2027-01-09T00:00:00Z"]
    );
    // 1/10 in minutes: the 1st, 11th, 21st... minute.
    assert_eq!(
        fires("cron(1/10 5 * * ? *)", "2027-01-01T05:00:00Z", 3),
        [
            "2027-01-01T05:01:00Z",
            "2027-01-01T05:11:00Z",
            "2027-01-01T05:21:00Z"
        ]
    );
    // Day 31 skips short months.
    assert_eq!(
        fires("cron(0 0 31 * ? *)", "2027-01-31T00:00:00Z", 1),
        ["2027-03-31T00:00:00Z"]
    );
}

#[test]
fn next_fires_count_and_strictly_after() {
    let recurrence = Recurrence::parse("cron(0 9 ? * MON-FRI *)", "Europe/Paris").expect("valid");
    let at_nine = ms("2027-01-04T08:00:00Z");
    assert_eq!(
        recurrence.next_after(at_nine, 0),
        Some(ms("2027-01-05T08:00:00Z"))
    );
    assert_eq!(recurrence.next_after(at_nine - 1, 0), Some(at_nine));
    assert_eq!(recurrence.next_fires(at_nine, 0, 5).len(), 5);
    assert!(recurrence.next_fires(at_nine, 0, 0).is_empty());
    assert_eq!(
        recurrence.fires_between(at_nine - 1, at_nine, 0, 10),
        [at_nine]
    );
    assert!(recurrence.fires_between(at_nine, at_nine, 0, 10).is_empty());
    // Before 1970 the first fire is in 1970; past the end of time there is none.
    assert_eq!(
        recurrence.next_after(i64::MIN, 0),
        Some(ms("1970-01-01T08:00:00Z"))
    );
    assert_eq!(recurrence.next_after(i64::MAX, 0), None);
    assert_eq!(recurrence.next_after(ms("2199-12-31T08:00:00Z"), 0), None);
}

#[test]
fn describes_common_shapes_in_words() {
    let cases = [
        (
            "cron(0 9 ? * MON-FRI *)",
            "Europe/Paris",
            "at 09:00, Monday to Friday (Europe/Paris)",
        ),
        (
            "cron(30 2 * * ? *)",
            "Europe/Paris",
            "at 02:30 every day (Europe/Paris)",
        ),
        ("rate(15 minutes)", "Europe/Paris", "every 15 minutes"),
        ("rate(1 minute)", "UTC", "every minute"),
        ("rate(1 days)", "UTC", "every day"),
        ("rate(2 hours)", "UTC", "every 2 hours"),
        ("cron(0/15 * * * ? *)", "UTC", "every 15 minutes (UTC)"),
        ("cron(* * * * ? *)", "UTC", "every minute (UTC)"),
        (
            "cron(0/10 * ? * MON-FRI *)",
            "UTC",
            "every 10 minutes, Monday to Friday (UTC)",
        ),
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            "UTC",
            "every 5 minutes between 08:00 and 17:55, Monday to Friday (UTC)",
        ),
        (
            "cron(0 9 ? * 2#1 *)",
            "UTC",
            "at 09:00, on the first Monday of the month (UTC)",
        ),
        (
            "cron(15 10 ? * 6L 2022-2023)",
            "UTC",
            "at 10:15, on the last Friday of the month, in 2022 and 2023 (UTC)",
        ),
        (
            "cron(0 8 1 * ? *)",
            "UTC",
            "at 08:00, on day 1 of the month (UTC)",
        ),
        (
            "cron(0 0 L * ? *)",
            "UTC",
            "at 00:00, on the last day of the month (UTC)",
        ),
        (
            "cron(0 0 15W * ? *)",
            "UTC",
            "at 00:00, on the weekday nearest day 15 of the month (UTC)",
        ),
        (
            "cron(0 9,17 ? * MON,WED,FRI *)",
            "UTC",
            "at 09:00 and 17:00, on Monday, Wednesday and Friday (UTC)",
        ),
        (
            "cron(0 12 ? * SUN *)",
            "UTC",
            "at 12:00, every Sunday (UTC)",
        ),
        ("cron(0 0/4 * * ? *)", "UTC", "every 4 hours (UTC)"),
        ("cron(30 * * * ? *)", "UTC", "every hour at minute 30 (UTC)"),
        (
            "cron(0 8-18 * * ? *)",
            "UTC",
            "every hour from 08:00 to 18:00 (UTC)",
        ),
        (
            "cron(0 6 1 JAN-MAR,DEC ? 2030-2035)",
            "UTC",
            "at 06:00, on day 1 of the month, in January to March and December, in 2030 to 2035 (UTC)",
        ),
        // No simple sentence: the expression itself.
        (
            "cron(7,8,9,10,50 1,5,9 * * ? *)",
            "UTC",
            "cron(7,8,9,10,50 1,5,9 * * ? *)",
        ),
    ];
    for (expression, zone, words) in cases {
        assert_eq!(
            Recurrence::parse(expression, zone)
                .expect("valid")
                .describe(),
            words,
            "{expression}"
        );
    }
}
