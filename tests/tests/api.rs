//! The API handler against moto: submissions write a record and then send a
//! message; idempotency keys, bad input and sizes, ownership, expiry, the
//! backlog bound and 404s behave, the status shows discarded jobs, and 5xx
//! bodies keep AWS detail to the logs.

use aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use http::StatusCode;
use jobline_api::{ANONYMOUS_OWNER, Api, MAX_BODY_BYTES};
use jobline_core::store::DiscardOutcome;
use jobline_core::{
    ApiStore, JobId, JobMessage, JobQueue, JobRecord, JobRequest, JobState, Metric, OperatorStore,
    ReadStore, WorkerStore,
};
use jobline_testkit::testing::now_ms;
use jobline_tests::TestEnv;
use jobline_tests::identity::{as_iam, as_user, authorized};
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use std::sync::Arc;

fn post() -> http::request::Builder {
    http::Request::builder()
        .method("POST")
        .uri("/jobs")
        .header("host", "127.0.0.1:3000")
        .header("content-type", "application/json")
}

fn submit(body: &str) -> Request {
    post().body(Body::from(body.to_owned())).expect("request")
}

fn submit_with_key(body: &str, key: &str) -> Request {
    post()
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

fn get(path: &str) -> Request {
    http::Request::builder()
        .method("GET")
        .uri(path)
        .body(Body::Empty)
        .expect("request")
}

async fn call(api: &Api, request: Request) -> (StatusCode, http::HeaderMap, Value) {
    let reply = api.handle(request).await;
    let (parts, body) = reply.response.into_parts();
    let json = serde_json::from_slice(body.as_ref()).expect("a JSON body");
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn submit_writes_the_job_sends_its_id_and_answers_202() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut config = env.config.clone();
    config.public_base_url = Some("http://127.0.0.1:3000".into());
    let api = Api::new(
        Arc::new(env.store()),
        Arc::new(env.queue()),
        jobline_jobs::builtin(),
        &config,
    );
    let reply = api
        .handle(submit(r#"{"type":"primes","payload":{"upTo":100}}"#))
        .await;
    assert_eq!(reply.metrics.total(Metric::JobsAccepted), 1.0);
    let (parts, body) = reply.response.into_parts();
    assert_eq!(parts.status, StatusCode::ACCEPTED);
    let body: Value = serde_json::from_slice(body.as_ref()).unwrap();
    let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
    let url = format!("http://127.0.0.1:3000/jobs/{id}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["statusUrl"], url.as_str());
    assert_eq!(parts.headers["location"], url.as_str());
    assert_eq!(parts.headers["retry-after"], "2");

    let job = env.store().get(id).await.unwrap().expect("job record");
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.job_type, "primes");
    assert_eq!(job.payload, json!({"upTo": 100}));
    assert_eq!(job.owner, ANONYMOUS_OWNER);
    assert_eq!(
        jobline_tests::queued_messages(&env.queue()).await,
        [JobMessage::new(id)]
    );

    let (status, headers, view) = call(&api, get(&format!("/jobs/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(view["jobId"], id.to_string());
    assert_eq!(view["type"], "primes");
    assert_eq!(view["status"], "queued");
    assert_eq!(view["attempts"], 0);
    assert!(view["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(view["startedAt"], Value::Null);
    assert_eq!(headers["retry-after"], "2", "the job is not finished");
    env.cleanup().await;
}

#[tokio::test]
async fn an_idempotency_key_replay_returns_the_same_job() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let body = r#"{"type":"primes","payload":{"upTo":100}}"#;
    let (first, _, first_body) = call(&api, submit_with_key(body, "order-42")).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    // A worker has the job (a replay of a job not yet started sends its
    // message again: its first request may have died before sending).
    let id: JobId = first_body["jobId"].as_str().unwrap().parse().unwrap();
    let now = now_ms();
    env.store()
        .claim(id, now, now + 60_000, 1, "a-delivery")
        .await
        .expect("claim");
    // The same JSON with its keys in another order is the same request.
    let same = r#"{"payload":{"upTo":100},"type":"primes"}"#;
    let replay = api.handle(submit_with_key(same, "order-42")).await;
    assert_eq!(
        replay.metrics.total(Metric::JobsAccepted),
        0.0,
        "no second job"
    );
    let (parts, replay_body) = replay.response.into_parts();
    assert_eq!(parts.status, StatusCode::ACCEPTED);
    let replay_body: Value = serde_json::from_slice(replay_body.as_ref()).unwrap();
    assert_eq!(replay_body["jobId"], first_body["jobId"]);
    assert_eq!(
        jobline_tests::queued_messages(&env.queue()).await.len(),
        1,
        "a replay sends no second message"
    );

    let (reused, _, error) = call(
        &api,
        submit_with_key(r#"{"type":"primes","payload":{"upTo":7}}"#, "order-42"),
    )
    .await;
    assert_eq!(reused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["code"], "idempotency_key_reused");

    // Another caller's identical key is another job.
    let (other, _, other_body) =
        call(&api, as_user(submit_with_key(body, "order-42"), "bob")).await;
    assert_eq!(other, StatusCode::ACCEPTED);
    assert_ne!(other_body["jobId"], first_body["jobId"]);
    env.cleanup().await;
}

#[tokio::test]
async fn bad_input_gets_a_json_error_that_names_the_problem() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let too_large = format!(
        r#"{{"type":"primes","payload":{{"pad":"{}"}}}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    // Under the body limit as sent, over the payload's budget as stored
    // (`1E15` is stored as `1000000000000000.0`).
    let grows = format!(
        r#"{{"type":"primes","payload":{{"upTo":10,"pad":[{}]}}}}"#,
        vec!["1E15"; MAX_BODY_BYTES / 5 - 10].join(",")
    );
    assert!(grows.len() <= MAX_BODY_BYTES);
    let cases: Vec<(Request, StatusCode, &str, &str)> = vec![
        (
            submit(&grows),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "as stored",
        ),
        (
            submit(r#"{"type":"primes","payload":{"upTo":1E400}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "a number at line 1 column 40 is out of range",
        ),
        (
            submit("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "not valid JSON",
        ),
        (submit(""), StatusCode::BAD_REQUEST, "invalid_json", "EOF"),
        (
            submit(r#"{"type":"teleport"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_job_type",
            "known types: always-fail, csv-stats, fail-times, ping, prime-count, primes, sleep, thumbnail",
        ),
        (
            submit(r#"{"payload":{}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "`type` is required and must be a string",
        ),
        (
            submit(r#"["primes", {"upTo": 5}]"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "a job request is a JSON object with `type` and `payload`",
        ),
        (
            submit("[]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "a job request is a JSON object",
        ),
        (
            submit(r#"{"type":"primes","payload":"upTo=5"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "`payload` must be a JSON object",
        ),
        (
            submit(r#"{"type":"primes","payload":{"upTo":100},"extra":1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "unknown field `extra`: a job request has `type`, `payload`, `callbackUrl`, `runAt` and \
             `delaySeconds`",
        ),
        (
            submit(r#"{"type":"primes","payload":{"upTo":"lots"}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            "payload.upTo must be an integer",
        ),
        (
            submit(&too_large),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the limit is 262144 bytes",
        ),
        (
            submit_with_key(r#"{"type":"primes","payload":{"upTo":1}}"#, "has space"),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key",
        ),
        (
            post()
                .header("idempotency-key", "a")
                .header("idempotency-key", "b")
                .body(Body::from(r#"{"type":"primes","payload":{"upTo":1}}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "one Idempotency-Key",
        ),
        (
            submit_with_key(r#"{"type":"primes","payload":{"upTo":1}}"#, "a,b"),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "without commas",
        ),
        (
            authorized(
                submit(r#"{"type":"primes","payload":{"upTo":1}}"#),
                ApiGatewayRequestAuthorizer::default(),
            ),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no caller identity",
        ),
        (
            get("/jobs/not-a-uuid"),
            StatusCode::NOT_FOUND,
            "job_not_found",
            "no such job",
        ),
        (
            get("/nowhere"),
            StatusCode::NOT_FOUND,
            "route_not_found",
            "POST /jobs",
        ),
        (
            http::Request::builder()
                .method("PUT")
                .uri(format!("/jobs/{}", JobId::random()))
                .body(Body::Empty)
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "GET, DELETE",
        ),
    ];
    for (request, status, code, message) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, headers, body) = call(&api, request).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{what}: {text:?} lacks {message:?}");
        assert!(
            !text.contains("struct"),
            "{what}: {text:?} names a Rust type"
        );
    }
    assert!(
        jobline_tests::queued_messages(&env.queue())
            .await
            .is_empty(),
        "nothing was queued"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_job_past_its_expiry_is_404_before_the_ttl_deletes_it() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 5}),
        callback_url: None,
    };
    // Written 31 days ago, kept 30: expired, and still in the table (the
    // emulator's TTL never deletes; DynamoDB's does within a few days).
    let long_ago = now_ms() - 31 * 86_400_000;
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "last-month");
    let job = JobRecord::new_queued(id, ANONYMOUS_OWNER, &request, long_ago, 30);
    env.store().create(&job).await.unwrap();
    let (status, _, error) = call(&api, get(&format!("/jobs/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["error"]["code"], "job_not_found");
    assert!(env.store().get(id).await.unwrap().is_some());

    // Its key cannot answer with the expired job.
    let body = r#"{"type":"primes","payload":{"upTo":5}}"#;
    let (status, _, error) = call(&api, submit_with_key(body, "last-month")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_expired");
    assert!(
        jobline_tests::queued_messages(&env.queue())
            .await
            .is_empty()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn the_status_shows_a_job_an_operator_discarded() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let (accepted, _, body) = call(&api, submit(r#"{"type":"primes","payload":{"upTo":5}}"#)).await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    let path = format!("/jobs/{}", body["jobId"].as_str().unwrap());
    let (_, _, view) = call(&api, get(&path)).await;
    assert_eq!(view["discarded"], false);

    let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        env.store().discard(id, now_ms()).await.unwrap(),
        DiscardOutcome::Discarded
    );
    let (status, headers, view) = call(&api, get(&path)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "failed");
    assert_eq!(view["discarded"], true);
    assert_eq!(view["deadLettered"], false);
    assert!(headers.get("retry-after").is_none(), "it is finished");
    env.cleanup().await;
}

#[tokio::test]
async fn unknown_and_other_owners_jobs_are_404() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let (status, _, _) = call(&api, get(&format!("/jobs/{}", JobId::random()))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (accepted, _, body) = call(
        &api,
        as_user(submit(r#"{"type":"primes","payload":{"upTo":5}}"#), "alice"),
    )
    .await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    let path = format!("/jobs/{}", body["jobId"].as_str().unwrap());
    let (own, _, _) = call(&api, as_user(get(&path), "alice")).await;
    assert_eq!(own, StatusCode::OK);
    let (other, _, error) = call(&api, as_user(get(&path), "mallory")).await;
    assert_eq!(other, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "job_not_found");
    let (anonymous, _, _) = call(&api, get(&path)).await;
    assert_eq!(anonymous, StatusCode::NOT_FOUND);
    env.cleanup().await;
}

#[tokio::test]
async fn iam_callers_keep_their_jobs_per_role_but_sso_users_do_not_share() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let body = r#"{"type":"primes","payload":{"upTo":5}}"#;
    let role = "arn:aws:sts::123456789012:assumed-role/report-builder";
    let (accepted, _, job) = call(&api, as_iam(submit(body), &format!("{role}/session-1"))).await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    let path = format!("/jobs/{}", job["jobId"].as_str().unwrap());
    // New credentials of the same role, another session name: same owner.
    let (rotated, _, _) = call(&api, as_iam(get(&path), &format!("{role}/session-2"))).await;
    assert_eq!(rotated, StatusCode::OK);
    let id: JobId = job["jobId"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        env.store().get(id).await.unwrap().unwrap().owner,
        "iam:arn:aws:iam::123456789012:role/report-builder"
    );

    let sso = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123456789abcdef";
    let (accepted, _, job) = call(&api, as_iam(submit(body), &format!("{sso}/jane"))).await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    let path = format!("/jobs/{}", job["jobId"].as_str().unwrap());
    let (jane, _, _) = call(&api, as_iam(get(&path), &format!("{sso}/jane"))).await;
    assert_eq!(jane, StatusCode::OK);
    let (john, _, _) = call(&api, as_iam(get(&path), &format!("{sso}/john"))).await;
    assert_eq!(
        john,
        StatusCode::NOT_FOUND,
        "one permission set, two people"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_store_outage_sends_nothing_and_leaks_nothing() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    // A table that does not exist: the PutItem fails, so nothing is sent.
    let mut config = env.config.clone();
    config.table_name = format!("{}-missing", env.table);
    let api = Api::new(
        Arc::new(env.clients.store(&config)),
        Arc::new(env.queue()),
        jobline_jobs::builtin(),
        &config,
    );
    let (status, _, error) = call(&api, submit(r#"{"type":"primes","payload":{"upTo":5}}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(
        error["error"]["message"],
        "the job store is unavailable; nothing was accepted, retry with the same Idempotency-Key"
    );
    assert!(
        jobline_tests::queued_messages(&env.queue())
            .await
            .is_empty(),
        "no message precedes its record"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_full_backlog_refuses_new_jobs_but_replays_still_get_their_202() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut config = env.config.clone();
    config.max_backlog = 2;
    let api = Api::new(
        Arc::new(env.store()),
        Arc::new(env.queue()),
        jobline_jobs::builtin(),
        &config,
    );
    let body = r#"{"type":"primes","payload":{"upTo":5}}"#;
    let (accepted, _, first) = call(&api, submit_with_key(body, "before")).await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    for _ in 0..2 {
        env.queue()
            .send(&JobMessage::new(JobId::random()))
            .await
            .unwrap();
    }
    // Bounded from now on: the queue holds 3 messages, more than 2.
    let api = api.with_queue_depth(Arc::new(env.queue()));
    for request in [submit(body), submit_with_key(body, "after")] {
        let reply = api.handle(request).await;
        assert_eq!(reply.metrics.total(Metric::JobsRefused), 1.0);
        let (parts, error) = reply.response.into_parts();
        let error: Value = serde_json::from_slice(error.as_ref()).unwrap();
        assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS, "{error}");
        assert_eq!(error["error"]["code"], "backlog_full");
        assert_eq!(parts.headers["retry-after"], "30");
    }
    let (replayed, _, replay) = call(&api, submit_with_key(body, "before")).await;
    assert_eq!(replayed, StatusCode::ACCEPTED);
    assert_eq!(replay["jobId"], first["jobId"]);
    assert_eq!(
        jobline_tests::queued_messages(&env.queue()).await.len(),
        3,
        "nothing new was queued"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_failed_send_marks_the_job_and_answers_503() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    // A queue URL that does not exist: the PutItem lands, the SendMessage fails.
    let mut config = env.config.clone();
    config.queue_url = format!("{}-missing", env.queues.queue_url);
    let api = Api::new(
        Arc::new(env.store()),
        Arc::new(env.clients.queue(&config)),
        jobline_jobs::builtin(),
        &config,
    );
    let body = r#"{"type":"primes","payload":{"upTo":5}}"#;
    let (status, _, error) = call(&api, submit_with_key(body, "retry-me")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "unavailable");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("missing") && !message.contains("123456789012"),
        "no AWS detail reaches the client: {message}"
    );
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "retry-me");
    let job = env
        .store()
        .get(id)
        .await
        .unwrap()
        .expect("the record stays");
    assert_eq!(job.state, JobState::Failed);
    assert!(job.enqueue_failed);

    // Once SQS is back, the same key submits the job for real.
    let healthy = env.api(jobline_jobs::builtin());
    let (status, _, accepted) = call(&healthy, submit_with_key(body, "retry-me")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted["jobId"], id.to_string());
    assert_eq!(
        env.store().get(id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(
        jobline_tests::queued_messages(&env.queue()).await,
        [JobMessage::new(id)]
    );
    env.cleanup().await;
}
