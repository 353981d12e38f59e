//! The operator's console (`jobline console`) in headless Chromium, against
//! the local stack on the emulator: what a person sees (counts, queues, the
//! chart's totals, a job after its cancel, a replayed dead letter), what the
//! guard refuses, a page of the job list on a table of thousands of jobs,
//! and a schedule paused and triggered, and a delayed job run now, from the
//! Schedules page and the Scheduled tab. Each page's screenshot is left in
//! `target/console-screenshots/`.

use fantoccini::Locator;
use jobline_cli::console::guard::Guard;
use jobline_cli::console::{Console, Scheduling, serve_with};
use jobline_cloudwatch::CloudWatchHistory;
use jobline_core::activity::{MetricHistory, Window};
use jobline_core::limits::QueueSettings;
use jobline_core::{ApiStore, JobId, JobQueue, JobRecord, JobRequest, JobState, ReadStore};
use jobline_core::{Metric, Metrics, WorkerConfig};
use jobline_local::poller::PollerSettings;
use jobline_testkit::testing::now_ms;
use jobline_tests::browser::Browser;
use jobline_tests::{TestEnv, test_queue_settings};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The test stack's invocation timeout: past the whole test.
const LONG_INVOCATION: Duration = Duration::from_secs(300);

/// A console on `env`'s table and queues, served on its own thread (its
/// connections run on a `LocalSet`); the guard, and a sender that stops it.
fn start_console(env: &TestEnv) -> (Guard, tokio::sync::oneshot::Sender<()>) {
    start_console_on(env, env.config.clone())
}

/// [`start_console`], with the schedule parts `config` names, built as
/// `jobline console` builds them ([`Scheduling::from_sdk`]).
fn start_console_on(
    env: &TestEnv,
    config: jobline_core::Config,
) -> (Guard, tokio::sync::oneshot::Sender<()>) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let guard = Guard::new(std_listener.local_addr().unwrap().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (store, queue, dlq) = (env.store(), env.queue(), env.dlq());
    let thread_guard = guard.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let sdk = jobline_local::clients::tools_sdk_config().await;
            let console = Console {
                store: Arc::new(store),
                queue: Arc::new(queue),
                dlq: Arc::new(dlq),
                history: Arc::new(CloudWatchHistory::new(&sdk)),
                guard: thread_guard,
                emulated: true,
                bucket: None,
                clock: jobline_core::Clock::system(),
            };
            let scheduling = Scheduling::from_sdk(&sdk, &config);
            let listener = TcpListener::from_std(std_listener).unwrap();
            serve_with(listener, Arc::new(console), Some(scheduling), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    (guard, stop)
}

/// The status of a raw HTTP/1.1 request to the console.
async fn status_of(port: u16, request: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 64];
    let read = stream.read(&mut answer).await.unwrap();
    let line = String::from_utf8_lossy(&answer[..read]).into_owned();
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

fn port_of(guard: &Guard) -> u16 {
    guard
        .launch_url()
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next()?.parse().ok())
        .expect("the launch URL's port")
}

