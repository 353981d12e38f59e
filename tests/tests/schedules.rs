//! Delayed and recurring jobs against moto, on a moved clock: the API
//! writes its timers into the emulator's EventBridge Scheduler (which
//! stores them and fires nothing) and its schedules into DynamoDB, and the
//! local firer (`jobline_local::firer`) fires them as the service would,
//! each tick firing every fire due since the last. The clock moves by
//! hours, days and months; nothing sleeps for them.
//!
//! - a weekday 09:00 Europe/Paris schedule fires on the right instants
//!   around both DST changes of 2027, and a pause stops it with no
//!   catch-up at its resume;
//! - `cron(30 2 * * ? *)` in Europe/Paris skips the spring-forward day and
//!   fires once on the fall-back day; `rate(1 day)` stays 24 h apart;
//! - `rate(1 minute)` fires 60 times in a moved hour;
//! - a duplicated fire creates one job; `skip` skips while the previous
//!   job runs;
//! - a job delayed 40 days runs at its time and not before; one cancelled
//!   before it is due never runs;
//! - many schedules due in the same minute all fire within it (`burst`:
//!   100 here; `scripts/schedule-burst` runs it with 1,000).

use http::StatusCode;
use jobline_api::ANONYMOUS_OWNER;
use jobline_api::fire::FireInput;
use jobline_core::schedule::{ScheduleId, ScheduleRecord, fire_job_id};
use jobline_core::{Clock, JobId, JobState, Metrics, ReadStore};
use jobline_local::Stack;
use jobline_local::firer::TickReport;
use jobline_tests::TestEnv;
use lambda_http::{Body, Request};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A test's stack with schedules, on a movable clock.
struct Scene {
    env: TestEnv,
    stack: Stack,
    clock: Clock,
}

impl Scene {
    async fn new(max_schedules: usize) -> Self {
        let env = TestEnv::new().await;
        let clock = Clock::movable();
        let parts = env.schedule_parts(max_schedules).await;
        let stack = env
            .stack_on(jobline_jobs::builtin(), &clock)
            .schedules(parts)
            .build();
        Self { env, stack, clock }
    }

    async fn call(&self, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request: Request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .expect("request");
        let reply = self.stack.api().handle(request).await;
        let json = serde_json::from_slice(reply.response.body().as_ref()).unwrap_or(Value::Null);
        (reply.response.status(), json)
    }

