//! A job reading a large upload, on the real binary against the emulator:
//! `jobline-local serve` killed with SIGKILL in the middle of the file, the
//! next process resumes from the job's checkpoint (a ranged read from its
//! offset, not the start) and the result equals a one-pass run's.
//!
//! The queue's visibility timeout is 6 s and the function's 3 s, as in
//! `long_jobs.rs`: a runner killed while long-polling leaves its poll open
//! in the emulator, which may swallow the job's message for a visibility
//! timeout; and a 3 s invocation makes the job go on across
//! continuations, each resuming from its checkpoint too.

/// The queue's visibility timeout here.
const VISIBILITY_SECS: u32 = 6;

use jobline_core::ReadStore;
use jobline_testkit::contract::files::declare;
use jobline_tests::http::call;
use jobline_tests::process::Runner;
use jobline_tests::{TestEnv, test_queue_settings};
use serde_json::{Value, json};

fn start(env: &TestEnv) -> Runner {
    let bucket = env
        .config
        .results_bucket
        .clone()
        .expect("the test's bucket");
    Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        env,
        &[
            "--batching-window-secs",
            "0",
            "--function-timeout-secs",
            "3",
        ],
        &[
            ("HEARTBEAT_SECS", "1"),
            ("RESULTS_BUCKET", &bucket),
            ("RUST_LOG", "info"),
            ("LOG_FORMAT", "json"),
        ],
        None,
    )
}

/// A CSV of `rows` rows of three columns.
fn document(rows: u32) -> String {
    let mut text = String::from("id,price,qty\n");
    for n in 0..rows {
        text.push_str(&format!("{n},{}.{},{}\n", n % 997, n % 100, n % 31));
    }
    text
}

#[tokio::test]
async fn a_file_job_killed_mid_file_resumes_from_its_checkpoint_to_the_one_pass_result() {
    jobline_tests::require_emulator!();
    let env = TestEnv::with_settings(test_queue_settings(VISIBILITY_SECS, 5)).await;
    let text = document(4_000_000);
    let body = text.as_bytes().to_vec();
    let mut first = start(&env);

    let declared = json!(declare(&body, "text/csv"));
    let (status, upload) = call(first.addr, "POST", "/uploads", None, Some(&declared))
        .await
        .unwrap();
    assert_eq!(status, 201, "{upload}");
    let headers: Vec<(String, String)> = upload["upload"]["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    let url = upload["upload"]["url"].as_str().unwrap();
    let (status, answer) = jobline_tests::http::put(url, &headers, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let request =
        json!({"type": "csv-stats", "payload": {"input": {"upload": upload["uploadId"]}}});
    let (status, accepted) = call(first.addr, "POST", "/jobs", None, Some(&request))
        .await
        .unwrap();
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["jobId"].as_str().unwrap().parse().unwrap();

    // Killed as soon as a checkpoint past the start is written (at the
    // first heartbeat or continuation), well before the end.
    env.until(id, 120, |job| {
        job.checkpoint_at.is_some() || job.state.is_finished()
    })
    .await;
    first.kill();
    let at_kill = env.store().get(id).await.unwrap().expect("the job");
    assert!(
        !at_kill.state.is_finished(),
        "finished before the kill: {at_kill:?}"
    );

    let second = start(&env);
    let done = env.until(id, 180, |job| job.state.is_finished()).await;
    let mut expected = jobline_jobs::csv_stats::summarise(&text).unwrap();
    expected["bytes"] = json!(body.len());
    assert_eq!(done.result, Some(expected), "{done:?}");
    assert!(done.attempts >= 2, "{done:?}");
    assert!(!done.dead_lettered, "{done:?}");
    let resumed: Vec<u64> = second
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["msg"] == "csv-stats resumes mid-file from its checkpoint")
        .filter_map(|line| line["offset"].as_u64())
        .collect();
    assert!(
        resumed
            .first()
            .is_some_and(|offset| *offset > 0 && *offset < body.len() as u64),
        "the second process resumed mid-file: {resumed:?}\n{}",
        second.log()
    );
    println!(
        "csv-stats over {} MB: killed after its first checkpoint, resumed at byte {}",
        body.len() / 1_000_000,
        resumed[0]
    );
    drop(second);
    env.cleanup().await;
}
