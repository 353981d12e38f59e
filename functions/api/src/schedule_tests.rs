//! The API's unit tests of time: delayed jobs (`runAt`, `delaySeconds`,
//! run now, cancel) and schedules (create, read, change, pause, trigger,
//! delete, and their fires), against the in-memory fakes on a clock that
//! stands still until moved.

use super::*;
use crate::backlog::fake::FakeDepth;
use crate::fire::{FireInput, Fired};
use crate::tests::sent;
use jobline_core::schedule::{ScheduleId, fire_job_id, timer_name};
use jobline_core::timers::{SCHEDULED_TIME, TimerTiming};
use jobline_core::trace_context::TraceContext;
use jobline_core::{JobState, Metric};
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::schedules::MemorySchedules;
use jobline_testkit::memory::store::MemoryStore;
use jobline_testkit::memory::timers::{MemoryTimers, TimerFault};
use serde_json::{Value, json};
use std::time::Duration;

/// 2027-01-04T08:01:00Z, a Monday, a minute after 09:00 in Paris.
const MONDAY_8Z: i64 = 1_799_049_660_000;
const DAY: Duration = Duration::from_secs(86_400);

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    timers: Arc<MemoryTimers>,
    schedules: Arc<MemorySchedules>,
    clock: Clock,
    api: Api,
}

fn fixture(max_schedules: usize) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new());
    let timers = Arc::new(MemoryTimers::new());
    let schedules = Arc::new(MemorySchedules::new());
    let clock = Clock::at(MONDAY_8Z);
    let config = Config::from_lookup(|name| match name {
        "JOBS_TABLE" => Some("t".into()),
        "JOBS_QUEUE_URL" => Some("q".into()),
        "ALLOW_ANONYMOUS" => Some("true".into()),
        _ => None,
    })
    .expect("config");
    let api = Api::new(
        store.clone(),
        queue.clone(),
        jobline_jobs::builtin(),
        &config,
    )
    .with_clock(clock.clone())
    .with_timers(timers.clone())
    .with_schedules(schedules.clone(), max_schedules);
    Fixture {
        store,
        queue,
        timers,
        schedules,
        clock,
        api,
    }
}