/// Reloads `url` until the text of `css` is `want`, for at most `secs`.
async fn until_shown(browser: &Browser, url: &str, css: &str, want: &str, secs: u64) {
    let start = Instant::now();
    loop {
        browser.goto(url).await;
        let shown = browser.text(css).await;
        if shown == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{css} shows {shown:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_and_steers_jobs_in_the_console() {
    jobline_tests::require_emulator!();
    // Two deliveries, then the DLQ: a broken job is dead in seconds.
    let settings = test_queue_settings(QueueSettings::TEMPLATE.visibility_timeout_secs, 2);
    let env = TestEnv::with_settings(settings).await;
    let stack = env
        .stack(jobline_jobs::builtin())
        .worker_config(WorkerConfig {
            retry_base_delay_secs: 1,
            retry_max_delay_secs: 1,
            heartbeat_secs: 1,
            function_timeout_secs: LONG_INVOCATION.as_secs() as u32,
            ..env.config.worker.clone()
        })
        // Invocations long enough that the sleeper stays `running` all
        // through the test (at 30 s it would time out and be retried); the
        // second poller runs the broken job's retries meanwhile.
        .poller_settings(PollerSettings {
            batching_window: Duration::ZERO,
            wait_secs: 1,
            visibility_secs: QueueSettings::TEMPLATE.visibility_timeout_secs as i32,
            function_timeout: LONG_INVOCATION,
            ..PollerSettings::default()
        })
        .pollers(2)
        .build();
    let api_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_stack, stack_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(jobline_local::serve(stack, api_listener, async {
        let _ = stack_stopped.await;
    }));

    let mut done = Vec::new();
    for caller in ["carol", "dave", "erin"] {
        done.push(env.enqueue(caller, "primes", json!({"upTo": 100})).await);
    }
    let sleeper = env.enqueue("alice", "sleep", json!({"seconds": 600})).await;
    let broken = env.enqueue("bob", "always-fail", json!({})).await;
    for id in &done {
        env.until(*id, 30, |j| j.state == JobState::Succeeded).await;
    }
    env.until(sleeper, 30, |j| j.state == JobState::Running)
        .await;
    env.until(broken, 60, |j| j.dead_lettered).await;
    // CloudWatch holds what EMF ingestion would have put there (on top of
    // what earlier tests on this emulator put).
    let window = Window::last(60, now_ms());
    let earlier = CloudWatchHistory::new(&jobline_local::clients::tools_sdk_config().await)
        .per_minute(&[Metric::JobsSucceeded], window)
        .await
        .unwrap()[0]
        .total();
    let mut succeeded = Metrics::default();
    for _ in 0..3 {
        succeeded.count("primes", Metric::JobsSucceeded);
    }
    CloudWatchHistory::new(&jobline_local::clients::tools_sdk_config().await)
        .ingest(&succeeded, now_ms() - 120_000)
        .await
        .unwrap();
    // The dead message reaches the DLQ at its next receive.
    let wait = Instant::now();
    while env.dlq().counts().await.unwrap().visible == 0 {
        assert!(
            wait.elapsed() < Duration::from_secs(30),
            "nothing in the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (guard, stop_console) = start_console(&env);
    let port = port_of(&guard);
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::launch().await;

    // The launch URL trades its token for a cookie and shows the overview.
    browser.goto(&guard.launch_url()).await;
    let here = browser.client().current_url().await.unwrap();
    assert_eq!(
        here.as_str(),
        format!("{base}/"),
        "no token left in the address bar"
    );
    assert_eq!(browser.text("h1").await, "Overview");
    // Succeeded jobs are in no index: the last hour's metric counts them.
    assert_eq!(
        browser.text(r#"[data-count="succeeded"]"#).await,
        format!("{} in the last hour", earlier + 3.0)
    );
    assert_eq!(browser.text(r#"[data-count="running"]"#).await, "1");
    assert_eq!(browser.text(r#"[data-count="failed"]"#).await, "1");
    assert_eq!(
        browser.text(r#"[data-total="succeeded"]"#).await,
        (earlier + 3.0).to_string()
    );
    assert_eq!(browser.text(r#"[data-queue="dlq"]"#).await, "1");
    browser.screenshot("overview").await;
    browser.goto(&format!("{base}/jobs?state=succeeded")).await;
    assert_eq!(browser.text("h1").await, "Succeeded jobs are not listed");
    browser.goto(&format!("{base}/")).await;

    // The running jobs, then the sleeper's page, then its cancel.
    click(&browser, r#"a[href="/jobs?state=running"]"#).await;
    assert_eq!(browser.text("h1").await, "Jobs: running");
    let row = browser.text("table.jobs tbody").await;
    assert!(row.contains("sleep") && row.contains("alice"), "{row}");
    browser.screenshot("jobs").await;
    click(&browser, &format!(r#"a[href="/jobs/{sleeper}"]"#)).await;
    assert_eq!(browser.text("[data-state]").await, "running");
    browser.screenshot("job").await;
    click(
        &browser,
        &format!(r#"a[href="/confirm?action=cancel&job={sleeper}"]"#),
    )
    .await;
    assert_eq!(browser.text("h1").await, "Cancel this job?");
    browser.screenshot("cancel-confirm").await;
    click(&browser, "button.primary").await;
    let outcome = browser.text("[data-outcome]").await;
    assert!(outcome.contains("cancel requested"), "{outcome}");
    browser.screenshot("cancel-done").await;
    until_shown(
        &browser,
        &format!("{base}/jobs/{sleeper}"),
        "[data-state]",
        "cancelled",
        20,
    )
    .await;
    assert_eq!(
        env.store().get(sleeper).await.unwrap().unwrap().state,
        JobState::Cancelled
    );

    // The dead letter: seen from the job records, replayed after a dry run.
    browser.goto(&format!("{base}/dlq")).await;
    assert_eq!(browser.text("[data-dlq-depth]").await, "1");
    let dead = browser.text(&format!(r#"tr[data-dead="{broken}"]"#)).await;
    assert!(
        dead.contains("always-fail") && dead.contains("bob"),
        "{dead}"
    );
    assert_eq!(
        env.dlq().counts().await.unwrap().visible,
        1,
        "looking hid no dead message"
    );
    browser.screenshot("dead-letters").await;
    click(
        &browser,
        &format!(r#"a[href="/confirm?action=replay&job={broken}"]"#),
    )
    .await;
    assert_eq!(browser.text("[data-dry-run]").await, "1");
    browser.screenshot("replay-dry-run").await;
    assert_eq!(
        env.store().get(broken).await.unwrap().unwrap().replays,
        0,
        "a dry run changes nothing"
    );
    click(&browser, "button.primary").await;
    assert_eq!(
        browser.text("[data-outcome]").await,
        "1 replayed, 0 skipped, 0 failed."
    );
    browser.screenshot("replay-done").await;
    let replayed = env.until(broken, 10, |j| j.replays == 1).await;
    assert!(
        !replayed.dead_lettered || replayed.attempts > 2,
        "{replayed:?}"
    );
    browser.goto(&format!("{base}/jobs/{broken}")).await;
    let fields = browser.text("dl.fields").await;
    assert!(
        fields.contains("Replays\n1") || fields.contains("Replays 1"),
        "{fields}"
    );

    // Only this launch's browser gets in, and only its own pages act.
    browser.close().await;
    let cookie = guard.cookie();
    let cookie = cookie.split(';').next().unwrap();
    assert_eq!(
        status_of(
            port,
            &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        )
        .await,
        403
    );
    assert_eq!(status_of(port, &format!("GET / HTTP/1.1\r\nHost: rebound.example:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")).await, 403);
    assert_eq!(status_of(port, &format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")).await, 200);
    let form = format!("action=cancel&job={broken}&csrf={}", guard.csrf());
    let post = |origin: &str| {
        format!(
            "POST /act HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        )
    };
    assert_eq!(status_of(port, &post("http://evil.example")).await, 403);
    let forged = form.replace(guard.csrf(), "forged");
    let forged = format!(
        "POST /act HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{forged}",
        forged.len()
    );
    assert_eq!(status_of(port, &forged).await, 403);
    assert_ne!(
        env.store().get(broken).await.unwrap().unwrap().state,
        JobState::Cancelled,
        "no refused action acted"
    );

    let _ = stop_console.send(());
    let _ = stop_stack.send(());
    serving.await.unwrap().unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_the_job_list_reads_a_bounded_part_of_a_large_table() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let store = env.store();
    let base_ms = now_ms() - 3_000_000;
    let jobs: Vec<JobRecord> = (0..2_000)
        .map(|i| {
            let request = JobRequest {
                job_type: if i % 2 == 0 { "primes" } else { "sleep" }.into(),
                payload: json!({}),
                callback_url: None,
            };
            let mut job = JobRecord::new_queued(JobId::random(), "load", &request, base_ms + i, 1);
            job.state = JobState::Failed;
            job.error = Some("boom".into());
            job.finished_at = Some(base_ms + i + 10);
            job
        })
        .collect();
    for chunk in jobs.chunks(50) {
        futures_util::future::try_join_all(chunk.iter().map(|job| store.create(job)))
            .await
            .unwrap();
    }

    let (guard, stop_console) = start_console(&env);
    let browser = Browser::launch().await;
    browser.goto(&guard.launch_url()).await;
    assert_eq!(
        browser.text(r#"[data-count="failed"]"#).await,
        "1024+",
        "counted up to its bound, and said so"
    );
    browser
        .goto(&format!(
            "http://127.0.0.1:{}/jobs?state=failed&type=sleep",
            port_of(&guard)
        ))
        .await;
    let rows = browser
        .client()
        .find_all(Locator::Css("table.jobs tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 25);
    let scanned: usize = browser.text("[data-scanned]").await.parse().unwrap();
    // Filtered by type, half the jobs pass: one index page of 16 × 100.
    assert!(
        scanned <= 16 * 100,
        "{scanned} entries read for a page of 2,000 jobs"
    );
    let first = browser.text("table.jobs tbody tr:first-child").await;
    assert!(
        first.contains(&jobs[1_999].id.to_string()),
        "the newest sleep job first: {first}"
    );
    browser.screenshot("jobs-large-table").await;
    click(&browser, r#"a[rel="next"]"#).await;
    let second = browser.text("table.jobs tbody tr:first-child").await;
    assert!(
        second.contains(&jobs[1_949].id.to_string()),
        "the 26th newest next: {second}"
    );

    browser.close().await;
    let _ = stop_console.send(());
    env.cleanup().await;
}

/// A request to `stack`'s API, in process; its status and JSON body.
async fn call_api(
    stack: &jobline_local::Stack,
    method: &str,
    uri: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let request: lambda_http::Request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(lambda_http::Body::from(body.to_string()))
        .unwrap();
    let reply = stack.api().handle(request).await;
    let json = serde_json::from_slice(reply.response.body().as_ref()).unwrap_or_default();
    (reply.response.status().as_u16(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pauses_and_triggers_a_schedule_and_runs_a_delayed_job_now() {
    use jobline_core::schedule::{ScheduleId, timer_name};
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let parts = env.schedule_parts(100).await;
    let (timers, schedules) = (parts.timers.clone(), parts.store.clone());
    let stack = env.stack(jobline_jobs::builtin()).schedules(parts).build();

    // A caller's schedule and a job delayed an hour, through the API.
    let (status, created) = call_api(
        &stack,
        "POST",
        "/schedules",
        json!({"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Paris",
               "type": "primes", "payload": {"upTo": 100}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id: ScheduleId = created["scheduleId"].as_str().unwrap().parse().unwrap();
    let owner = jobline_api::ANONYMOUS_OWNER;
    let timer = timer_name(id);
    assert!(timers.get(&timer).await.unwrap().unwrap().enabled);
    let (status, accepted) = call_api(
        &stack,
        "POST",
        "/jobs",
        json!({"type": "primes", "payload": {"upTo": 10}, "delaySeconds": 3600}),
    )
    .await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (202, Some("scheduled"))
    );
    let delayed: JobId = accepted["jobId"].as_str().unwrap().parse().unwrap();
    let delayed_timer = jobline_api::job_timer_name(delayed);
    assert!(timers.get(&delayed_timer).await.unwrap().is_some());

    // The console, with the schedule parts `jobline console` builds from
    // the configuration.
    let mut config = env.config.clone();
    config.schedules = Some(jobline_core::config::ScheduleConfig {
        table_name: jobline_local::provision::schedules_table_name(&env.table),
        group: jobline_local::provision::schedule_group_name(&env.table),
        target_arn: jobline_local::provision::local_arn("lambda", "function:jobline-test-fire"),
        role_arn: jobline_local::provision::local_arn("iam", "role/jobline-test-scheduler"),
        dead_letter_arn: None,
        max_per_caller: 100,
    });
    let (guard, stop_console) = start_console_on(&env, config);
    let base = format!("http://127.0.0.1:{}", port_of(&guard));
    let browser = Browser::launch().await;
    browser.goto(&guard.launch_url()).await;
    assert_eq!(browser.text(r#"[data-count="scheduled"]"#).await, "1");

    // The Schedules page lists it: the expression as written and in words.
    click(&browser, r#"nav a[href="/schedules"]"#).await;
    assert_eq!(browser.text("h1").await, "Schedules");
    let row = browser.text(&format!(r#"tr[data-schedule="{id}"]"#)).await;
    assert!(
        row.contains("cron(0 9 ? * MON-FRI *)") && row.contains("Europe/Paris"),
        "{row}"
    );
    assert!(row.contains(owner) && row.contains("active"), "{row}");
    browser.screenshot("schedules").await;

    // Its page: the next five fires; then its pause, confirmed.
    click(
        &browser,
        &format!(r#"tr[data-schedule="{id}"] a[href^="/schedules/{id}"]"#),
    )
    .await;
    assert_eq!(browser.text("h1").await, format!("Schedule {id}"));
    let fires = browser
        .client()
        .find_all(Locator::Css("[data-next-fires] li"))
        .await
        .unwrap();
    assert_eq!(fires.len(), 5);
    browser.screenshot("schedule").await;
    click(&browser, r#"a[href^="/confirm?action=pause"]"#).await;
    assert_eq!(browser.text("h1").await, "Pause this schedule?");
    browser.screenshot("schedule-pause-confirm").await;
    assert!(
        !schedules.get(owner, id).await.unwrap().unwrap().paused,
        "a confirmation page changes nothing"
    );
    click(&browser, "button.primary").await;
    assert_eq!(
        browser.text("[data-outcome]").await,
        "The schedule is paused: its timer is disabled."
    );
    assert!(schedules.get(owner, id).await.unwrap().unwrap().paused);
    assert!(
        !timers.get(&timer).await.unwrap().unwrap().enabled,
        "the timer in EventBridge Scheduler is disabled"
    );

    // Triggered while paused: one job of the schedule's.
    click(&browser, &format!(r#"a[href^="/schedules/{id}"]"#)).await;
    assert_eq!(browser.text("[data-paused]").await, "paused");
    click(&browser, r#"a[href^="/confirm?action=trigger"]"#).await;
    assert_eq!(browser.text("h1").await, "Trigger this schedule now?");
    click(&browser, "button.primary").await;
    let outcome = browser.text("[data-outcome]").await;
    assert!(outcome.starts_with("The schedule fired: job "), "{outcome}");
    browser.screenshot("schedule-triggered").await;
    let fired = schedules
        .get(owner, id)
        .await
        .unwrap()
        .unwrap()
        .last_fire
        .expect("the trigger is recorded as its last fire");
    let job = env
        .store()
        .get(fired.job_id)
        .await
        .unwrap()
        .expect("the fired job");
    assert_eq!(job.schedule_id, Some(id.to_string()));
    assert_eq!(
        (job.owner.as_str(), job.job_type.as_str()),
        (owner, "primes")
    );
    assert!(outcome.contains(&fired.job_id.to_string()), "{outcome}");
    let (status, listed) = call_api(
        &stack,
        "GET",
        &format!("/jobs?scheduleId={id}"),
        json!(null),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["jobs"][0]["jobId"], fired.job_id.to_string());

    // The Scheduled tab: the delayed job, when it runs, and Run now.
    browser.goto(&format!("{base}/jobs?state=scheduled")).await;
    assert_eq!(browser.text("h1").await, "Jobs: scheduled");
    let run_at = browser
        .text(&format!(r#"tr[data-job="{delayed}"] [data-run-at]"#))
        .await;
    assert!(run_at == "in 59m" || run_at == "in 1h00m", "{run_at}");
    browser.screenshot("jobs-scheduled").await;
    click(
        &browser,
        &format!(r#"a[href="/confirm?action=run&job={delayed}"]"#),
    )
    .await;
    assert_eq!(browser.text("h1").await, "Run this job now?");
    click(&browser, "button.primary").await;
    assert_eq!(
        browser.text("[data-outcome]").await,
        "The job is queued and sent to the jobs queue now."
    );
    assert_eq!(
        env.store().get(delayed).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert!(
        timers.get(&delayed_timer).await.unwrap().is_none(),
        "its one-time timer is deleted"
    );

    browser.close().await;
    let _ = stop_console.send(());
    env.cleanup().await;
}
