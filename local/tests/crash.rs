//! `jobline-local serve` killed with SIGKILL in the middle of a batch, then
//! started again, against the emulator: every job still ends `succeeded`
//! with its own result, a job finished before the crash is not run again,
//! an interrupted one is claimed again (once, or twice when that retry is
//! cut short), and the queue ends empty. Prints the recovery time (kill → every job finished).
//!
//! The queue's visibility timeout and the function timeout are 6 s here
//! (360 s and 60 s deployed), so a crashed attempt's message and lease run
//! out within seconds.

use jobline_core::limits::QueueSettings;
use jobline_core::{JobId, JobRecord, JobState, ReadStore};
use jobline_local::provision;
use jobline_tests::faults::{Fault, FaultPlan, FaultProxy, FaultRates};
use jobline_tests::process::Runner;
use jobline_tests::{TestEnv, test_queue_settings};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const TIMEOUT_SECS: u32 = 6;

/// Fast recovery: 6 s visibility and function timeouts, one batch of 10
/// per poller all running at once, retries after 1 s.
fn start(env: &TestEnv) -> Runner {
    let timeout = TIMEOUT_SECS.to_string();
    Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        env,
        &[
            "--pollers",
            "2",
            "--batching-window-secs",
            "0",
            "--function-timeout-secs",
            &timeout,
        ],
        &[
            ("WORKER_CONCURRENCY", "10"),
            ("RETRY_BASE_DELAY_SECONDS", "1"),
            ("RETRY_MAX_DELAY_SECONDS", "1"),
        ],
        None,
    )
}

/// The jobs and the result each must end with: 24 three-second sleeps (long
/// enough that a job seen running is still running when the kill lands, on
/// a busy machine too) and 6 prime counts.
fn jobs() -> Vec<(Value, Value)> {
    let sleeps = (0..24).map(|_| {
        (
            json!({"type": "sleep", "payload": {"seconds": 3}}),
            json!({"slept": 3}),
        )
    });
    let primes = [
        (10_000, 1_229, 9_973),
        (100_000, 9_592, 99_991),
        (1_000_000, 78_498, 999_983),
    ]
    .into_iter()
    .cycle()
    .take(6)
    .map(|(up_to, count, largest)| {
        (
            json!({"type": "primes", "payload": {"upTo": up_to}}),
            json!({"upTo": up_to, "count": count, "largest": largest}),
        )
    });
    sleeps.chain(primes).collect()
}

/// The jobs `ids`, in order, read concurrently (a snapshot within a few
/// milliseconds).
async fn records(env: &TestEnv, ids: &[JobId]) -> Vec<JobRecord> {
    let store = Arc::new(env.store());
    let mut reads = JoinSet::new();
    for (index, id) in ids.iter().copied().enumerate() {
        let store = Arc::clone(&store);
        reads.spawn(async move { (index, store.get(id).await) });
    }
    let mut records = reads.join_all().await;
    records.sort_by_key(|(index, _)| *index);
    records
        .into_iter()
        .map(|(_, read)| read.expect("read a job").expect("stored"))
        .collect()
}

