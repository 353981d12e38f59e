use super::*;
use aws_sdk_scheduler::config::{BehaviorVersion, Region};
use aws_sdk_scheduler::error::ErrorMetadata;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::types::error::ThrottlingException;

/// A client that never connects: only for building requests' values.
fn timers(dead_letter_arn: Option<&str>) -> EventBridgeTimers {
    let config = aws_sdk_scheduler::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    EventBridgeTimers::new(
        Client::from_conf(config),
        TimerTarget {
            group: "stack".to_owned(),
            target_arn: "arn:aws:lambda:eu-west-1:123456789012:function:fire".to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/scheduler".to_owned(),
            dead_letter_arn: dead_letter_arn.map(str::to_owned),
        },
    )
}

fn service_error(code: &str, message: &str) -> SdkError<CreateScheduleError, ()> {
    let meta = ErrorMetadata::builder().code(code).message(message).build();
    SdkError::service_error(CreateScheduleError::generic(meta), ())
}

#[test]
fn a_one_time_timer_is_at_in_utc_deleted_after_its_fire() {
    let timer = Timer {
        name: "job-1".to_owned(),
        timing: TimerTiming::Once {
            at_ms: 1_772_368_496_000,
        },
        input: r#"{"job":"1"}"#.to_owned(),
        enabled: true,
    };
    let definition = timers(None).definition(&timer).unwrap();
    assert_eq!(definition.expression, "at(2026-03-01T12:34:56)");
    assert_eq!(definition.timezone, "UTC");
    assert_eq!(definition.after, ActionAfterCompletion::Delete);
    assert_eq!(definition.state, ScheduleState::Enabled);
    assert_eq!(definition.window.mode(), &FlexibleTimeWindowMode::Off);
    let target = &definition.target;
    assert_eq!(
        target.arn(),
        "arn:aws:lambda:eu-west-1:123456789012:function:fire"
    );
    assert_eq!(
        target.role_arn(),
        "arn:aws:iam::123456789012:role/scheduler"
    );
    assert_eq!(target.input(), Some(r#"{"job":"1"}"#));
    let retry = target.retry_policy().expect("a retry policy");
    assert_eq!(retry.maximum_event_age_in_seconds(), Some(86_400));
    assert_eq!(retry.maximum_retry_attempts(), Some(185));
    assert!(target.dead_letter_config().is_none());
}

#[test]
fn a_recurring_timer_keeps_its_expression_zone_and_state() {
    let timer = Timer {
        name: "schedule.nightly_1".to_owned(),
        timing: TimerTiming::Recurring {
            expression: "cron(0 3 * * ? *)".to_owned(),
            timezone: "Europe/Paris".to_owned(),
        },
        input: "{}".to_owned(),
        enabled: false,
    };
    let definition = timers(Some("arn:aws:sqs:eu-west-1:123456789012:dlq"))
        .definition(&timer)
        .unwrap();
    assert_eq!(definition.expression, "cron(0 3 * * ? *)");
    assert_eq!(definition.timezone, "Europe/Paris");
    assert_eq!(definition.after, ActionAfterCompletion::None);
    assert_eq!(definition.state, ScheduleState::Disabled);
    assert_eq!(
        definition.target.dead_letter_config().and_then(|d| d.arn()),
        Some("arn:aws:sqs:eu-west-1:123456789012:dlq")
    );
}

#[test]
fn a_one_time_timer_outside_at_years_is_invalid() {
    let timer = Timer {
        name: "far".to_owned(),
        timing: TimerTiming::Once { at_ms: i64::MAX },
        input: "{}".to_owned(),
        enabled: true,
    };
    assert!(matches!(
        timers(None).definition(&timer),
        Err(TimerError::Invalid(_))
    ));
}

#[test]
fn names_are_checked_as_the_service_would() {
    for name in ["a", "job-1", "A.b_c-9", &"x".repeat(MAX_NAME_CHARS)] {
        assert!(check_name(name).is_ok(), "{name}");
    }
    for name in [
        "",
        "a b",
        "a/b",
        "é",
        "a:b",
        &"x".repeat(MAX_NAME_CHARS + 1),
    ] {
        assert!(
            matches!(check_name(name), Err(TimerError::Invalid(_))),
            "{name:?}"
        );
    }
}

#[test]
fn throttling_and_validation_map_to_their_port_errors() {
    assert!(matches!(
        timer_error(service_error("ThrottlingException", "slow down")),
        TimerError::Throttled
    ));
    match timer_error(service_error("ValidationException", "bad expression")) {
        TimerError::Invalid(message) => assert_eq!(message, "bad expression"),
        other => panic!("{other:?}"),
    }
    // A modeled exception carries its code in its metadata, as the
    // service's answer sets it.
    let modeled = ThrottlingException::builder()
        .message("Rate exceeded")
        .meta(ErrorMetadata::builder().code("ThrottlingException").build())
        .build()
        .unwrap();
    let throttled: SdkError<CreateScheduleError, ()> =
        SdkError::service_error(CreateScheduleError::ThrottlingException(modeled), ());
    assert!(matches!(timer_error(throttled), TimerError::Throttled));
}

#[test]
fn every_other_failure_is_unavailable_with_its_whole_chain() {
    match timer_error(service_error("InternalServerException", "oops")) {
        TimerError::Unavailable(text) => assert!(text.contains("oops"), "{text}"),
        other => panic!("{other:?}"),
    }
    let timeout: SdkError<CreateScheduleError, ()> = SdkError::timeout_error("attempt timed out");
    match timer_error(timeout) {
        TimerError::Unavailable(text) => {
            assert!(text.contains("attempt timed out"), "the source: {text}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failure_keeps_its_code_for_the_adapter_to_branch_on() {
    let failure = Failure::from(service_error(CONFLICT, "exists"));
    assert!(failure.is(CONFLICT));
    assert!(matches!(failure.error, TimerError::Unavailable(_)));
    let failure = Failure::from(SdkError::<CreateScheduleError, ()>::timeout_error("t"));
    assert!(!failure.is(NOT_FOUND));
}
