//! `jobline-local serve` as a process, against the emulator: SIGTERM while a
//! batch is being worked lets the batch finish and its message be deleted,
//! then the process exits 0.

use jobline_core::{JobState, ReadStore};
use jobline_local::provision;
use jobline_tests::TestEnv;
use jobline_tests::process::Runner;
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_during_a_batch_finishes_it_and_deletes_its_message() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut runner = Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        &env,
        &["--pollers", "1", "--batching-window-secs", "0"],
        &[],
        None,
    );

    // A large primes job: seconds in a debug build, long enough to be caught running.
    let (status, accepted) = jobline_tests::http::post_jobs(
        runner.addr,
        br#"{"type": "primes", "payload": {"upTo": 20000000}}"#,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let path = format!("/jobs/{}", accepted["jobId"].as_str().unwrap());
    let started = Instant::now();
    loop {
        let (status, view) = jobline_tests::http::get(runner.addr, &path).await;
        assert_eq!(status, 200, "{view}");
        match view["status"].as_str() {
            Some("running") => break,
            Some("queued") => {}
            _ => panic!("the job finished before the stop could catch it: {view}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never claimed: {}",
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(runner.is_running(), "{}", runner.log());
    // Exits 0, and the batch's metrics were written.
    runner.terminate().assert_clean();

    let done = env
        .store()
        .get(accepted["jobId"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
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