    /// Creates a schedule; its id.
    async fn create(&self, body: &str) -> ScheduleId {
        let (status, body) = self.call("POST", "/schedules", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["scheduleId"].as_str().unwrap().parse().unwrap()
    }

    async fn schedule(&self, id: ScheduleId) -> ScheduleRecord {
        self.stack
            .api()
            .schedule_of(ANONYMOUS_OWNER, id)
            .await
            .expect("the schedule")
    }

    /// Moves the clock forward to `at_ms`.
    fn move_to(&self, at_ms: i64) {
        let by = at_ms - self.clock.now_ms();
        assert!(by >= 0, "the clock only moves forward");
        self.clock
            .advance(Duration::from_millis(u64::try_from(by).unwrap()));
    }

    async fn tick(&self) -> TickReport {
        let report = self
            .stack
            .firer()
            .expect("schedules are on")
            .tick()
            .await
            .expect("the timers are read");
        assert_eq!(report.failed, 0, "no fire fails");
        report
    }

    /// Ticks every `step` until `to_ms`, and returns the scheduled times of
    /// `id`'s fires in between, in order.
    async fn walk(&self, id: ScheduleId, to_ms: i64, step: i64) -> Vec<i64> {
        let mut fired = Vec::new();
        let mut seen = self.schedule(id).await.counts.fired;
        while self.clock.now_ms() < to_ms {
            self.move_to((self.clock.now_ms() + step).min(to_ms));
            self.tick().await;
            let schedule = self.schedule(id).await;
            if schedule.counts.fired > seen {
                assert_eq!(schedule.counts.fired, seen + 1, "one fire a step");
                fired.push(schedule.last_fire.expect("a last fire").scheduled_at);
                seen = schedule.counts.fired;
            }
        }
        fired
    }

    /// The queue's messages (visible, in flight and delayed).
    async fn queued(&self) -> u64 {
        self.env.queue_depth(&self.env.queues.queue_url).await
    }

    /// Feeds the worker until job `id` has finished.
    async fn run_until_finished(&self, id: JobId) -> jobline_core::JobRecord {
        let poller = self.stack.poller();
        for _ in 0..20 {
            poller.poll_once().await.expect("a poll");
            let job = self.env.store().get(id).await.unwrap().expect("the job");
            if job.state.is_finished() {
                return job;
            }
        }
        panic!("job {id} did not finish");
    }
}

/// RFC 3339 to epoch milliseconds.
fn at(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn times(texts: &[&str]) -> Vec<i64> {
    texts.iter().map(|text| at(text)).collect()
}

#[tokio::test]
async fn weekdays_at_nine_in_paris_across_both_dst_changes_and_a_pause() {
    jobline_tests::require_emulator!();
    let scene = Scene::new(10).await;
    scene.move_to(at("2027-03-24T00:00:00Z"));
    let id = scene
        .create(
            r#"{"expression":"cron(0 9 ? * MON-FRI *)","timezone":"Europe/Paris",
                "type":"primes","payload":{"upTo":10}}"#,
        )
        .await;
    let spring = scene
        .walk(id, at("2027-04-03T00:00:00Z"), 6 * HOUR_MS)
        .await;
    assert_eq!(
        spring,
        times(&[
            "2027-03-24T08:00:00Z",
            "2027-03-25T08:00:00Z",
            "2027-03-26T08:00:00Z",
            // 28 March: clocks go forward; 09:00 is 07:00 UTC from then on.
            "2027-03-29T07:00:00Z",
            "2027-03-30T07:00:00Z",
            "2027-03-31T07:00:00Z",
            "2027-04-01T07:00:00Z",
            "2027-04-02T07:00:00Z",
        ])
    );
    // Each fire made one job, linked to its schedule.
    let job = scene
        .env
        .store()
        .get(fire_job_id(id, at("2027-03-29T07:00:00Z")))
        .await
        .unwrap()
        .expect("the fire's job");
    assert_eq!(job.schedule_id, Some(id.to_string()));

    // Paused over the summer: nothing fires, and nothing is caught up.
    let (status, _) = scene
        .call("POST", &format!("/schedules/{id}/pause"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    scene.move_to(at("2027-10-27T00:00:00Z"));
    assert_eq!(scene.tick().await.fired, 0);
    let (status, body) = scene
        .call("POST", &format!("/schedules/{id}/resume"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nextFires"][0], "2027-10-27T07:00:00.000Z");
    let autumn = scene
        .walk(id, at("2027-11-04T00:00:00Z"), 6 * HOUR_MS)
        .await;
    assert_eq!(
        autumn,
        times(&[
            "2027-10-27T07:00:00Z",
            "2027-10-28T07:00:00Z",
            "2027-10-29T07:00:00Z",
            // 31 October: clocks go back; 09:00 is 08:00 UTC from then on.
            "2027-11-01T08:00:00Z",
            "2027-11-02T08:00:00Z",
            "2027-11-03T08:00:00Z",
        ])
    );
    assert_eq!(scene.schedule(id).await.counts.fired, 14, "no catch-up");
    scene.env.cleanup().await;
}

#[tokio::test]
async fn half_past_two_in_paris_skips_spring_forward_and_fires_once_at_fall_back() {
    jobline_tests::require_emulator!();
    let scene = Scene::new(10).await;
    let night = r#"{"expression":"cron(30 2 * * ? *)","timezone":"Europe/Paris","type":"primes","payload":{"upTo":10}}"#;
    let daily = r#"{"expression":"rate(1 day)","timezone":"Europe/Paris","type":"primes","payload":{"upTo":10}}"#;

    scene.move_to(at("2027-03-26T12:00:00Z"));
    let (cron, rate) = (scene.create(night).await, scene.create(daily).await);
    scene.tick().await;
    let mut cron_fires = Vec::new();
    while scene.clock.now_ms() < at("2027-03-30T12:00:00Z") {
        let before = scene.schedule(cron).await.counts.fired;
        scene.move_to(scene.clock.now_ms() + HOUR_MS);
        scene.tick().await;
        let after = scene.schedule(cron).await;
        if after.counts.fired > before {
            cron_fires.push(after.last_fire.unwrap().scheduled_at);
        }
    }
    assert_eq!(
        cron_fires,
        times(&[
            "2027-03-27T01:30:00Z",
            "2027-03-29T00:30:00Z",
            "2027-03-30T00:30:00Z"
        ]),
        "no 02:30 on 28 March, which has none"
    );
    let spring_rate = scene.schedule(rate).await;
    assert_eq!(spring_rate.counts.fired, 5, "at its creation, then daily");
    let rate_times = jobs_of(&scene, rate).await;
    assert!(
        rate_times.windows(2).all(|w| w[1] - w[0] == DAY_MS),
        "24 h apart across the change: {rate_times:?}"
    );
    for id in [cron, rate] {
        let (status, _) = scene.call("DELETE", &format!("/schedules/{id}"), "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    scene.move_to(at("2027-10-29T12:00:00Z"));
    let (cron, rate) = (scene.create(night).await, scene.create(daily).await);
    scene.tick().await;
    let autumn = scene.walk(cron, at("2027-11-02T12:01:00Z"), HOUR_MS).await;
    assert_eq!(
        autumn,
        times(&[
            "2027-10-30T00:30:00Z",
            // 31 October has 02:30 twice: one fire, at the first.
            "2027-10-31T00:30:00Z",
            "2027-11-01T01:30:00Z",
            "2027-11-02T01:30:00Z",
        ])
    );
    let rate_times = jobs_of(&scene, rate).await;
    assert_eq!(rate_times.len(), 5);
    assert!(rate_times.windows(2).all(|w| w[1] - w[0] == DAY_MS));
    scene.env.cleanup().await;
}

/// The scheduled times (`runAt`) of schedule `id`'s jobs, in order.
async fn jobs_of(scene: &Scene, id: ScheduleId) -> Vec<i64> {
    let mut runs = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = scene
            .call(
                "GET",
                &format!("/jobs?scheduleId={id}&limit=100{cursor}"),
                "",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for job in page["jobs"].as_array().unwrap() {
            runs.push(at(job["runAt"].as_str().unwrap()));
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    runs.sort_unstable();
    runs
}

#[tokio::test]
async fn every_minute_fires_sixty_times_in_a_moved_hour() {
    jobline_tests::require_emulator!();
    let scene = Scene::new(10).await;
    let id = scene
        .create(r#"{"expression":"rate(1 minute)","type":"primes","payload":{"upTo":10}}"#)
        .await;
    assert_eq!(scene.tick().await.fired, 1, "at once, as a rate starts");
    scene.move_to(scene.clock.now_ms() + HOUR_MS);
    assert_eq!(scene.tick().await.fired, 60);
    assert_eq!(scene.schedule(id).await.counts.fired, 61);
    assert_eq!(jobs_of(&scene, id).await.len(), 61, "a job a fire");
    assert_eq!(scene.queued().await, 61);
    scene.env.cleanup().await;
}

#[tokio::test]
async fn a_duplicated_fire_creates_one_job_and_skip_waits_for_the_previous_one() {
    jobline_tests::require_emulator!();
    let scene = Scene::new(10).await;
    let id = scene
        .create(
            r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10},"overlap":"skip"}"#,
        )
        .await;
    let at = scene.clock.now_ms() / 1000 * 1000 + 1000;
    let input = FireInput::Schedule {
        owner: ANONYMOUS_OWNER.into(),
        schedule_id: id.to_string(),
        scheduled_time: jiff::Timestamp::from_millisecond(at).unwrap().to_string(),
    }
    .to_json();
    let api = Arc::clone(scene.stack.api());
    let (mut first, mut second) = (Metrics::new(), Metrics::new());
    let (one, two) = tokio::join!(api.fire(&input, &mut first), api.fire(&input, &mut second));
    let job = fire_job_id(id, at);
    assert_eq!(
        one.unwrap(),
        jobline_api::fire::Fired::Created { job_id: job }
    );
    assert_eq!(
        two.unwrap(),
        jobline_api::fire::Fired::Created { job_id: job }
    );
    assert_eq!(jobs_of(&scene, id).await, vec![at], "one job");

    // `skip`: the fire an hour later finds that job still queued.
    scene.move_to(scene.clock.now_ms() + HOUR_MS + 1_000);
    scene.tick().await;
    let schedule = scene.schedule(id).await;
    assert!(schedule.counts.skipped >= 1, "{schedule:?}");
    assert_eq!(jobs_of(&scene, id).await.len(), 1);

    // Once it has run, the next fire creates the next job.
    let finished = scene.run_until_finished(job).await;
    assert_eq!(finished.state, JobState::Succeeded);
    scene.move_to(scene.clock.now_ms() + HOUR_MS);
    scene.tick().await;
    assert_eq!(jobs_of(&scene, id).await.len(), 2);
    scene.env.cleanup().await;
}

#[tokio::test]
async fn a_job_delayed_forty_days_runs_at_its_time_and_not_before() {
    jobline_tests::require_emulator!();
    let scene = Scene::new(10).await;
    let (status, body) = scene
        .call(
            "POST",
            "/jobs",
            r#"{"type":"primes","payload":{"upTo":10},"delaySeconds":3456000}"#,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
    let run_at = at(body["runAt"].as_str().unwrap());
    assert_eq!(body["status"], "scheduled");
    assert_eq!(scene.tick().await.fired, 0);
    assert_eq!(scene.queued().await, 0, "no message waits 40 days in SQS");

    // A minute before its time: still scheduled, and not swept as late,
    // though far past a job's bound counted from its submission.
    scene.move_to(run_at - 60_000);
    assert_eq!(scene.tick().await.fired, 0);
    let report = scene.stack.sweeper().sweep_once(scene.clock.now_ms()).await;
    assert_eq!(report.swept, 0);
    let (status, shown) = scene.call("GET", &format!("/jobs/{id}"), "").await;
    assert_eq!(
        (status, shown["status"].as_str()),
        (StatusCode::OK, Some("scheduled"))
    );
    assert_eq!(scene.queued().await, 0);

    scene.move_to(run_at + 1_000);
    assert_eq!(scene.tick().await.fired, 1);
    assert_eq!(scene.tick().await.fired, 0, "a one-time timer fires once");
    let job = scene.run_until_finished(id).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert!(job.started_at.unwrap() >= run_at, "not before its time");
    scene.env.cleanup().await;
}

#[tokio::test]
async fn a_delayed_job_cancelled_before_it_is_due_never_runs() {
    jobline_tests::require_emulator!();
    let scene = Scene::new(10).await;
    let (_, body) = scene
        .call(
            "POST",
            "/jobs",
            r#"{"type":"primes","payload":{"upTo":10},"runAt":"2099-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(
        body["error"]["code"], "invalid_request",
        "over a year ahead"
    );
    let (status, body) = scene
        .call(
            "POST",
            "/jobs",
            r#"{"type":"primes","payload":{"upTo":10},"delaySeconds":172800}"#,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
    let (status, body) = scene.call("POST", &format!("/jobs/{id}/cancel"), "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    scene.move_to(scene.clock.now_ms() + 3 * DAY_MS);
    assert_eq!(
        scene.tick().await.fired,
        0,
        "its timer went with the cancel"
    );
    assert_eq!(scene.queued().await, 0);
    let job = scene.env.store().get(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Cancelled, 0));
    scene.env.cleanup().await;
}

/// How many schedules the burst creates: `JOBLINE_BURST_SCHEDULES`, 100 by
/// default (`scripts/schedule-burst` sets 1,000).
fn burst_size() -> usize {
    std::env::var("JOBLINE_BURST_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

/// The bound: every schedule due in one minute fires within it, as
/// EventBridge Scheduler fires within the minute of a fire's time.
const BURST_BOUND: Duration = Duration::from_secs(60);

#[tokio::test]
async fn burst_every_schedule_due_in_one_minute_fires_within_it() {
    jobline_tests::require_emulator!();
    let n = burst_size();
    let scene = Scene::new(n).await;
    let created = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(
            scene
                .create(
                    r#"{"expression":"cron(0 9 * * ? *)","type":"primes","payload":{"upTo":10}}"#,
                )
                .await,
        );
    }
    let creating = created.elapsed();
    let nine = {
        let tomorrow = scene.clock.now_ms() / DAY_MS * DAY_MS + DAY_MS;
        tomorrow + 9 * HOUR_MS
    };
    scene.move_to(nine + 1_000);
    let started = Instant::now();
    let report = scene.tick().await;
    let firing = started.elapsed();
    println!(
        "burst: {n} schedules created in {:.1} s; their fires at 09:00 took {:.1} s \
         (bound {} s)",
        creating.as_secs_f64(),
        firing.as_secs_f64(),
        BURST_BOUND.as_secs()
    );
    assert_eq!(report.fired, n);
    assert!(firing <= BURST_BOUND, "{n} fires took {firing:?}");
    assert_eq!(
        scene.queued().await,
        u64::try_from(n).unwrap(),
        "a job each"
    );
    for id in ids.iter().take(5) {
        let schedule = scene.schedule(*id).await;
        assert_eq!(schedule.last_fire.map(|f| f.scheduled_at), Some(nine));
    }
    scene.env.cleanup().await;
}

/// Fires through a proxy that fails, throttles, resets (before and after
/// the service acted) and delays a share of every jobs-table, schedules-table
/// and queue call: a fire that fails is fired again (as EventBridge
/// Scheduler retries), and in the end each fire has made exactly one job,
/// sent, none failed to enqueue.
#[tokio::test]
async fn fires_through_faults_make_exactly_one_sent_job_each() {
    use jobline_dynamodb::schedules::DynamoScheduleStore;
    use jobline_tests::faults::{FaultPlan, FaultProxy, FaultRates, clients_behind};
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's URL");
    let proxy = FaultProxy::start("fire", &upstream, FaultPlan::uniform(FaultRates::none()))
        .await
        .expect("start the proxy");
    let clients = clients_behind(&proxy).await;
    let mut parts = env.schedule_parts(10).await;
    parts.store = Arc::new(DynamoScheduleStore::new(
        clients.dynamodb.clone(),
        jobline_local::provision::schedules_table_name(&env.table),
    ));
    let clock = Clock::movable();
    let stack = Stack::builder(
        Arc::new(clients.store(&env.config)),
        Arc::new(clients.queue(&env.config)),
        &env.config,
    )
    .job_types(jobline_jobs::builtin())
    .clock(clock.clone())
    .schedules(parts)
    .build();
    let scene = Scene { env, stack, clock };
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            scene
                .create(r#"{"expression":"rate(1 hour)","type":"primes","payload":{"upTo":10}}"#)
                .await,
        );
    }
    proxy.set_plan(FaultPlan::uniform(FaultRates::each(0.1)));
    scene.move_to(scene.clock.now_ms() + HOUR_MS + 1_000);
    let firer = scene.stack.firer().unwrap();
    let mut failed = 0;
    for _ in 0..30 {
        let report = firer
            .tick()
            .await
            .expect("the timers are read (not proxied)");
        failed += report.failed;
        if report.fired > 0 && report.failed == 0 && failed > 0 {
            break;
        }
    }
    proxy.set_plan(FaultPlan::uniform(FaultRates::none()));
    while firer.tick().await.unwrap().failed > 0 {}
    assert!(
        proxy.injected().values().sum::<usize>() > 0,
        "faults were injected"
    );
    let sent = jobline_tests::queued_messages(&scene.env.queue()).await;
    for id in ids {
        let runs = jobs_of(&scene, id).await;
        assert_eq!(runs.len(), 2, "at its creation and an hour on: {runs:?}");
        for run in runs {
            let job = scene
                .env
                .store()
                .get(fire_job_id(id, run))
                .await
                .unwrap()
                .expect("the fire's job");
            assert_eq!(job.state, JobState::Queued, "{job:?}");
            assert!(!job.enqueue_failed);
            assert!(
                sent.iter().any(|m| m.job_id == job.id),
                "its message is sent"
            );
        }
    }
    scene.env.cleanup().await;
}
