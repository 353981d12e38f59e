//! Daylight saving time, EventBridge Scheduler's way: cron times skipped in the spring gap, fired once
//! (the first time) in the autumn fold; rates exact periods whatever the clock does.

use crate::Recurrence;
use crate::tests_docs::{iso, isos, ms};

const DAY_MS: i64 = 86_400_000;

fn paris(expression: &str) -> Recurrence {
    Recurrence::parse(expression, "Europe/Paris").expect("valid expression")
}

/// Every fire in calendar year 2027 (UTC), for a cron in Paris.
fn fires_in_2027(recurrence: &Recurrence) -> Vec<i64> {
    recurrence.fires_between(
        ms("2026-12-31T23:59:59Z"),
        ms("2027-12-31T23:59:59Z"),
        0,
        10_000,
    )
}

#[test]
fn weekdays_at_nine_in_paris_over_2027() {
    let fires = fires_in_2027(&paris("cron(0 9 ? * MON-FRI *)"));
    // 2027 starts on a Friday and has 365 days: 52 weeks and one more Friday.
    assert_eq!(fires.len(), 261);
    for &fire in &fires {
        let wall = jiff::Timestamp::from_millisecond(fire)
            .expect("in range")
            .in_tz("Europe/Paris")
            .expect("zone");
        assert_eq!(
            (wall.hour(), wall.minute(), wall.second()),
            (9, 0, 0),
            "{}",
            iso(fire)
        );
        let weekday = wall.weekday().to_monday_one_offset();
        assert!((1..=5).contains(&weekday), "{} is not a weekday", iso(fire));
        let utc_hour = jiff::Timestamp::from_millisecond(fire)
            .expect("in range")
            .in_tz("UTC")
            .expect("utc")
            .hour();
        let summer = (ms("2027-03-28T01:00:00Z")..ms("2027-10-31T01:00:00Z")).contains(&fire);
        assert_eq!(utc_hour, if summer { 7 } else { 8 }, "{}", iso(fire));
    }
    assert_eq!(
        isos(&fires[..2]),
        ["2027-01-01T08:00:00Z", "2027-01-04T08:00:00Z"]
    );
    assert_eq!(iso(fires[fires.len() - 1]), "2027-12-31T08:00:00Z");
}

#[test]
fn weekdays_at_nine_in_paris_across_both_changes() {
    let recurrence = paris("cron(0 9 ? * MON-FRI *)");
    // Spring forward on Sunday 2027-03-28: Friday in CET (UTC+1), Monday in CEST (UTC+2).
    assert_eq!(
        isos(&recurrence.next_fires(ms("2027-03-25T12:00:00Z"), 0, 3)),
        [
            "2027-03-26T08:00:00Z",
            "2027-03-29T07:00:00Z",
            "2027-03-30T07:00:00Z"
        ]
    );
    // Fall back on Sunday 2027-10-31: Friday in CEST, Monday in CET.
    assert_eq!(
        isos(&recurrence.next_fires(ms("2027-10-28T12:00:00Z"), 0, 3)),
        [
            "2027-10-29T07:00:00Z",
            "2027-11-01T08:00:00Z",
            "2027-11-02T08:00:00Z"
        ]
    );
}

#[test]
fn half_past_two_in_paris_is_skipped_in_spring_and_fires_once_in_autumn() {
    let recurrence = paris("cron(30 2 * * ? *)");
    // 2027-03-28 02:30 does not exist in Paris (02:00 CET jumps to 03:00 CEST): no fire that day.
    assert_eq!(
        isos(&recurrence.next_fires(ms("2027-03-26T12:00:00Z"), 0, 3)),
        [
            "2027-03-27T01:30:00Z",
            "2027-03-29T00:30:00Z",
            "2027-03-30T00:30:00Z"
        ]
    );
    // 2027-10-31 02:30 happens twice (CEST, then CET): one fire, at the first.
    assert_eq!(
        isos(&recurrence.next_fires(ms("2027-10-29T12:00:00Z"), 0, 3)),
        [
            "2027-10-30T00:30:00Z",
            "2027-10-31T00:30:00Z",
            "2027-11-01T01:30:00Z"
        ]
    );
    let year = fires_in_2027(&recurrence);
    assert_eq!(
        year.len(),
        364,
        "every day of 2027 but the spring-forward Sunday"
    );
    let on = |day: &str| {
        year.iter()
            .filter(|&&fire| iso(fire).starts_with(day))
            .count()
    };
    assert_eq!((on("2027-03-28"), on("2027-10-31")), (0, 1));
}

