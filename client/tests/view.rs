//! The client's `Job` against the API's own views of a job
//! (`jobline_core::view::job_view` and `job_summary`, which `GET /jobs/{id}`,
//! `GET /jobs` and the webhook events answer with): every field the API
//! writes is read, with its value, and written back the same, so a field
//! added to the views and not to `Job` fails here.

use jobline_client::webhooks::Event;
use jobline_client::{DeliveryState, Job, JobState, ScheduleId};
use jobline_core::JobRecord;
use jobline_core::job::{DeliveryState as CoreDeliveryState, Progress, WebhookDelivery, format_ms};
use jobline_core::view::{job_summary, job_view};
use jobline_testkit::testing::{job, now_ms};
use serde_json::{Value, json};

/// A record with every field a view shows set, none to its default.
fn full_record(now: i64) -> JobRecord {
    let mut record = job("csv-stats")
        .state(JobState::Failed)
        .created_at(now - 10_000)
        .started_at(now - 9_000)
        .run_started_at(now - 8_000)
        .finished_at(now - 1_000)
        .attempts(3)
        .result(json!({"rows": 2}))
        .error("the CSV has no header")
        .dead_lettered(true)
        .discarded(true)
        .replays(2)
        .cancel_requested(true)
        .callback_url("https://example.com/hook")
        .build();
    record.progress = Some(Progress::new(0.42, "counted 42 of 100", now - 2_000));
    record.checkpoint_at = Some(now - 1_500);
    record.continuations = 4;
    record.webhook = Some(WebhookDelivery {
        for_finished_at: now - 1_000,
        state: CoreDeliveryState::Failed,
        attempts: 8,
        last_status: Some(500),
        at_ms: now - 500,
    });
    record.run_at = Some(now - 9_500);
    record.schedule_id = Some(ScheduleId::random().to_string());
    record
}

/// `Job` read from `view`, checked to write back exactly `view`.
fn read_back(view: &Value) -> Job {
    let job: Job = serde_json::from_value(view.clone()).unwrap();
    assert_eq!(
        &serde_json::to_value(&job).unwrap(),
        view,
        "a field of the view is not in Job"
    );
    job
}

#[test]
fn job_carries_every_field_of_the_apis_job_view() {
    let now = now_ms();
    let record = full_record(now);
    let job = read_back(&job_view(&record, now));

    assert_eq!(job.job_id, record.id);
    assert_eq!(job.job_type, "csv-stats");
    assert_eq!(job.status, JobState::Failed);
    assert_eq!(job.created_at, format_ms(now - 10_000));
    assert_eq!(job.started_at, Some(format_ms(now - 9_000)));
    assert_eq!(job.run_started_at, Some(format_ms(now - 8_000)));
    assert_eq!(job.finished_at, Some(format_ms(now - 1_000)));
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error.as_deref(), Some("the CSV has no header"));
    assert!(job.dead_lettered);
    assert!(job.discarded);
    assert_eq!(job.replays, 2);
    let progress = job.progress.as_ref().unwrap();
    assert_eq!(progress.fraction, 0.42);
    assert_eq!(progress.message, "counted 42 of 100");
    assert_eq!(progress.updated_at, format_ms(now - 2_000));
    assert!(job.cancel_requested);
    assert_eq!(job.checkpoint_at, Some(format_ms(now - 1_500)));
    assert_eq!(job.continuations, 4);
    assert_eq!(
        job.callback_url.as_deref(),
        Some("https://example.com/hook")
    );
    let webhook = job.webhook.as_ref().unwrap();
    assert_eq!(webhook.state, DeliveryState::Failed);
    assert_eq!(webhook.attempts, 8);
    assert_eq!(webhook.last_status, Some(500));
    assert_eq!(webhook.updated_at, Some(format_ms(now - 500)));
    assert_eq!(job.run_at, Some(format_ms(now - 9_500)));
    assert_eq!(job.schedule_id.map(|id| id.to_string()), record.schedule_id);
    assert_eq!(job.result, Some(json!({"rows": 2})));
    assert_eq!(job.result_url, None);
}

#[test]
fn job_reads_a_fresh_job_and_the_summary_of_a_listing() {
    let now = now_ms();
    // A queued job: every optional field null, the webhook pending.
    let fresh = job("primes")
        .callback_url("https://example.com/hook")
        .build();
    let job = read_back(&job_view(&fresh, now));
    assert_eq!(job.status, JobState::Queued);
    assert_eq!(
        (job.started_at, job.progress, job.result),
        (None, None, None)
    );
    assert_eq!(job.webhook.unwrap().state, DeliveryState::Pending);

    // A page of `GET /jobs` lists summaries: the view without `result`.
    let record = full_record(now);
    let summary = job_summary(&record, now);
    assert!(summary.get("result").is_none());
    let job: Job = serde_json::from_value(summary.clone()).unwrap();
    assert_eq!(job.result, None);
    let mut written = serde_json::to_value(&job).unwrap();
    written.as_object_mut().unwrap().remove("result");
    assert_eq!(written, summary);

    // What `GET /jobs/{id}` adds to the view: a large result's link, the
    // uploads the job names, and the files it wrote.
    let mut view = job_view(&record, now);
    view["resultUrl"] = json!("https://bucket.s3.amazonaws.com/results/1?X-Amz-Signature=s");
    view["inputs"] = json!([{"uploadId": "0193f0a4-0000-7000-8000-00000000beef", "size": 27,
                             "contentType": "text/csv", "sha256": "ab".repeat(32)}]);
    view["outputs"] = json!([{"name": "thumb.png", "size": 4096, "url": "https://b/o?sig=s",
                              "urlExpiresAt": format_ms(now + 900_000)}]);
    let job = read_back(&view);
    assert!(job.result_url.is_some());
    assert_eq!(job.inputs.unwrap()[0].content_type, "text/csv");
    assert_eq!(job.outputs.unwrap()[0].size, 4096);
}

#[test]
fn a_webhook_events_data_is_a_job() {
    let now = now_ms();
    let record = full_record(now);
    // As the notifier writes it: the view without the webhook's own state.
    let mut data = job_view(&record, now - 1_000);
    data.as_object_mut().unwrap().remove("webhook");
    let body = json!({"type": "job.failed", "timestamp": format_ms(now - 1_000), "data": data});
    let event = Event::parse(body.to_string().as_bytes()).unwrap();
    assert_eq!(event.event_type, "job.failed");
    assert_eq!(event.data.job_id, record.id);
    assert_eq!(event.data.webhook, None);
}
