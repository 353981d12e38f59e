//! Long jobs on the real binary against the emulator: heartbeats, short
//! leases, progress, continuations across kills, and cancellation with the
//! API and the worker in separate processes.
//!
//! The heartbeat is 1 s here (10 s deployed), so a lease lasts 3 s and a
//! message is hidden 4 s at a time; the queue's own visibility timeout is a
//! minute, so anything that comes back sooner came back because of the
//! short lease, not the queue's timeout. (The continuation test alone uses a
//! 6 s queue: a runner killed while long-polling leaves its poll open in the
//! emulator, which swallows the next new message for a visibility timeout.)

use jobline_core::queue::Receive;
use jobline_core::{JobId, JobQueue, JobRecord, JobState, ReadStore};
use jobline_tests::process::Runner;
use jobline_tests::{TestEnv, test_queue_settings};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The queue's visibility timeout in these tests.
const VISIBILITY_SECS: u32 = 60;
/// The queue's visibility timeout in the continuation test.
const SHORT_VISIBILITY_SECS: u32 = 6;
/// Deliveries before the DLQ in these tests.
const MAX_RECEIVE_COUNT: u32 = 3;

/// A runner with a 1 s heartbeat, a function timeout of half the queue's
/// visibility timeout `visibility_secs`, and JSON logs at `info` (one line
/// per record it handles); `args` added (`--pollers 0`: the API alone).
fn start(env: &TestEnv, visibility_secs: u32, args: &[&str]) -> Runner {
    let timeout = (visibility_secs / 2).to_string();
    let mut all = vec![
        "--batching-window-secs",
        "0",
        "--function-timeout-secs",
        &timeout,
    ];
    all.extend_from_slice(args);
    Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        env,
        &all,
        &[
            ("HEARTBEAT_SECS", "1"),
            ("MAX_RECEIVE_COUNT", "3"),
            ("RUST_LOG", "info"),
            ("LOG_FORMAT", "json"),
        ],
        None,
    )
}

async fn env(visibility_secs: u32) -> TestEnv {
    TestEnv::with_settings(test_queue_settings(visibility_secs, MAX_RECEIVE_COUNT)).await
}

