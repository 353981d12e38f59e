//! A job reading a large upload, on the real binary against the emulator:
//! `jobline-local serve` killed with SIGKILL in the middle of the file, the
//! next process resumes from the job's checkpoint (a ranged read from its
//! offset, not the start) and the result equals a one-pass run's.

use jobline_testkit::contract::files::declare;
use jobline_tests::TestEnv;
use jobline_tests::http::call;
use jobline_tests::process::Runner;
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
        &["--batching-window-secs", "0"],
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
    let env = TestEnv::new().await;
    let text = document(2_500_000);
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

    // Killed once a checkpoint past the start is written, well before the end.
    let at_kill = env
        .until(id, 120, |job| {
            job.checkpoint_at.is_some() && job.progress.as_ref().is_some_and(|p| p.fraction > 0.1)
        })
        .await;
    first.kill();
    let fraction = at_kill.progress.as_ref().map_or(0.0, |p| p.fraction);
    assert!(
        fraction < 0.9,
        "killed too late to resume mid-file: {fraction}"
    );

    let second = start(&env);
    let done = env.until(id, 180, |job| job.state.is_finished()).await;
    let mut expected = jobline_jobs::csv_stats::summarise(&text).unwrap();
    expected["bytes"] = json!(body.len());
    assert_eq!(done.result, Some(expected), "{done:?}");
    assert!(done.attempts >= 2, "{done:?}");
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
        "csv-stats over {} MB: killed at {:.0} %, resumed at byte {}",
        body.len() / 1_000_000,
        fraction * 100.0,
        resumed[0]
    );
    drop(second);
    env.cleanup().await;
}
