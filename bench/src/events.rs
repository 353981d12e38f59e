//! The job every benchmark submits, and the Lambda events that carry it.
//!
//! The job is deliberately tiny (`primes` up to 1,000, microseconds of work)
//! so that what is measured is Jobline's overhead per job, not the job.
//! The API event is `events/api-submit.json` (the sample `cargo lambda
//! invoke` uses) with this job as its body; the worker event is the
//! `SqsEvent` the local poller builds, so both match what the functions get
//! from API Gateway and from the SQS event source mapping.

use aws_lambda_events::event::sqs::SqsEvent;
use jobline_core::queue::ReceivedMessage;
use jobline_core::{JobId, JobMessage, JobRequest};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The sample API Gateway (HTTP API, payload v2) event for `POST /jobs`.
const API_SUBMIT_EVENT: &str = include_str!("../../events/api-submit.json");

/// The region and account of the queue ARN in worker events.
pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:jobline-bench";

/// The benchmark job: `primes` up to 1,000.
pub fn job_request() -> JobRequest {
    JobRequest {
        job_type: "primes".to_owned(),
        payload: json!({"upTo": 1000}),
        callback_url: None,
    }
}

/// The `POST /jobs` body of the benchmark job.
pub fn submit_body() -> String {
    let request = job_request();
    json!({"type": request.job_type, "payload": request.payload}).to_string()
}

/// The API Gateway event of a `POST /jobs` of the benchmark job.
pub fn api_submit_event() -> Result<Value, serde_json::Error> {
    let mut event: Value = serde_json::from_str(API_SUBMIT_EVENT)?;
    event["body"] = Value::String(submit_body());
    Ok(event)
}

/// A `POST /jobs` of the benchmark job, as the local server hands it to
/// [`jobline_api::Api::handle`].
pub fn submit_request() -> Result<lambda_http::Request, http::Error> {
    http::Request::builder()
        .method("POST")
        .uri("/jobs")
        .header("host", "127.0.0.1:3000")
        .header("content-type", "application/json")
        .body(lambda_http::Body::from(submit_body()))
}

/// The SQS event of a first delivery of one message per job in `ids`.
pub fn sqs_batch_event(ids: &[JobId]) -> SqsEvent {
    let sent_at = jobline_core::Clock::system().now_ms().to_string();
    let messages: Vec<ReceivedMessage> = ids
        .iter()
        .map(|&job_id| ReceivedMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            receipt_handle: format!("receipt-{job_id}"),
            body: JobMessage::new(job_id).encode(),
            md5_of_body: String::new(),
            attributes: HashMap::from([
                ("ApproximateReceiveCount".to_owned(), "1".to_owned()),
                ("SentTimestamp".to_owned(), sent_at.clone()),
            ]),
            message_attributes: HashMap::new(),
        })
        .collect();
    jobline_local::poller::sqs_event(&messages, QUEUE_ARN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_event_carries_the_benchmark_job() {
        let event = api_submit_event().unwrap();
        assert_eq!(event["routeKey"], "POST /jobs");
        let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"type": "primes", "payload": {"upTo": 1000}}));
        assert!(
            jobline_jobs::builtin()
                .get("primes")
                .unwrap()
                .validate(&body["payload"])
                .is_ok()
        );
    }

    #[test]
    fn worker_events_carry_one_job_message_per_record() {
        let ids = [JobId::random(), JobId::random()];
        let event = sqs_batch_event(&ids);
        assert_eq!(event.records.len(), 2);
        let body = event.records[1].body.as_deref().unwrap();
        assert_eq!(JobMessage::decode(body).unwrap().job_id, ids[1]);
        assert_eq!(event.records[0].attributes["ApproximateReceiveCount"], "1");
        assert_eq!(event.records[0].aws_region.as_deref(), Some("us-east-1"));
    }
}