#[test]
fn asking_from_inside_the_repeated_hour_does_not_fire_that_wall_time_again() {
    let recurrence = paris("cron(30 2 * * ? *)");
    // 01:15Z on 2027-10-31 is the second 02:15 (CET): the 02:30 already fired at 00:30Z.
    assert_eq!(
        iso(recurrence
            .next_after(ms("2027-10-31T01:15:00Z"), 0)
            .expect("fires")),
        "2027-11-01T01:30:00Z"
    );
    assert_eq!(
        iso(recurrence
            .next_after(ms("2027-10-31T00:15:00Z"), 0)
            .expect("fires")),
        "2027-10-31T00:30:00Z"
    );
}

#[test]
fn an_hourly_cron_fires_once_per_wall_clock_time_through_both_changes() {
    let recurrence = paris("cron(30 * * * ? *)");
    // Spring: 01:30 CET, then 03:30 CEST (02:30 does not exist).
    assert_eq!(
        isos(&recurrence.fires_between(
            ms("2027-03-28T00:00:00Z"),
            ms("2027-03-28T02:00:00Z"),
            0,
            10
        )),
        ["2027-03-28T00:30:00Z", "2027-03-28T01:30:00Z"]
    );
    // Autumn: 01:30 CEST, 02:30 CEST (first), then 03:30 CET: the second 02:30 (01:30Z) does not fire.
    assert_eq!(
        isos(&recurrence.fires_between(
            ms("2027-10-30T23:00:00Z"),
            ms("2027-10-31T03:00:00Z"),
            0,
            10
        )),
        [
            "2027-10-30T23:30:00Z",
            "2027-10-31T00:30:00Z",
            "2027-10-31T02:30:00Z"
        ]
    );
}

#[test]
fn zones_without_daylight_saving_and_utc_never_skip() {
    for zone in ["UTC", "Asia/Tokyo", "Etc/UTC"] {
        let recurrence = Recurrence::parse("cron(30 2 * * ? *)", zone).expect("valid");
        let fires = recurrence.fires_between(
            ms("2026-12-31T00:00:00Z"),
            ms("2027-12-31T00:00:00Z"),
            0,
            1000,
        );
        assert_eq!(fires.len(), 365, "{zone}");
        assert!(
            fires.windows(2).all(|pair| pair[1] - pair[0] == DAY_MS),
            "{zone}"
        );
    }
}

#[test]
fn rate_one_day_is_exactly_24_hours_across_both_changes() {
    let recurrence = paris("rate(1 day)");
    let anchor = ms("2027-03-20T09:00:00Z");
    let fires = recurrence.fires_between(anchor - 1, ms("2027-11-10T00:00:00Z"), anchor, 1000);
    assert_eq!(fires[0], anchor);
    assert!(fires.windows(2).all(|pair| pair[1] - pair[0] == DAY_MS));
    assert!(
        fires.contains(&ms("2027-03-28T09:00:00Z")) && fires.contains(&ms("2027-10-31T09:00:00Z"))
    );
    assert_eq!(fires.len(), 235);
}

#[test]
fn rate_one_minute_fires_sixty_times_an_hour() {
    let recurrence = paris("rate(1 minute)");
    let anchor = ms("2027-03-28T00:00:30Z");
    let from = ms("2027-03-28T00:30:00Z");
    let fires = recurrence.fires_between(from, from + 3_600_000, anchor, 1000);
    assert_eq!(fires.len(), 60);
    assert_eq!(iso(fires[0]), "2027-03-28T00:30:30Z");
    assert!(fires.windows(2).all(|pair| pair[1] - pair[0] == 60_000));
    // The limit caps the count; a later window continues from the period grid.
    assert_eq!(
        recurrence
            .fires_between(from, from + 3_600_000, anchor, 7)
            .len(),
        7
    );
}

#[test]
fn rate_counts_from_the_anchor_whatever_the_unit() {
    let anchor = ms("2027-01-01T00:00:00Z");
    for (expression, period) in [
        ("rate(15 minutes)", 900_000),
        ("rate(2 hours)", 7_200_000),
        ("rate(3 days)", 3 * DAY_MS),
    ] {
        let recurrence = paris(expression);
        assert_eq!(
            recurrence.next_after(anchor - 5, anchor),
            Some(anchor),
            "{expression}"
        );
        assert_eq!(
            recurrence.next_after(anchor, anchor),
            Some(anchor + period),
            "{expression}"
        );
        assert_eq!(
            recurrence.next_after(anchor + period - 1, anchor),
            Some(anchor + period),
            "{expression}"
        );
        assert_eq!(
            recurrence.next_after(anchor + 10 * period, anchor),
            Some(anchor + 11 * period),
            "{expression}"
        );
    }
    assert_eq!(
        paris("rate(1000000 days)").next_after(i64::MAX - 1, 0),
        None
    );
}