#[tokio::test]
async fn a_killed_runner_loses_no_job_and_repeats_none_that_finished() {
    jobline_tests::require_emulator!();
    let env = TestEnv::with_settings(test_queue_settings(
        TIMEOUT_SECS,
        QueueSettings::TEMPLATE.max_receive_count,
    ))
    .await;
    let mut runner = start(&env);

    let mut expected = HashMap::new();
    let mut ids = Vec::new();
    for (request, result) in jobs() {
        let (status, body) =
            jobline_tests::http::post_jobs(runner.addr, request.to_string().as_bytes()).await;
        assert_eq!(status, 202, "{body}");
        let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
        ids.push(id);
        expected.insert(id, result);
    }

    // Kill once some jobs have finished and a three-second sleep (the first
    // 24 jobs) started less than 1.5 s ago, so it is still running when the
    // kill lands: a batch of sleeps starts together and ends together, so a
    // sleep seen running as the first ones succeed may be done by then.
    let started = Instant::now();
    loop {
        let snapshot = records(&env, &ids).await;
        let now = jobline_core::Clock::system().now_ms();
        let fresh_sleep = snapshot[..24].iter().any(|job| {
            job.state == JobState::Running && job.started_at.is_some_and(|at| now - at < 1_500)
        });
        let states: Vec<JobState> = snapshot.iter().map(|j| j.state).collect();
        if fresh_sleep && states.contains(&JobState::Succeeded) {
            break;
        }
        assert!(
            states.iter().any(|s| !s.is_finished()),
            "every job finished before the kill could interrupt one"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "nothing ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    runner.kill();
    let killed = Instant::now();

    // The process is gone, so this is exactly what it left behind.
    let at_kill = records(&env, &ids).await;
    let count = |state| at_kill.iter().filter(|j| j.state == state).count();
    let (running, succeeded, queued) = (
        count(JobState::Running),
        count(JobState::Succeeded),
        count(JobState::Queued),
    );
    assert!(running > 0, "no attempt was interrupted");
    assert!(succeeded > 0, "no job had finished");
    assert_eq!(running + succeeded + queued, ids.len(), "{at_kill:?}");

    let mut runner = start(&env);
    let finished = loop {
        let now = records(&env, &ids).await;
        if now.iter().all(|j| j.state.is_finished()) {
            break now;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(45),
            "not recovered 45 s after the kill: {:?}\n{}",
            now.iter().map(|j| j.state).collect::<Vec<_>>(),
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovery = killed.elapsed();

    for (before, after) in at_kill.iter().zip(&finished) {
        assert_eq!(after.state, JobState::Succeeded, "{after:?}");
        assert_eq!(
            after.result.as_ref(),
            Some(&expected[&after.id]),
            "{after:?}"
        );
        match before.state {
            // Finished before the crash: not run again, not touched.
            JobState::Succeeded => assert_eq!(after, before, "a finished job was run again"),
            // Interrupted: claimed again, usually once. A second time
            // when that retry is itself cut short, as an emulator slowed
            // by the restart can make it: its claim comes late and the 3 s
            // sleep outruns this test's 6 s invocation deadline. Either
            // way the job succeeds once, with its one result.
            JobState::Running => {
                let again = after.attempts - before.attempts;
                assert!((1..=2).contains(&again), "{after:?}");
                if again == 2 {
                    println!(
                        "job {} was claimed twice after the kill (its first retry was cut short)",
                        after.id
                    );
                }
            }
            // Never claimed (its message was waiting, or hidden by the
            // dead poller): claimed once.
            _ => assert_eq!(after.attempts, 1, "{after:?}"),
        }
    }
    // And the client sees the same: each job once, succeeded, its result.
    for id in &ids {
        let (status, view) = jobline_tests::http::get(runner.addr, &format!("/jobs/{id}")).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_eq!(view["result"], expected[id], "{view}");
    }

    // Every message deleted (the last deletions follow the last results by
    // a moment), none dead-lettered.
    let drained = Instant::now();
    loop {
        let attributes = provision::queue_attributes(&env.clients.sqs, &env.queues.queue_url)
            .await
            .unwrap();
        let left: u32 = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        .iter()
        .map(|name| attributes[*name].parse::<u32>().unwrap())
        .sum();
        if left == 0 {
            break;
        }
        assert!(
            drained.elapsed() < Duration::from_secs(10),
            "{left} messages left on the queue: {attributes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dlq = provision::queue_attributes(&env.clients.sqs, &env.queues.dlq_url)
        .await
        .unwrap();
    assert_eq!(dlq["ApproximateNumberOfMessages"], "0", "{dlq:?}");
    assert!(runner.is_running(), "{}", runner.log());
    runner.terminate().assert_clean();

    // For RELIABILITY.md: past the test harness's capture, so it shows.
    use std::io::Write;
    drop(writeln!(
        std::io::stderr(),
        "crash recovery: {} jobs, SIGKILL with {running} running, {queued} queued, \
         {succeeded} succeeded; all succeeded {:.1} s after the kill \
         (visibility and function timeouts {TIMEOUT_SECS} s)",
        ids.len(),
        recovery.as_secs_f64()
    ));
    env.cleanup().await;
}

#[tokio::test]
async fn a_function_timeout_over_the_visibility_timeout_is_refused() {
    jobline_tests::require_emulator!();
    let env = TestEnv::with_settings(test_queue_settings(
        TIMEOUT_SECS,
        QueueSettings::TEMPLATE.max_receive_count,
    ))
    .await;
    let over = (TIMEOUT_SECS + 1).to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jobline-local"))
        .args(["serve", "--port", "0", "--function-timeout-secs", &over])
        .env("JOBS_TABLE", &env.table)
        .env("JOBS_QUEUE_URL", &env.queues.queue_url)
        .output()
        .expect("run jobline-local");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--function-timeout-secs") && stderr.contains(&format!("({over} s)")),
        "{stderr}"
    );
    env.cleanup().await;
}

/// `POST /jobs` with an `Idempotency-Key`, as a client that retries sends it.
fn keyed_submission(key: &str, body: &str) -> String {
    format!(
        "POST /jobs HTTP/1.1\r\nhost: test\r\nidempotency-key: {key}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Killed between a submission's `PutItem` and its `SendMessage`, the
/// runner leaves a `queued` job with no message; the client got no answer
/// and retries with the same `Idempotency-Key`. The job must then run.
/// (The API sends again when a replay finds its job still `queued` with no
/// attempt; before that, the retry was answered 202 without a send and the
/// job stayed `queued` for good.)
// Multi-threaded: the proxy must answer the runner while the test blocks
// on the runner's banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_write_and_send_is_healed_by_the_clients_retry() {
    jobline_tests::require_emulator!();
    // A short visibility timeout: a long poll the dead runner left open in
    // the emulator may still take the retry's message (as SQS would), which
    // then comes back after it.
    let env = TestEnv::with_settings(test_queue_settings(
        TIMEOUT_SECS,
        QueueSettings::TEMPLATE.max_receive_count,
    ))
    .await;
    let timeout = TIMEOUT_SECS.to_string();
    let moto = std::env::var(jobline_tests::ENDPOINT_VARIABLE).unwrap();
    // SendMessage is held 30 s: long enough to kill the runner inside it.
    let held = FaultRates::none()
        .with(Fault::Delay, 1.0)
        .with_delay(Duration::from_secs(30)..Duration::from_secs(31));
    let proxy = FaultProxy::start(
        "api",
        &moto,
        FaultPlan::uniform(FaultRates::none()).with_operation("SendMessage", held),
    )
    .await
    .unwrap();
    let endpoint = proxy.url();
    let mut runner = Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        &env,
        &["--function-timeout-secs", &timeout],
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            // The longest bound the API allows (four calls in its 10 s):
            // the runner is killed within milliseconds of the held call.
            ("API_AWS_TIMEOUT_MS", "2250"),
        ],
        None,
    );
    let key = "crash-between-write-and-send";
    let body = r#"{"type": "primes", "payload": {"upTo": 100}}"#;
    let mut first = tokio::net::TcpStream::connect(runner.addr).await.unwrap();
    first
        .write_all(keyed_submission(key, body).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    while !proxy.calls().iter().any(|c| c.operation == "SendMessage") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            proxy.calls()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runner.kill();
    // The dead runner's long polls, still open in the proxy, must not take
    // the message the retry sends (they would hide it for a visibility
    // timeout): the proxy dies with the process it served.
    drop(proxy);
    let mut answer = Vec::new();
    drop(first.read_to_end(&mut answer).await);
    assert!(answer.is_empty(), "the client got no answer");

    let id = JobId::from_idempotency_key("anonymous", key);
    let orphan = env
        .store()
        .get(id)
        .await
        .unwrap()
        .expect("the write landed");
    assert_eq!(orphan.state, JobState::Queued);
    assert!(!orphan.enqueue_failed);
    let attributes = provision::queue_attributes(&env.clients.sqs, &env.queues.queue_url)
        .await
        .unwrap();
    assert_eq!(
        attributes["ApproximateNumberOfMessages"], "0",
        "nothing was sent"
    );

    // The client retries, on a runner started again (straight to moto).
    let mut runner = start(&env);
    let (status, accepted) =
        jobline_tests::http::exchange(runner.addr, keyed_submission(key, body).as_bytes()).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["jobId"], id.to_string());
    let path = format!("/jobs/{id}");
    let started = Instant::now();
    loop {
        let (_, view) = jobline_tests::http::get(runner.addr, &path).await;
        if view["status"] == "succeeded" {
            break;
        }
        assert!(
            // The dead runner's open long poll (up to 20 s), then the
            // visibility timeout, then the job.
            started.elapsed() < Duration::from_secs(20 + 2 * u64::from(TIMEOUT_SECS) + 10),
            "the retried job never ran: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(runner.is_running(), "{}", runner.log());
    runner.terminate().assert_clean();
    env.cleanup().await;
}
