//! Hostile input: random bytes, token soup that is nearly valid, and random instants never panic, never
//! hang, and every answer keeps its promises (fires strictly later, in order, within the bounds asked).

use crate::{Recurrence, ScheduleError};

const TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "5",
    "7",
    "9",
    "12",
    "15",
    "23",
    "29",
    "30",
    "31",
    "59",
    "60",
    "99",
    "1970",
    "2027",
    "2199",
    "2200",
    "*",
    "?",
    "L",
    "W",
    "LW",
    "#",
    "/",
    "-",
    ",",
    " ",
    " ",
    " ",
    "JAN",
    "FEB",
    "DEC",
    "MON",
    "FRI",
    "SUN",
    "6L",
    "3#2",
    "15W",
    "*/5",
    "0/15",
    "1-5",
    "MON-FRI",
    "",
    "\t",
    "é",
    "\u{0}",
    "(",
    ")",
    "9999999999",
];
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kathmandu",
    "nope",
    "",
];

fn token_soup(rng: &mut fastrand::Rng) -> String {
    let fields: Vec<String> = (0..rng.usize(4..=8))
        .map(|_| {
            (0..rng.usize(1..=3))
                .map(|_| TOKENS[rng.usize(..TOKENS.len())])
                .collect()
        })
        .collect();
    let body = fields.join(" ");
    match rng.u8(..6) {
        0 => format!(
            "rate({} {})",
            TOKENS[rng.usize(..TOKENS.len())],
            ["minute", "minutes", "hours", "days", "day", "weeks"][rng.usize(..6)]
        ),
        1 => body,
        _ => format!("cron({body})"),
    }
}

fn random_bytes(rng: &mut fastrand::Rng) -> String {
    let bytes: Vec<u8> = (0..rng.usize(..300)).map(|_| rng.u8(..)).collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match rng.u8(..3) {
        0 => format!("cron({text})"),
        1 => format!("rate({text})"),
        _ => text,
    }
}

/// Whatever parsed keeps its promises; whatever did not says which field.
fn check(expression: &str, zone: &str, rng: &mut fastrand::Rng) -> bool {
    let recurrence = match Recurrence::parse(expression, zone) {
        Ok(recurrence) => recurrence,
        Err(error) => {
            let field = if matches!(error, ScheduleError::UnknownTimeZone(_)) {
                "timezone"
            } else {
                "expression"
            };
            assert_eq!(error.field(), field, "{expression:?} {zone:?}: {error}");
            assert!(!error.to_string().is_empty());
            return false;
        }
    };
    let instants = [
        i64::MIN,
        i64::MAX,
        -1,
        0,
        rng.i64(..),
        rng.i64(0..7_258_118_400_000),
        rng.i64(-100_000_000_000..9_000_000_000_000),
    ];
    let after = instants[rng.usize(..instants.len())];
    let anchor = instants[rng.usize(..instants.len())];
    let fires = recurrence.next_fires(after, anchor, 5);
    assert!(fires.len() <= 5);
    let mut previous = after;
    for &fire in &fires {
        assert!(
            fire > previous,
            "{expression:?} {zone:?}: {fire} after {previous}"
        );
        previous = fire;
    }
    let to = after.saturating_add(rng.i64(0..400_000_000));
    let between = recurrence.fires_between(after, to, anchor, 50);
    assert!(between.len() <= 50 && between.iter().all(|&fire| fire > after && fire <= to));
    assert!(between.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(!recurrence.describe().is_empty());
    true
}

#[test]
fn random_and_garbage_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(0x5c4e_d01e);
    let mut parsed = 0;
    for round in 0..3000 {
        let expression = if round % 3 == 0 {
            random_bytes(&mut rng)
        } else {
            token_soup(&mut rng)
        };
        let zone = if round % 7 == 0 {
            random_bytes(&mut rng)
        } else {
            ZONES[rng.usize(..ZONES.len())].to_owned()
        };
        parsed += usize::from(check(&expression, &zone, &mut rng));
    }
    // The soup is close enough to the syntax that some of it parses and gets exercised.
    assert!(parsed > 50, "only {parsed} parsed");
}

#[test]
fn valid_random_crons_fire_where_they_say() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..300 {
        let minute = rng.u8(..60);
        let hour = rng.u8(..24);
        let zone = ZONES[rng.usize(..6)];
        let expression = format!(
            "cron({minute} {hour} ? * {} *)",
            ["*", "MON-FRI", "2#3", "6L", "L"][rng.usize(..5)]
        );
        let recurrence = Recurrence::parse(&expression, zone).expect("valid");
        let after = rng.i64(0..4_000_000_000_000);
        for fire in recurrence.next_fires(after, 0, 3) {
            let wall = jiff::Timestamp::from_millisecond(fire)
                .expect("in range")
                .in_tz(zone)
                .expect("zone");
            // A fire is always at the expression's wall-clock time (gaps are skipped, never shifted).
            assert_eq!(
                (wall.hour(), wall.minute(), wall.second()),
                (hour as i8, minute as i8, 0),
                "{expression} {zone}"
            );
        }
    }
}

#[test]
fn every_error_names_its_field() {
    assert_eq!(ScheduleError::Empty.field(), "expression");
    assert_eq!(
        ScheduleError::TooLong { len: 300, max: 256 }.field(),
        "expression"
    );
    assert_eq!(ScheduleError::OneTime.field(), "expression");
    assert_eq!(ScheduleError::Unrecognised.field(), "expression");
    assert_eq!(ScheduleError::Rate(String::new()).field(), "expression");
    assert_eq!(ScheduleError::Cron(String::new()).field(), "expression");
    assert_eq!(ScheduleError::NeverFires.field(), "expression");
    assert_eq!(
        ScheduleError::UnknownTimeZone("Mars/Base".into()).field(),
        "timezone"
    );
}
