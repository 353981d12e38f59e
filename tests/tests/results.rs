//! Results too large for the job item, against S3 and DynamoDB on the
//! emulator: a 20 MiB result is written to the results bucket, `GET
//! /jobs/{id}` hands out a presigned link that fetches it with no
//! credentials, and `DELETE /jobs/{id}` removes the object with the job.

use jobline_core::{JobTypes, ReadStore};
use jobline_tests::TestEnv;
use jobline_tests::fixtures::BigResult;
use lambda_http::Body;
use serde_json::Value;
use std::time::Duration;

/// The result's size: far over the item's 100 KiB, and over Lambda's 6 MB
/// response limit, which is why it must never pass through the API.
const RESULT_BYTES: usize = 20 * 1024 * 1024;

#[tokio::test]
async fn a_large_result_is_linked_fetched_and_deleted_with_its_job() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let types = JobTypes::new().with(BigResult(RESULT_BYTES));
    let api = env.api(types.clone());
    let worker = env.worker(types);

    let submit = http::Request::builder()
        .method("POST")
        .uri("/jobs")
        .body(Body::from(r#"{"type":"big"}"#))
        .unwrap();
    let accepted: Value =
        serde_json::from_slice(api.handle(submit).await.response.body().as_ref()).unwrap();
    let id = accepted["jobId"].as_str().unwrap().parse().unwrap();
    let poller = env.poller(worker, Duration::ZERO);
    jobline_tests::stack::poll_until_received(&poller, 10).await;

    let job = env.store().get(id).await.unwrap().unwrap();
    assert_eq!(job.result, None, "not in the item");
    let Some(key) = job.result_key.clone() else {
        panic!("the result should be stored apart: {job:?}");
    };

    let get = http::Request::builder()
        .uri(format!("/jobs/{id}"))
        .body(Body::Empty)
        .unwrap();
    let reply = api.handle(get).await;
    assert!(
        reply.response.body().len() < 4096,
        "the API answers with a link"
    );
    let view: Value = serde_json::from_slice(reply.response.body().as_ref()).unwrap();
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["result"], Value::Null);
    let link = view["resultUrl"].as_str().expect("a link to the result");
    assert!(link.contains("X-Amz-Signature="), "presigned: {link}");
    let (status, body) = jobline_tests::http::fetch(link).await;
    assert_eq!(status, 200);
    let fetched: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(fetched.as_str().map(str::len), Some(RESULT_BYTES));

    let delete = http::Request::builder()
        .method("DELETE")
        .uri(format!("/jobs/{id}"))
        .body(Body::Empty)
        .unwrap();
    assert_eq!(api.handle(delete).await.response.status(), 204);
    let bucket = env.config.results_bucket.clone().unwrap();
    let gone = env
        .clients
        .s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await;
    assert!(gone.is_err(), "the result's object is deleted with its job");
    assert_eq!(env.store().get(id).await.unwrap(), None);
    env.cleanup().await;
}
