//! The console's schedule pages and actions, and its scheduled jobs, on
//! the in-memory fakes: what the pages show, and that each action does
//! what the API does (the record, then the timer).

use super::guard::Guard;
use super::{Console, Scheduling};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use jobline_api::Api;
use jobline_core::schedule::{Overlap, ScheduleRecord, ScheduleSpec, ScheduleStore};
use jobline_core::timers::{Timer, TimerTiming, Timers};
use jobline_core::{ApiStore, Clock, Config, JobId, JobMessage, JobRecord, JobRequest, JobState};
use jobline_testkit::memory::activity::FixedHistory;
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::schedules::MemorySchedules;
use jobline_testkit::memory::store::MemoryStore;
use jobline_testkit::memory::timers::MemoryTimers;
use jobline_testkit::testing::now_ms;
use serde_json::json;
use std::sync::Arc;

const PORT: u16 = 4322;

/// A console on the fakes, its schedule parts, and the fakes.
struct Scene {
    console: Console,
    scheduling: Scheduling,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    schedules: Arc<MemorySchedules>,
    timers: Arc<MemoryTimers>,
}

impl Scene {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let schedules = Arc::new(MemorySchedules::new());
        let timers = Arc::new(MemoryTimers::new());
        let config = Config::for_resources("jobs", "queue", "dlq").unwrap();
        let api = Api::new(
            store.clone(),
            queue.clone(),
            jobline_jobs::builtin(),
            &config,
        )
        .with_timers(timers.clone())
        .with_schedules(schedules.clone(), 100);
        let scheduling = Scheduling {
            api: Arc::new(api),
            schedules: Some(schedules.clone()),
            timers: Some(timers.clone()),
        };
        let console = Console {
            store: store.clone(),
            queue: queue.clone(),
            dlq: Arc::new(MemoryQueue::new()),
            history: Arc::new(FixedHistory::new()),
            guard: Guard::new(PORT),
            emulated: false,
            bucket: None,
            clock: Clock::system(),
        };
        Self {
            console,
            scheduling,
            store,
            queue,
            schedules,
            timers,
        }
    }

    fn headers(&self) -> HeaderMap {
        let host = format!("127.0.0.1:{PORT}");
        let cookie = self.console.guard.cookie();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(&host).unwrap());
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie.split(';').next().unwrap()).unwrap(),
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(&format!("http://{host}")).unwrap(),
        );
        headers
    }

    /// The status and HTML of a request, with or without the schedule parts.
    async fn request(
        &self,
        with_parts: bool,
        method: Method,
        path: &str,
        body: &str,
    ) -> (StatusCode, String) {
        let parts = with_parts.then_some(&self.scheduling);
        let response = self
            .console
            .handle_with(parts, &method, path, &self.headers(), body.as_bytes())
            .await;
        let status = response.status();
        let html = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(html.to_vec()).unwrap())
    }

    async fn page(&self, path: &str) -> String {
        let (status, html) = self.request(true, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        html
    }

    /// Posts the confirmed action with `fields` (the CSRF token added).
    async fn act(&self, fields: &str) -> String {
        let body = format!("{fields}&csrf={}", self.console.guard.csrf());
        let (status, html) = self.request(true, Method::POST, "/act", &body).await;
        assert_eq!(status, StatusCode::OK, "{fields}: {html}");
        html
    }

    /// A schedule of `alice`'s, with its timer, as the API creates them.
    async fn schedule(&self) -> ScheduleRecord {
        let spec = ScheduleSpec {
            expression: "rate(1 hour)".into(),
            timezone: "Europe/Paris".into(),
            job_type: "primes".into(),
            payload: json!({"upTo": 10}),
            callback_url: None,
            overlap: Overlap::Allow,
        };
        let schedule = ScheduleRecord::new("alice", spec, now_ms());
        self.schedules.create(&schedule).await.unwrap();
        // Its timer, as a pause rewrites it whole.
        self.scheduling
            .api
            .set_paused(&schedule, false)
            .await
            .unwrap()
    }
}

fn encode(text: &str) -> String {
    super::html::encode(text)
}