fn request(method: &str, uri: &str, body: &str) -> Request {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

async fn call(f: &Fixture, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let reply = f.api.handle(request(method, uri, body)).await;
    let json = serde_json::from_slice(reply.response.body().as_ref()).unwrap_or(Value::Null);
    (reply.response.status(), json)
}

fn job_id(body: &Value) -> JobId {
    body["jobId"].as_str().expect("jobId").parse().expect("id")
}

/// Submits a `primes` job delayed `secs`: its id.
async fn delayed(f: &Fixture, secs: u32) -> JobId {
    let body = format!(r#"{{"type":"primes","payload":{{"upTo":10}},"delaySeconds":{secs}}}"#);
    let (status, body) = call(f, "POST", "/jobs", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    job_id(&body)
}

/// Creates the schedule `body`: its id.
async fn scheduled(f: &Fixture, body: &str) -> ScheduleId {
    let (status, body) = call(f, "POST", "/schedules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["scheduleId"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_short_delay_is_the_messages_and_a_long_one_a_timer() {
    let f = fixture(10);
    let (status, body) = call(
        &f,
        "POST",
        "/jobs",
        r#"{"type":"primes","payload":{"upTo":10},"delaySeconds":600}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "scheduled");
    let short = job_id(&body);
    assert_eq!(f.queue.delays(), [(sent(&f.store, short), 600)]);
    assert!(f.timers.timers().is_empty(), "no timer under 15 minutes");

    let (_, body) = call(
        &f,
        "POST",
        "/jobs",
        r#"{"type":"primes","payload":{"upTo":10},"runAt":"2027-02-13T09:00:00+01:00"}"#,
    )
    .await;
    let long = job_id(&body);
    assert_eq!(body["runAt"], "2027-02-13T08:00:00.000Z");
    let timer = f
        .timers
        .timer(&job_timer_name(long))
        .expect("a one-time timer");
    let at = 1_802_505_600_000;
    assert_eq!(timer.timing, TimerTiming::Once { at_ms: at });
    assert_eq!(
        f.queue.sent().len(),
        1,
        "only the short one is in the queue"
    );
    let job = f.store.job(long).unwrap();
    assert_eq!(job.state, JobState::Scheduled);
    assert!(
        job.expires_at >= at / 1000 + 30 * 86_400,
        "kept its retention from its time, not from now"
    );

    // 40 days on, the timer fires: the message goes, undelayed.
    f.clock.advance(40 * DAY);
    let fired = f.api.fire(&timer.input, &mut Metrics::new()).await.unwrap();
    assert_eq!(
        fired,
        Fired::Sent {
            job_id: long,
            delay_secs: 0
        }
    );
    assert_eq!(f.queue.sent().last(), Some(&sent(&f.store, long)));
}

#[tokio::test]
async fn an_early_fire_is_delayed_again_and_never_runs_the_job_early() {
    let f = fixture(10);
    let id = delayed(&f, 7200).await;
    let input = f.timers.timer(&job_timer_name(id)).unwrap().input;
    f.clock.advance(Duration::from_secs(7_200 - 45));
    let fired = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    assert_eq!(
        fired,
        Fired::Sent {
            job_id: id,
            delay_secs: 45
        }
    );
    assert_eq!(f.queue.delays().last(), Some(&(sent(&f.store, id), 45)));
    // Hours early (never, from the service): the longest delay, which the
    // worker's claim puts off again until the job is due.
    f.timers.delete(&job_timer_name(id)).await.unwrap();
    let later = delayed(&f, 86400).await;
    let input = f.timers.timer(&job_timer_name(later)).unwrap().input;
    f.timers.delete(&job_timer_name(later)).await.unwrap();
    let fired = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    assert_eq!(
        fired,
        Fired::Sent {
            job_id: later,
            delay_secs: 900
        }
    );
    assert_eq!(f.store.job(later).unwrap().state, JobState::Scheduled);
}

#[tokio::test]
async fn a_scheduled_job_can_be_cancelled_or_run_now() {
    let f = fixture(10);
    let cancelled = delayed(&f, 86400).await;
    let input = f.timers.timer(&job_timer_name(cancelled)).unwrap().input;
    let (status, body) = call(&f, "POST", &format!("/jobs/{cancelled}/cancel"), "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert!(
        f.timers.timer(&job_timer_name(cancelled)).is_none(),
        "its timer is gone"
    );
    // A fire that was on its way finds it cancelled: nothing is sent.
    f.clock.advance(DAY);
    let fired = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    assert_eq!(fired, Fired::NotWaiting { job_id: cancelled });
    assert!(f.queue.sent().is_empty());

    let now = delayed(&f, 86400).await;
    let (status, body) = call(&f, "POST", &format!("/jobs/{now}/run"), "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("queued"))
    );
    assert_eq!(f.queue.sent(), [sent(&f.store, now)]);
    assert!(f.timers.timer(&job_timer_name(now)).is_none());
    let (status, body) = call(&f, "POST", &format!("/jobs/{cancelled}/run"), "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("job_not_scheduled"))
    );
}

#[tokio::test]
async fn a_throttled_timer_is_a_503_with_retry_after_and_leaves_nothing_to_run() {
    let f = fixture(10);
    f.timers.set_fault(TimerFault::Throttled);
    let reply = f
        .api
        .handle(
            http::Request::builder()
                .method("POST")
                .uri("/jobs")
                .header("idempotency-key", "k")
                .body(Body::from(
                    r#"{"type":"primes","payload":{"upTo":10},"delaySeconds":3600}"#,
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.response.headers()[http::header::RETRY_AFTER], "2");
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    assert!(
        f.store.job(id).unwrap().enqueue_failed,
        "its key may be sent again"
    );
    let (status, _) = call(
        &f,
        "POST",
        "/schedules",
        r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        f.schedules.snapshot().is_empty(),
        "no record without its timer"
    );
}

const WEEKDAYS_9_PARIS: &str = r#"{"expression":"cron(0 9 ? * MON-FRI *)","timezone":"Europe/Paris","type":"primes","payload":{"upTo":10},"overlap":"skip"}"#;

#[tokio::test]
async fn a_schedule_is_created_shown_with_its_next_fires_and_fired_once_per_fire() {
    let f = fixture(10);
    let (status, body) = call(&f, "POST", "/schedules", WEEKDAYS_9_PARIS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: ScheduleId = body["scheduleId"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        body["nextFires"],
        json!([
            "2027-01-05T08:00:00.000Z",
            "2027-01-06T08:00:00.000Z",
            "2027-01-07T08:00:00.000Z",
            "2027-01-08T08:00:00.000Z",
            "2027-01-11T08:00:00.000Z"
        ])
    );
    assert_eq!(
        body["description"],
        "at 09:00, Monday to Friday (Europe/Paris)"
    );
    let timer = f
        .timers
        .timer(&timer_name(id))
        .expect("its recurring timer");
    assert!(timer.input.contains(SCHEDULED_TIME));

    f.clock.advance(DAY);
    let input = timer.input.replace(SCHEDULED_TIME, "2027-01-05T08:00:00Z");
    let fired = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    let job = fire_job_id(id, 1_799_136_000_000);
    assert_eq!(fired, Fired::Created { job_id: job });
    // The same fire again (EventBridge Scheduler delivers at least once).
    let again = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    assert_eq!(again, Fired::Created { job_id: job });
    // One job; its message sent again, as for any repeat of a job not yet
    // started (the first fire may have died between its write and its send).
    assert!(f.queue.sent().iter().all(|sent| sent.job_id == job));
    let (_, listed) = call(&f, "GET", "/jobs", "").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "one job");
    assert_eq!(f.store.job(job).unwrap().schedule_id, Some(id.to_string()));

    // `skip`: the next fire finds that job unfinished.
    let next = timer.input.replace(SCHEDULED_TIME, "2027-01-06T08:00:00Z");
    assert_eq!(
        f.api.fire(&next, &mut Metrics::new()).await.unwrap(),
        Fired::Skipped
    );
    let (_, shown) = call(&f, "GET", &format!("/schedules/{id}"), "").await;
    assert_eq!(shown["lastFire"]["jobId"], job.to_string());
    assert_eq!(shown["fires"]["skipped"], 1);
    assert_eq!(shown["fires"]["fired"], 1);
    let (_, listed) = call(&f, "GET", &format!("/jobs?scheduleId={id}"), "").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn pause_resume_trigger_patch_and_delete() {
    let f = fixture(10);
    let (_, body) = call(
        &f,
        "POST",
        "/schedules",
        r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    let id = body["scheduleId"].as_str().unwrap().to_owned();
    let name = timer_name(id.parse().unwrap());

    let (status, body) = call(&f, "POST", &format!("/schedules/{id}/pause"), "").await;
    assert_eq!(
        (status, body["paused"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(body["nextFires"], json!([]));
    assert!(!f.timers.timer(&name).unwrap().enabled);
    // A fire from before the pause (late) creates nothing.
    let input = f
        .timers
        .timer(&name)
        .unwrap()
        .input
        .replace(SCHEDULED_TIME, "2027-01-04T09:00:00Z");
    assert_eq!(
        f.api.fire(&input, &mut Metrics::new()).await.unwrap(),
        Fired::Inactive
    );

    f.clock.advance(DAY);
    let (_, body) = call(&f, "POST", &format!("/schedules/{id}/resume"), "").await;
    assert!(f.timers.timer(&name).unwrap().enabled);
    assert_eq!(
        body["nextFires"][0], "2027-01-05T08:01:00.000Z",
        "from the resume, no catch-up"
    );
    assert_eq!(
        f.api.fire(&input, &mut Metrics::new()).await.unwrap(),
        Fired::Inactive,
        "a fire from while it was paused"
    );

    let (status, body) = call(&f, "POST", &format!("/schedules/{id}/trigger"), "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(f.queue.sent().len(), 1);

    let (status, body) = call(
        &f,
        "PATCH",
        &format!("/schedules/{id}"),
        r#"{"expression":"rate(2 hours)","overlap":"skip"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["overlap"], "skip");
    assert_eq!(
        f.timers.timer(&name).unwrap().timing,
        TimerTiming::Recurring {
            expression: "rate(2 hours)".into(),
            timezone: "UTC".into()
        }
    );
    f.clock.advance(Duration::from_secs(60));
    let (status, body) = call(&f, "POST", &format!("/schedules/{id}/trigger"), "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("schedule_overlap")),
        "{body}"
    );

    let (status, _) = call(&f, "DELETE", &format!("/schedules/{id}"), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(f.timers.timer(&name).is_none());
    let (status, _) = call(&f, "GET", &format!("/schedules/{id}"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A fire of the timer, had it survived, deletes it and creates nothing.
    f.timers
        .put(&jobline_core::timers::Timer {
            name: name.clone(),
            timing: TimerTiming::Once { at_ms: 0 },
            input: input.clone(),
            enabled: true,
        })
        .await
        .unwrap();
    assert_eq!(
        f.api.fire(&input, &mut Metrics::new()).await.unwrap(),
        Fired::Orphan
    );
    assert!(f.timers.timer(&name).is_none());
}

#[tokio::test]
async fn invalid_schedules_are_422s_naming_the_field_and_callers_are_bounded() {
    let f = fixture(2);
    for (body, field) in [
        (
            r#"{"expression":"cron(0 9 * * * *)","type":"primes","payload":{"upTo":10}}"#,
            "expression",
        ),
        (
            r#"{"expression":"rate(30 seconds)","type":"primes","payload":{"upTo":10}}"#,
            "expression",
        ),
        (
            r#"{"expression":"at(2027-01-01T00:00:00)","type":"primes","payload":{"upTo":10}}"#,
            "expression",
        ),
        (
            r#"{"expression":"rate(1 day)","timezone":"Mars/Olympus","type":"primes","payload":{"upTo":10}}"#,
            "timezone",
        ),
        (
            r#"{"expression":"rate(1 day)","type":"primes","overlap":"never"}"#,
            "overlap",
        ),
        (r#"{"type":"primes","payload":{"upTo":10}}"#, "expression"),
        (r#"{"expression":"rate(1 day)"}"#, "type"),
    ] {
        let (status, reply) = call(&f, "POST", "/schedules", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{body}: {reply}");
    }
    let big =
        json!({"expression": "rate(1 day)", "type": "primes", "payload": {"x": "y".repeat(9_000)}});
    let (status, reply) = call(&f, "POST", "/schedules", &big.to_string()).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("payload"))
    );
    for _ in 0..2 {
        let (status, _) = call(
            &f,
            "POST",
            "/schedules",
            r#"{"expression":"rate(1 day)","type":"primes","payload":{"upTo":10}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, reply) = call(
        &f,
        "POST",
        "/schedules",
        r#"{"expression":"rate(1 day)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_schedules"))
    );
    let (_, listed) = call(&f, "GET", "/schedules?limit=1", "").await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);
    let cursor = listed["nextCursor"].as_str().expect("a second page");
    let (_, rest) = call(
        &f,
        "GET",
        &format!("/schedules?limit=1&cursor={cursor}"),
        "",
    )
    .await;
    assert_eq!(rest["schedules"].as_array().unwrap().len(), 1);
    assert_ne!(
        rest["schedules"][0]["scheduleId"],
        listed["schedules"][0]["scheduleId"]
    );
}

#[tokio::test]
async fn a_fire_the_deployment_refuses_is_recorded_on_its_schedule() {
    let f = fixture(10);
    let id = scheduled(
        &f,
        r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    // The job type is gone from this deployment since the schedule was made.
    let api = Api::new(
        f.store.clone(),
        f.queue.clone(),
        JobTypes::new(),
        &Config::for_resources("t", "q", "d").unwrap(),
    )
    .with_clock(f.clock.clone())
    .with_timers(f.timers.clone())
    .with_schedules(f.schedules.clone(), 10);
    let input = FireInput::Schedule {
        owner: ANONYMOUS_OWNER.into(),
        schedule_id: id.to_string(),
        scheduled_time: "2027-01-04T09:00:00Z".into(),
    }
    .to_json();
    let mut metrics = Metrics::new();
    let fired = api.fire(&input, &mut metrics).await.unwrap();
    assert!(
        matches!(fired, Fired::Refused { ref reason } if reason.contains("unknown job type")),
        "{fired:?}"
    );
    assert_eq!(metrics.total(Metric::ScheduleFireFailures), 1.0);
    let (_, shown) = call(&f, "GET", &format!("/schedules/{id}"), "").await;
    assert_eq!(shown["fires"]["refused"], 1);
    assert!(
        shown["fires"]["lastRefusal"]
            .as_str()
            .unwrap()
            .contains("unknown job type")
    );
    assert!(f.queue.sent().is_empty());
}

#[tokio::test]
async fn a_fire_refused_by_the_backlog_is_recorded_and_a_delayed_job_is_never_refused() {
    let f = fixture(10);
    let delayed = delayed(&f, 86400).await;
    let id = scheduled(
        &f,
        r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    let config = Config::from_lookup(|name| match name {
        "JOBS_TABLE" => Some("t".into()),
        "JOBS_QUEUE_URL" => Some("q".into()),
        "ALLOW_ANONYMOUS" => Some("true".into()),
        "MAX_BACKLOG" => Some("10".into()),
        _ => None,
    })
    .unwrap();
    let full = Api::new(
        f.store.clone(),
        f.queue.clone(),
        jobline_jobs::builtin(),
        &config,
    )
    .with_clock(f.clock.clone())
    .with_queue_depth(FakeDepth::new(u64::MAX))
    .with_timers(f.timers.clone())
    .with_schedules(f.schedules.clone(), 10);
    f.clock.advance(DAY);
    let mut metrics = Metrics::new();
    let input = f.timers.timer(&timer_name(id)).unwrap().input;
    let fired = full
        .fire(
            &input.replace(SCHEDULED_TIME, "2027-01-05T09:00:00Z"),
            &mut metrics,
        )
        .await
        .unwrap();
    assert!(
        matches!(fired, Fired::Refused { ref reason } if reason.contains("too many jobs")),
        "{fired:?}"
    );
    assert_eq!(metrics.total(Metric::ScheduleFireFailures), 1.0);
    assert_eq!(f.schedules.snapshot().len(), 1);
    let (_, shown) = call(&f, "GET", &format!("/schedules/{id}"), "").await;
    assert_eq!(shown["fires"]["refused"], 1, "recorded, not dropped");
    assert_eq!(shown["fires"]["lastMissedAt"], "2027-01-05T09:00:00.000Z");
    // The delayed job was accepted with its 202: its time comes, and the
    // full backlog does not refuse it.
    let timer = f.timers.timer(&job_timer_name(delayed)).unwrap();
    let sent = full.fire(&timer.input, &mut Metrics::new()).await.unwrap();
    assert_eq!(
        sent,
        Fired::Sent {
            job_id: delayed,
            delay_secs: 0
        }
    );
}

#[tokio::test]
async fn a_create_whose_record_write_fails_leaves_no_timer() {
    let f = fixture(10);
    f.schedules.set_failing(true);
    let (status, _) = call(
        &f,
        "POST",
        "/schedules",
        r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        f.timers.timers().is_empty(),
        "the timer written first is deleted"
    );
}

#[tokio::test]
async fn a_run_now_whose_send_failed_is_sent_by_its_repeat_or_its_timer() {
    let f = fixture(10);
    let id = delayed(&f, 86400).await;
    let input = f.timers.timer(&job_timer_name(id)).unwrap().input;
    f.queue.set_failing_sends(true);
    let (status, _) = call(&f, "POST", &format!("/jobs/{id}/run"), "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(f.store.job(id).unwrap().state, JobState::Queued);
    assert!(f.timers.timer(&job_timer_name(id)).is_some(), "kept");
    f.queue.set_failing_sends(false);
    // The timer's fire sends it, should the client never repeat.
    let fired = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    assert_eq!(
        fired,
        Fired::Sent {
            job_id: id,
            delay_secs: 0
        }
    );
    // The client's repeat sends it too.
    let (status, body) = call(&f, "POST", &format!("/jobs/{id}/run"), "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("queued"))
    );
    assert_eq!(f.queue.sent(), [sent(&f.store, id), sent(&f.store, id)]);
}

#[tokio::test]
async fn a_delayed_job_shows_scheduled_until_its_time_then_queued() {
    let f = fixture(10);
    let id = delayed(&f, 3600).await;
    let status = |body: &Value| body["status"].as_str().map(str::to_owned);
    let (_, shown) = call(&f, "GET", &format!("/jobs/{id}"), "").await;
    assert_eq!(status(&shown).as_deref(), Some("scheduled"));
    let (_, listed) = call(&f, "GET", "/jobs?status=scheduled", "").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);

    f.clock.advance(Duration::from_secs(3_600));
    let (_, shown) = call(&f, "GET", &format!("/jobs/{id}"), "").await;
    assert_eq!(
        status(&shown).as_deref(),
        Some("queued"),
        "due: waiting for a worker"
    );
    let (_, listed) = call(&f, "GET", "/jobs?status=queued", "").await;
    assert_eq!(listed["jobs"][0]["jobId"], id.to_string());
    let (_, listed) = call(&f, "GET", "/jobs?status=scheduled", "").await;
    assert!(listed["jobs"].as_array().unwrap().is_empty());
    assert_eq!(
        f.store.job(id).unwrap().state,
        JobState::Scheduled,
        "not written"
    );
}

/// A trigger's job joins the caller's trace (its `traceparent`), as a
/// submission does; a timer's fire, which carries no trace context, starts
/// one of the job's own.
#[tokio::test]
async fn a_triggered_job_is_in_the_callers_trace_and_a_fired_one_in_its_own() {
    let f = fixture(10);
    let id = scheduled(
        &f,
        r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#,
    )
    .await;
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut triggered = request("POST", &format!("/schedules/{id}/trigger"), "");
    triggered
        .headers_mut()
        .insert("traceparent", http::HeaderValue::from_static(header));
    let reply = f.api.handle(triggered).await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    let body: Value = serde_json::from_slice(reply.response.body().as_ref()).unwrap();
    let context = f
        .store
        .job(job_id(&body))
        .unwrap()
        .traceparent
        .expect("a trace");
    let caller: TraceContext = header.parse().unwrap();
    assert_eq!(context.trace_id(), caller.trace_id());
    assert_ne!(context.span_id(), caller.span_id(), "the fire span's own");
    assert_eq!(reply.response.headers()["traceparent"], context.to_string());

    f.clock.advance(DAY);
    let input = f
        .timers
        .timer(&timer_name(id))
        .unwrap()
        .input
        .replace(SCHEDULED_TIME, "2027-01-05T08:00:00Z");
    let fired = f.api.fire(&input, &mut Metrics::new()).await.unwrap();
    let Fired::Created { job_id } = fired else {
        panic!("a job: {fired:?}");
    };
    let own = f.store.job(job_id).unwrap().traceparent.expect("a trace");
    assert_ne!(own.trace_id(), caller.trace_id(), "a trace of its own");
}
