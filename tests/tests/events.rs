//! Every sample event in `events/` parses as Lambda would deliver it and
//! gets the expected answer from its handler, against moto.

use aws_lambda_events::event::sqs::SqsEvent;
use http::StatusCode;
use jobline_core::{ApiStore, JobId, JobRecord, JobRequest, JobState, ReadStore};
use jobline_notifier::Notifier;
use jobline_sqs::SqsJobQueue;
use jobline_testkit::testing::now_ms;
use jobline_tests::TestEnv;
use jobline_webhooks::{Deliverer, FixedKeys, MasterKeys};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn event_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("events/ exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "events/ holds the sample events: {files:?}"
    );
    files
}

/// The status each API event must get.
fn expected_status(name: &str) -> StatusCode {
    match name {
        "api-submit.json" | "api-submit-idempotent.json" | "api-submit-iam-role.json" => {
            StatusCode::ACCEPTED
        }
        "api-submit-not-an-object.json" => StatusCode::UNPROCESSABLE_ENTITY,
        "api-submit-unauthenticated.json" => StatusCode::UNAUTHORIZED,
        "api-submit-invalid-json.json" => StatusCode::BAD_REQUEST,
        "api-submit-unknown-type.json" => StatusCode::UNPROCESSABLE_ENTITY,
        "api-status-unknown.json" | "api-cancel-unknown.json" => StatusCode::NOT_FOUND,
        other => panic!("events/{other} has no expectation in tests/tests/events.rs"),
    }
}

#[tokio::test]
async fn every_event_goes_through_its_handler() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let worker = env.worker(jobline_jobs::builtin());
    let (notify, _) = env.provision_webhooks().await;
    let notify_queue = SqsJobQueue::new(env.clients.sqs.clone(), &notify.queue_url);
    let notifier = Notifier::new(
        Arc::new(env.store()),
        Arc::new(notify_queue.clone()),
        Arc::new(FixedKeys(MasterKeys::new(b"k".repeat(32), None))),
        Deliverer::new(),
        &env.config.webhooks,
    );
    for path in event_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("api-") {
            let request = lambda_http::request::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not an API Gateway event: {e}"));
            let reply = api.handle(request).await;
            assert_eq!(reply.response.status(), expected_status(&name), "{name}");
            let body: serde_json::Value =
                serde_json::from_slice(reply.response.body().as_ref()).unwrap();
            if reply.response.status() == StatusCode::ACCEPTED {
                let url = body["statusUrl"].as_str().unwrap();
                assert!(
                    url.starts_with("https://abc123.execute-api.us-east-1.amazonaws.com/jobs/"),
                    "{name}: {url}"
                );
                let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
                let job = env.store().get(id).await.unwrap().unwrap();
                let owner = if name == "api-submit-iam-role.json" {
                    "iam:arn:aws:iam::123456789012:role/report-builder"
                } else {
                    "jwt:https://issuer.example.com/|user-123"
                };
                assert_eq!(job.owner, owner, "{name}");
            } else {
                assert!(body["error"]["message"].is_string(), "{name}: {body}");
            }
        } else if name.starts_with("worker-") {
            let event: SqsEvent = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not an SQS event: {e}"));
            // The first record names this job; the second is malformed.
            let id: JobId = "0192f3a4-5b6c-7d8e-9f01-23456789abcd".parse().unwrap();
            let request = JobRequest {
                job_type: "primes".into(),
                payload: json!({"upTo": 30}),
                callback_url: None,
            };
            let job = JobRecord::new_queued(id, "anonymous", &request, now_ms(), 1);
            env.store().create(&job).await.unwrap();
            let outcome = worker.process_batch(event, now_ms() + 30_000).await;
            let failed: Vec<&str> = outcome
                .response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            assert_eq!(failed, ["059f36b4-87a3-44ab-83d2-661975830a7d"], "{name}");
            let done = env.store().get(id).await.unwrap().unwrap();
            assert_eq!(done.state, JobState::Succeeded, "{name}");
            assert_eq!(
                done.result,
                Some(json!({"upTo": 30, "count": 10, "largest": 29}))
            );
        } else if name.starts_with("notifier-") {
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            let answer = notifier.handle(event).await;
            assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
            if name == "notifier-stream.json" {
                let relayed = jobline_tests::queued_messages(&notify_queue).await;
                let ids: Vec<String> = relayed.iter().map(|m| m.job_id.to_string()).collect();
                assert_eq!(
                    ids,
                    ["0192f3a4-5b6c-7d8e-9f01-23456789abce"],
                    "{name}: the final state only"
                );
            }
        } else if name.starts_with("fire-") {
            fire_event(&env, &name, &text).await;
        } else {
            panic!(
                "events/{name}: name it api-*, worker-*, notifier-* or fire-* so a test feeds it \
                 to its handler"
            );
        }
    }
    env.cleanup().await;
}

/// A fire event through the fire function's library: the delayed job it
/// names is sent, the schedule it names gets its one job for that time.
async fn fire_event(env: &TestEnv, name: &str, text: &str) {
    use jobline_api::fire::Fired;
    use jobline_core::schedule::{ScheduleId, ScheduleRecord, ScheduleSpec, fire_job_id};
    let parts = env.schedule_parts(10).await;
    let schedules = Arc::clone(&parts.store);
    let api = Arc::clone(
        env.stack(jobline_jobs::builtin())
            .schedules(parts)
            .build()
            .api(),
    );
    let input: serde_json::Value = serde_json::from_str(text).unwrap();
    let fired = if name == "fire-job.json" {
        let id: JobId = input["jobId"].as_str().unwrap().parse().unwrap();
        let request = JobRequest {
            job_type: "primes".into(),
            payload: json!({"upTo": 30}),
            callback_url: None,
        };
        let job = JobRecord::new_queued(id, "anonymous", &request, now_ms() - 2_000, 1)
            .delayed_until(now_ms() - 1_000);
        env.store().create(&job).await.unwrap();
        let fired = api.fire(text, &mut jobline_core::Metrics::new()).await;
        assert_eq!(
            fired.unwrap(),
            Fired::Sent {
                job_id: id,
                delay_secs: 0
            },
            "{name}"
        );
        id
    } else {
        let id: ScheduleId = input["scheduleId"].as_str().unwrap().parse().unwrap();
        let owner = input["owner"].as_str().unwrap();
        let mut schedule = ScheduleRecord::new(
            owner,
            ScheduleSpec {
                expression: "cron(0 9 ? * MON-FRI *)".into(),
                timezone: "Europe/Paris".into(),
                job_type: "primes".into(),
                payload: json!({"upTo": 30}),
                callback_url: None,
                overlap: Default::default(),
            },
            0,
        );
        schedule.id = id;
        schedules.create(&schedule).await.unwrap();
        let at = "2027-01-04T08:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let job = fire_job_id(id, at);
        let fired = api.fire(text, &mut jobline_core::Metrics::new()).await;
        assert_eq!(fired.unwrap(), Fired::Created { job_id: job }, "{name}");
        assert_eq!(env.store().get(job).await.unwrap().unwrap().owner, owner);
        job
    };
    let sent = jobline_tests::queued_messages(&env.queue()).await;
    assert!(
        sent.iter().any(|m| m.job_id == fired),
        "{name}: its message is sent"
    );
}
