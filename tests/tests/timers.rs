//! The timers' adapter against EventBridge Scheduler on the emulator: a
//! one-time and a recurring timer are put and read back equal, a second put
//! replaces the first, the group's names page through, deletes are
//! idempotent and a missing timer reads as none. The schedules as the
//! service holds them carry what the adapter promises (`at()` in UTC, no
//! flexible window, delete after completion, the retry policy, the target).
//!
//! The emulator stores schedules but fires none, checks neither names nor
//! expressions, and keeps a schedule's `ActionAfterCompletion` through an
//! `UpdateSchedule` (which EventBridge Scheduler replaces): so nothing here
//! relies on the service refusing a timer, nor on a fire.

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode, ScheduleState};
use jobline_core::timers::{Timer, TimerError, TimerTiming, Timers};
use jobline_local::provision;
use jobline_scheduler::{EventBridgeTimers, NAMES_PAGE, TimerTarget};
use jobline_tests::TestEnv;

const FIRE_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:jobline-fire";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/jobline-scheduler";
const DLQ_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:jobline-fire-dlq";

/// The test's timers, in a schedule group of its own, created as
/// `jobline-local provision` would.
async fn timers(env: &TestEnv) -> EventBridgeTimers {
    let group = provision::schedule_group_name(&env.table);
    provision::create_schedule_group(&env.clients.scheduler, &group)
        .await
        .expect("create the schedule group on moto");
    env.clients.timers(TimerTarget {
        group,
        target_arn: FIRE_ARN.to_owned(),
        role_arn: ROLE_ARN.to_owned(),
        dead_letter_arn: Some(DLQ_ARN.to_owned()),
    })
}

fn once(name: &str, at_ms: i64) -> Timer {
    Timer {
        name: name.to_owned(),
        timing: TimerTiming::Once { at_ms },
        input: format!(r#"{{"timer":"{name}","at":"<aws.scheduler.scheduled-time>"}}"#),
        enabled: true,
    }
}

fn recurring(name: &str, expression: &str, timezone: &str) -> Timer {
    Timer {
        name: name.to_owned(),
        timing: TimerTiming::Recurring {
            expression: expression.to_owned(),
            timezone: timezone.to_owned(),
        },
        input: format!(r#"{{"schedule":"{name}"}}"#),
        enabled: true,
    }
}

/// 2030-01-02T03:04:05Z.
const AT_MS: i64 = 1_893_553_445_000;

#[tokio::test]
async fn timers_are_put_and_read_back_equal_as_complete_schedules() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let timers = timers(&env).await;

    let one = once("job-1", AT_MS);
    let nightly = recurring("schedule.nightly_1", "cron(0 3 * * ? *)", "Europe/Paris");
    timers.put(&one).await.unwrap();
    timers.put(&nightly).await.unwrap();
    assert_eq!(timers.get("job-1").await.unwrap(), Some(one));
    assert_eq!(
        timers.get("schedule.nightly_1").await.unwrap(),
        Some(nightly)
    );

    let group = &timers.target().group;
    let schedule = env
        .clients
        .scheduler
        .get_schedule()
        .group_name(group)
        .name("job-1")
        .send()
        .await
        .unwrap();
    assert_eq!(schedule.group_name(), Some(group.as_str()));
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2030-01-02T03:04:05)")
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), FIRE_ARN);
    assert_eq!(target.role_arn(), ROLE_ARN);
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(DLQ_ARN)
    );
    let retry = target.retry_policy().expect("a retry policy");
    assert_eq!(retry.maximum_event_age_in_seconds(), Some(86_400));
    assert_eq!(retry.maximum_retry_attempts(), Some(185));

    let schedule = env
        .clients
        .scheduler
        .get_schedule()
        .group_name(group)
        .name("schedule.nightly_1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::None)
    );
}

#[tokio::test]
async fn a_second_put_replaces_the_whole_timer() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let timers = timers(&env).await;

    timers
        .put(&recurring("every", "rate(5 minutes)", "UTC"))
        .await
        .unwrap();
    let paused = Timer {
        input: r#"{"schedule":"every","v":2}"#.to_owned(),
        enabled: false,
        ..recurring("every", "cron(30 8 ? * MON-FRI *)", "America/New_York")
    };
    timers.put(&paused).await.unwrap();
    assert_eq!(timers.get("every").await.unwrap(), Some(paused.clone()));

    // Enabled again, and a one-time timer now: still one timer of the name.
    let again = once("every", AT_MS + 60_000);
    timers.put(&again).await.unwrap();
    assert_eq!(timers.get("every").await.unwrap(), Some(again));
    let (names, _) = timers.names(None).await.unwrap();
    assert_eq!(names, ["every"]);
}

#[tokio::test]
async fn names_page_through_the_groups_timers_only() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let timers = timers(&env).await;
    // Another group's timer is not listed.
    let other = env.clients.timers(TimerTarget {
        group: provision::schedule_group_name(&format!("{}-other", env.table)),
        ..timers.target().clone()
    });
    provision::create_schedule_group(&env.clients.scheduler, &other.target().group)
        .await
        .unwrap();
    other.put(&once("elsewhere", AT_MS)).await.unwrap();

    let count = usize::try_from(NAMES_PAGE).unwrap() + 5;
    let mut expected: Vec<String> = (0..count).map(|i| format!("job-{i:03}")).collect();
    for name in &expected {
        timers.put(&once(name, AT_MS)).await.unwrap();
    }

    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let (names, next) = timers.names(token).await.unwrap();
        assert!(names.len() <= usize::try_from(NAMES_PAGE).unwrap());
        listed.extend(names);
        pages += 1;
        assert!(pages <= 3, "the pages never end");
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 2, "{count} timers on pages of {NAMES_PAGE}");
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);

    // Provisioning again keeps the group and its timers.
    let group = &timers.target().group;
    provision::create_schedule_group(&env.clients.scheduler, group)
        .await
        .unwrap();
    assert!(timers.get("job-000").await.unwrap().is_some());
}

#[tokio::test]
async fn deletes_are_idempotent_and_a_missing_timer_is_none() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let timers = timers(&env).await;

    assert_eq!(timers.get("never-put").await.unwrap(), None);
    timers.delete("never-put").await.unwrap();

    timers.put(&once("job-1", AT_MS)).await.unwrap();
    timers.delete("job-1").await.unwrap();
    timers.delete("job-1").await.unwrap();
    assert_eq!(timers.get("job-1").await.unwrap(), None);
    assert_eq!(timers.names(None).await.unwrap(), (Vec::new(), None));
}

#[tokio::test]
async fn a_name_the_service_would_refuse_is_invalid_before_any_call() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let timers = timers(&env).await;
    for name in ["has space", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(
                timers.put(&once(name, AT_MS)).await,
                Err(TimerError::Invalid(_))
            ),
            "{name:?}"
        );
    }
    assert_eq!(timers.names(None).await.unwrap(), (Vec::new(), None));
}
