//! `jobline-local serve` as a process, against the emulator: SIGTERM while a
//! batch is being worked lets the batch finish and its message be deleted,
//! then the process exits 0.

use jobline_shared::job::now_ms;
use jobline_shared::provision;
use jobline_shared::{JobId, JobMessage, JobQueue, JobRecord, JobRequest, JobState, JobStore};
use jobline_tests::TestEnv;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_during_a_batch_finishes_it_and_deletes_its_message() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut server = Command::new(env!("CARGO_BIN_EXE_jobline-local"))
        .args(["serve", "--port", "0", "--pollers", "1"])
        .args(["--batching-window-secs", "0"])
        .env("JOBS_TABLE", &env.table)
        .env("JOBS_QUEUE_URL", &env.queues.queue_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start jobline-local");
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("Jobline API on http://"), "{banner:?}");
    // The rest of stdout is the worker's EMF metrics: keep the pipe open.
    let metrics = std::thread::spawn(move || stdout.lines().count());

    // A large primes job: seconds in a debug build, long enough to be caught running.
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 20_000_000}),
    };
    let job = JobRecord::new_queued(JobId::random(), "anonymous", &request, now_ms(), 1);
    env.store().create(&job).await.unwrap();
    env.queue()
        .send(&JobMessage { job_id: job.id })
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let state = env.store().get(job.id).await.unwrap().unwrap().state;
        assert!(
            !state.is_finished(),
            "the job finished before the stop could catch it"
        );
        if state == JobState::Running {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exited = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success(), "exit status {exited}");
    assert!(
        metrics.join().unwrap() >= 1,
        "the batch's metrics were written"
    );

    let done = env.store().get(job.id).await.unwrap().unwrap();
    assert_eq!(
        done.state,
        JobState::Succeeded,
        "the batch in hand finished"
    );
    let attributes = provision::queue_attributes(&env.clients.sqs, &env.queues.queue_url)
        .await
        .unwrap();
    for count in [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    ] {
        assert_eq!(attributes[count], "0", "{count}: the message was deleted");
    }
    env.cleanup().await;
}
