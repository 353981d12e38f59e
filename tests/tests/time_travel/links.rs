//! Result links: each expires by its own `X-Amz-Date` and `X-Amz-Expires`,
//! and each GET mints a fresh one on the moved clock.

use super::*;

/// A query parameter of `link`.
fn query<'a>(link: &'a str, name: &str) -> &'a str {
    link.split_once('?')
        .expect("a query")
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {link}"))
}

/// SigV4's `X-Amz-Date` (`20261129T170954Z`) in seconds since the epoch.
fn amz_date_secs(text: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    assert_eq!(
        (text.len(), &text[8..9], &text[15..]),
        (16, "T", "Z"),
        "{text}"
    );
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + number(9..11) * 3_600 + number(11..13) * 60 + number(13..15)
}

/// A presigned link's validity, in seconds since the epoch: from its
/// `X-Amz-Date` to that plus its `X-Amz-Expires`.
fn validity(link: &str) -> std::ops::Range<i64> {
    let from = amz_date_secs(query(link, "X-Amz-Date"));
    let expires: i64 = query(link, "X-Amz-Expires").parse().unwrap();
    from..from + expires
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_link_expires_and_each_get_mints_a_fresh_valid_one() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let running = Served::start(
        stack(
            &env,
            &clock,
            JobTypes::new().with(BigResult(BIG_RESULT_CHARS)),
        )
        .build(),
    )
    .await;
    let id = submit(&running.api, &json!({"type": "big"})).await;
    env.until(id, 30, |j| j.state == JobState::Succeeded).await;
    let expected = json!("r".repeat(BIG_RESULT_CHARS));
    assert_eq!(
        amz_date_secs("20261129T170954Z"),
        1_795_972_194,
        "the date parser"
    );

    let mut minted: Vec<(&str, String)> = Vec::new();
    for (at, offset) in OFFSETS {
        move_to(&clock, offset);
        let before = clock.now_ms() / 1000;
        let (status, view) = get(&running.api, id).await;
        let after = clock.now_ms() / 1000;
        assert_eq!(status, 200, "{at}: {view}");
        assert_eq!(view["result"], Value::Null);
        let link = view["resultUrl"].as_str().expect("a link").to_owned();
        let valid = validity(&link);
        assert!(
            (before..=after).contains(&valid.start),
            "{at}: minted at the clock's time ({before}..={after}), not {valid:?}: {link}"
        );
        assert_eq!(
            u64::try_from(valid.end - valid.start).unwrap(),
            LINK_TTL.as_secs()
        );
        assert!(valid.contains(&clock.now_secs()), "{at}: valid now");
        let (status, body) = jobline_tests::http::fetch(&link).await;
        assert_eq!(status, 200, "{at}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
        // Every link minted at an earlier offset has expired by now (moto
        // does not check: the bound is computed).
        let now = clock.now_secs();
        for (then, old) in &minted {
            assert!(
                validity(old).end <= now,
                "{at}: the link minted at {then} is still valid ({:?}, now {now})",
                validity(old)
            );
            assert_ne!(old, &link);
        }
        minted.push((at, link));
    }
    running.stop().await;
    env.cleanup().await;
}