/// Submits `request` through `runner`'s API; its job id.
async fn submit(runner: &Runner, request: Value) -> JobId {
    let (status, body) =
        jobline_tests::http::post_jobs(runner.addr, request.to_string().as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    body["jobId"].as_str().unwrap().parse().unwrap()
}

/// `POST /jobs/{id}/cancel` through `runner`'s API.
async fn cancel(runner: &Runner, id: JobId) -> (u16, Value) {
    let request = format!(
        "POST /jobs/{id}/cancel HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\
         connection: close\r\n\r\n"
    );
    jobline_tests::http::exchange(runner.addr, request.as_bytes()).await
}

async fn record(env: &TestEnv, id: JobId) -> JobRecord {
    env.store().get(id).await.unwrap().expect("the job exists")
}

/// The worker's outcome lines for job `id` in `log` (JSON lines):
/// `(messageId, outcome)` in order.
fn outcomes(log: &str, id: JobId) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["msg"] == "job outcome" && line["jobId"] == id.to_string())
        .map(|line| {
            (
                line["messageId"].as_str().unwrap_or_default().to_owned(),
                line["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Job `id`'s outcome lines in `runner`'s log, once there is one (within 10 s).
async fn logged_outcomes(runner: &Runner, id: JobId) -> Vec<(String, String)> {
    let started = Instant::now();
    loop {
        let found = outcomes(&runner.log(), id);
        if !found.is_empty() || started.elapsed() > Duration::from_secs(10) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_long_job_is_never_delivered_twice_and_a_killed_ones_runs_again_within_two_beats() {
    jobline_tests::require_emulator!();
    let env = env(VISIBILITY_SECS).await;
    let mut runner = start(&env, VISIBILITY_SECS, &[]);

    // Twelve seconds: three times the message's 4 s visibility.
    let long = submit(
        &runner,
        json!({"type": "sleep", "payload": {"seconds": 12}}),
    )
    .await;
    let running = env
        .until(long, 20, |job| {
            job.progress.as_ref().is_some_and(|p| p.fraction > 0.0)
        })
        .await;
    assert_eq!(running.state, JobState::Running);
    let (status, view) = jobline_tests::http::get(runner.addr, &format!("/jobs/{long}")).await;
    assert_eq!(status, 200);
    assert!(
        view["progress"]["fraction"].as_f64().unwrap() > 0.0,
        "the API shows the progress: {view}"
    );
    assert!(
        view["progress"]["message"]
            .as_str()
            .unwrap()
            .starts_with("slept")
    );
    let done = env.until(long, 30, |job| job.state.is_finished()).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"slept": 12})));
    assert_eq!(done.attempts, 1);
    // The worker logs a delivery's outcome once it has acknowledged it,
    // just after the job's final write.
    let logged = logged_outcomes(&runner, long).await;
    assert_eq!(
        logged,
        [(logged[0].0.clone(), "succeeded".to_owned())],
        "one delivery, one outcome"
    );

    // Killed mid-run: the message comes back when the lease has run out,
    // within about two heartbeats, not after the queue's minute.
    let killed = submit(&runner, json!({"type": "sleep", "payload": {"seconds": 8}})).await;
    env.until(killed, 20, |job| job.progress.is_some()).await;
    runner.kill();
    let kill = Instant::now();
    let mut runner = start(&env, VISIBILITY_SECS, &[]);
    env.until(killed, 30, |job| job.attempts == 2).await;
    let rerun_after = kill.elapsed();
    println!("a killed worker's job ran again {rerun_after:?} after the kill (heartbeat 1 s)");
    assert!(
        rerun_after < Duration::from_secs(10),
        "{rerun_after:?}: not within a few heartbeats"
    );
    let done = env.until(killed, 30, |job| job.state.is_finished()).await;
    assert_eq!(done.state, JobState::Succeeded);
    runner.terminate().assert_clean();
    env.cleanup().await;
}

#[tokio::test]
async fn a_job_continues_past_the_receive_count_and_across_a_kill_to_the_right_result() {
    jobline_tests::require_emulator!();
    let env = env(SHORT_VISIBILITY_SECS).await;
    let mut first = start(&env, SHORT_VISIBILITY_SECS, &[]);
    // 11 chunks, one a run: 10 continuations, over three times
    // MAX_RECEIVE_COUNT.
    let request = json!({"type": "prime-count", "payload": {
        "upTo": 1_000_000, "chunk": 100_000, "chunksPerRun": 1
    }});
    let id = submit(&first, request).await;
    env.until(id, 60, |job| job.continuations >= 3).await;
    first.kill();
    let before_restart = record(&env, id).await;
    assert!(!before_restart.state.is_finished());
    let second = start(&env, SHORT_VISIBILITY_SECS, &[]);
    let done = env.until(id, 120, |job| job.state.is_finished()).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(
        done.result,
        Some(json!({"upTo": 1_000_000, "count": 78_498, "largest": 999_983}))
    );
    assert_eq!(done.continuations, 10);
    assert!(!done.dead_lettered);

    let mut receives: HashMap<String, usize> = HashMap::new();
    for (message, _) in outcomes(&first.log(), id)
        .into_iter()
        .chain(outcomes(&second.log(), id))
    {
        *receives.entry(message).or_default() += 1;
    }
    // A new message a run; the killed process may not have logged the one
    // it was handling.
    assert!(receives.len() >= 10, "{receives:?}");
    assert!(
        receives.values().all(|&count| count <= 2),
        "a message handled more than twice: {receives:?}"
    );
    let dead = env
        .dlq()
        .receive(Receive {
            max_messages: 10,
            wait_secs: 0,
            visibility_secs: 0,
        })
        .await
        .unwrap();
    assert!(dead.is_empty(), "nothing was dead-lettered: {dead:?}");
    drop(second);
    env.cleanup().await;
}

#[tokio::test]
async fn cancels_reach_queued_and_running_jobs_from_another_process() {
    jobline_tests::require_emulator!();
    let env = env(VISIBILITY_SECS).await;
    // The API alone: nothing runs the jobs yet.
    let api = start(&env, VISIBILITY_SECS, &["--pollers", "0"]);
    let queued = submit(&api, json!({"type": "primes", "payload": {"upTo": 10}})).await;
    let (status, view) = cancel(&api, queued).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "cancelled");

    // A CPU-bound job that would run for hours, in the worker's process.
    let mut worker = start(&env, VISIBILITY_SECS, &[]);
    let running = submit(
        &api,
        json!({"type": "prime-count", "payload": {"upTo": 1_000_000_000_000_u64}}),
    )
    .await;
    env.until(running, 30, |job| job.progress.is_some()).await;
    let (status, view) = cancel(&api, running).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "running");
    assert_eq!(view["cancelRequested"], true);
    let asked = Instant::now();
    let cancelled = env.until(running, 10, |job| job.state.is_finished()).await;
    assert!(worker.is_running(), "the handler stopped, not the process");
    let stopped_after = asked.elapsed();
    println!("a running CPU-bound job stopped {stopped_after:?} after its cancel (heartbeat 1 s)");
    assert_eq!(cancelled.state, JobState::Cancelled);
    // The bound: one heartbeat to learn of it, one chunk to stop, one write.
    assert!(
        stopped_after < Duration::from_secs(4),
        "{stopped_after:?}: not within a heartbeat and a chunk"
    );
    let (status, view) = cancel(&api, running).await;
    assert_eq!((status, &view["status"]), (200, &json!("cancelled")));

    // The queued job's message was acknowledged unrun.
    let acknowledged = Instant::now();
    while !outcomes(&worker.log(), queued)
        .iter()
        .any(|(_, outcome)| outcome == "duplicate")
    {
        assert!(
            acknowledged.elapsed() < Duration::from_secs(20),
            "{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued_job = record(&env, queued).await;
    assert_eq!(
        (queued_job.state, queued_job.attempts),
        (JobState::Cancelled, 0)
    );

    let done = submit(&api, json!({"type": "primes", "payload": {"upTo": 10}})).await;
    env.until(done, 30, |job| job.state.is_finished()).await;
    let (status, view) = cancel(&api, done).await;
    assert_eq!(status, 409, "{view}");
    assert_eq!(view["error"]["status"], "succeeded");
    worker.terminate();
    env.cleanup().await;
}