#[tokio::test]
async fn without_schedules_the_page_says_they_are_not_enabled() {
    let scene = Scene::new();
    let (status, html) = scene.request(false, Method::GET, "/schedules", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-schedules-disabled"), "{html}");
    assert!(html.contains("Schedules are not enabled"), "{html}");
    assert!(
        html.contains(r#"<a href="/schedules" aria-current="page">Schedules</a>"#),
        "{html}"
    );
    let (_, html) = scene
        .request(
            false,
            Method::GET,
            "/confirm?action=pause&schedule=x&owner=alice",
            "",
        )
        .await;
    assert!(html.contains("Schedules are not enabled"), "{html}");
}

#[tokio::test]
async fn an_operator_pauses_triggers_and_deletes_a_schedule() {
    let scene = Scene::new();
    let schedule = scene.schedule().await;
    let id = schedule.id;
    let owner = format!("owner={}", encode("alice"));

    let list = scene.page("/schedules").await;
    assert!(list.contains(&format!(r#"data-schedule="{id}""#)), "{list}");
    assert!(
        list.contains("rate(1 hour)") && list.contains("Europe/Paris"),
        "{list}"
    );
    assert!(list.contains(r#"data-paused="false""#), "{list}");
    assert!(list.contains(&format!("/schedules/{id}?{owner}")), "{list}");

    let page = scene.page(&format!("/schedules/{id}?{owner}")).await;
    assert_eq!(
        page.matches("<li>").count(),
        5,
        "the next five fires: {page}"
    );
    assert!(page.contains("none yet"), "{page}");
    let confirm_link = format!("/confirm?action=pause&amp;schedule={id}&amp;{owner}");
    assert!(page.contains(&confirm_link), "{page}");

    let confirm = scene
        .page(&format!("/confirm?action=pause&schedule={id}&{owner}"))
        .await;
    assert!(confirm.contains("Pause this schedule?"), "{confirm}");
    assert!(confirm.contains(r#"name="csrf""#), "{confirm}");
    let unchanged = scene.schedules.get("alice", id).await.unwrap().unwrap();
    assert!(!unchanged.paused, "a confirmation changes nothing");

    let done = scene
        .act(&format!("action=pause&schedule={id}&owner=alice"))
        .await;
    assert!(done.contains("The schedule is paused"), "{done}");
    assert!(
        scene
            .schedules
            .get("alice", id)
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    let timer = scene
        .timers
        .timer(&schedule.timer_name())
        .expect("its timer");
    assert!(!timer.enabled, "the timer is disabled");
    let again = scene
        .page(&format!("/confirm?action=pause&schedule={id}&{owner}"))
        .await;
    assert!(
        again.contains("Nothing to do: it is already paused"),
        "{again}"
    );
    let page = scene.page(&format!("/schedules/{id}?{owner}")).await;
    assert!(page.contains("none while paused"), "{page}");

    // A trigger fires it, paused or not: a job of the schedule, queued.
    let done = scene
        .act(&format!("action=trigger&schedule={id}&owner=alice"))
        .await;
    assert!(done.contains("The schedule fired: job"), "{done}");
    let fired = scene.schedules.get("alice", id).await.unwrap().unwrap();
    let job_id = fired
        .last_fire
        .expect("the trigger is its last fire")
        .job_id;
    let job = scene.store.job(job_id).expect("the fired job");
    assert_eq!(job.schedule_id, Some(id.to_string()));
    assert_eq!((job.owner.as_str(), job.state), ("alice", JobState::Queued));
    assert_eq!(scene.queue.sent(), [JobMessage::of(&job)]);
    let page = scene.page(&format!("/schedules/{id}?{owner}")).await;
    assert!(page.contains(&format!("/jobs/{job_id}")), "{page}");
    assert!(page.contains("<span data-fired>1</span>"), "{page}");

    let done = scene
        .act(&format!("action=delete&schedule={id}&owner=alice"))
        .await;
    assert!(done.contains("deleted"), "{done}");
    assert!(scene.schedules.get("alice", id).await.unwrap().is_none());
    assert!(scene.timers.timer(&schedule.timer_name()).is_none());
    assert!(scene.store.job(job_id).is_some(), "its jobs stay");
    let (status, _) = scene
        .request(true, Method::GET, &format!("/schedules/{id}?{owner}"), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A job of `owner`'s delayed an hour: scheduled.
async fn delayed(scene: &Scene) -> JobRecord {
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 10}),
        callback_url: None,
    };
    let now = now_ms();
    let job = JobRecord::new_queued(JobId::random(), "bob", &request, now, 1)
        .delayed_until(now + 3_600_000);
    scene.store.create(&job).await.unwrap();
    job
}

#[tokio::test]
async fn scheduled_jobs_have_their_tab_and_run_now_or_cancel() {
    let scene = Scene::new();
    let later = delayed(&scene).await;
    let cancelled = delayed(&scene).await;
    // A long delay's one-time timer, as the API sets it.
    let timer_name = jobline_api::job_timer_name(cancelled.id);
    scene
        .timers
        .put(&Timer {
            name: timer_name.clone(),
            timing: TimerTiming::Once {
                at_ms: cancelled.run_at.unwrap(),
            },
            input: "{}".into(),
            enabled: true,
        })
        .await
        .unwrap();

    let overview = scene.page("/").await;
    assert!(
        overview.contains(r#"data-count="scheduled">2<"#),
        "{overview}"
    );
    let list = scene.page("/jobs?state=scheduled").await;
    assert!(
        list.contains(
            r#"<a href="/jobs?state=scheduled" aria-current="page" data-tab="scheduled">"#
        ),
        "{list}"
    );
    assert_eq!(list.matches("data-run-at").count(), 2, "{list}");
    assert!(
        list.contains(">in 59m<") || list.contains(">in 1h00m<"),
        "{list}"
    );
    assert!(
        list.contains(&format!("/confirm?action=run&amp;job={}", later.id)),
        "{list}"
    );

    let confirm = scene
        .page(&format!("/confirm?action=run&job={}", later.id))
        .await;
    assert!(confirm.contains("Run this job now?"), "{confirm}");
    let done = scene.act(&format!("action=run&job={}", later.id)).await;
    assert!(
        done.contains("The job is queued and sent to the jobs queue now."),
        "{done}"
    );
    assert_eq!(scene.store.job(later.id).unwrap().state, JobState::Queued);
    assert_eq!(scene.queue.sent(), [JobMessage::of(&later)]);
    // A repeat sends it again (the first send may have failed), harmlessly:
    // a worker's claim of the second message is refused.
    let again = scene.act(&format!("action=run&job={}", later.id)).await;
    assert!(
        again.contains("The job is queued and sent to the jobs queue now."),
        "{again}"
    );
    assert_eq!(scene.queue.sent().len(), 2);

    let page = scene.page(&format!("/jobs/{}", cancelled.id)).await;
    assert!(page.contains("data-run-at"), "{page}");
    let confirm = scene
        .page(&format!("/confirm?action=cancel&job={}", cancelled.id))
        .await;
    assert!(
        confirm.contains("It is scheduled: it becomes cancelled at once"),
        "{confirm}"
    );
    let done = scene
        .act(&format!("action=cancel&job={}", cancelled.id))
        .await;
    assert!(done.contains("The job is cancelled."), "{done}");
    assert_eq!(
        scene.store.job(cancelled.id).unwrap().state,
        JobState::Cancelled
    );
    assert!(
        scene.timers.timer(&timer_name).is_none(),
        "its timer is deleted"
    );
    let refused = scene.act(&format!("action=run&job={}", cancelled.id)).await;
    assert!(
        refused.contains("The job is cancelled: only a scheduled job can be run now."),
        "{refused}"
    );

    // Without the API's parts, Run now does nothing and says why.
    let other = delayed(&scene).await;
    let (_, confirm) = scene
        .request(
            false,
            Method::GET,
            &format!("/confirm?action=run&job={}", other.id),
            "",
        )
        .await;
    assert!(confirm.contains("Nothing to do."), "{confirm}");
}
