//! The calls against a stub of the API: the requests the client sends (its
//! paths, queries, bodies and credentials) and how it reads the answers.

use crate::support::{Reply, Stub};
use jobline_client::JobId;
use jobline_client::{
    Auth, Cancel, Client, Credentials, Deleted, JobState, ListJobs, ListSchedules, Overlap, RunNow,
    ScheduleChanges, ScheduleId, Signer, Triggered, WaitOptions, Waited,
};
use serde_json::{Value, json};
use std::time::Duration;

fn job(id: JobId, status: &str) -> Value {
    json!({"jobId": id, "type": "primes", "status": status, "attempts": 1, "replays": 0,
           "createdAt": "2027-03-01T08:00:00.000Z", "cancelRequested": false})
}

fn quick_wait() -> WaitOptions {
    WaitOptions {
        first_interval: Duration::from_millis(1),
        max_interval: Duration::from_millis(5),
        ..WaitOptions::default()
    }
}

#[tokio::test]
async fn wait_polls_until_final_and_shows_each_poll() {
    let id = JobId::random();
    let mut halfway = job(id, "running");
    halfway["progress"] = json!({"fraction": 0.5, "message": "half", "updatedAt": "t"});
    let stub = Stub::replies(vec![
        Reply::json(200, job(id, "queued")),
        Reply::json(200, halfway),
        Reply::json(200, job(id, "succeeded")),
    ])
    .await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let mut seen = Vec::new();
    let waited = client
        .wait(id, &quick_wait(), |job| {
            seen.push((job.status, job.progress.as_ref().map(|p| p.fraction)));
        })
        .await
        .unwrap();
    assert!(
        matches!(&waited, Waited::Finished { job, status: JobState::Succeeded } if job.job_id == id)
    );
    assert_eq!(
        seen,
        [
            (JobState::Queued, None),
            (JobState::Running, Some(0.5)),
            (JobState::Succeeded, None)
        ]
    );
    assert!(stub.seen().iter().all(|s| s.path == format!("/jobs/{id}")));

    // The raw form hands over the JSON as it came; a timeout ends it.
    let stub = Stub::replies(vec![Reply::json(200, job(id, "running"))]).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let options = WaitOptions {
        timeout: Duration::ZERO,
        ..quick_wait()
    };
    let mut polls = 0;
    let waited = client
        .json()
        .wait(id, &options, |_| polls += 1)
        .await
        .unwrap();
    assert_eq!(
        waited,
        Waited::TimedOut {
            job: job(id, "running"),
            status: JobState::Running
        }
    );
    assert_eq!(polls, 1);
}

#[tokio::test]
async fn list_cancel_run_and_delete_read_their_outcomes() {
    let id = JobId::random();
    let schedule = ScheduleId::random();
    let mut cancelled = job(id, "cancelled");
    cancelled["cancelRequested"] = json!(false);
    let stub = Stub::start(move |seen, _| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/prod/jobs") => Reply::json(
            200,
            json!({"jobs": [job(id, "running")], "nextCursor": "c2"}),
        ),
        ("POST", p) if p.ends_with("/cancel") => Reply::json(200, cancelled.clone()),
        ("POST", p) if p.ends_with("/run") => Reply::json(
            409,
            json!({"error": {"code": "job_not_scheduled", "message": "m", "status": "running"}}),
        ),
        ("DELETE", _) => Reply::json(
            409,
            json!({"error": {"code": "job_not_finished", "message": "m", "status": "running"}}),
        ),
        _ => Reply::json(404, json!({"error": {"code": "not_found", "message": "m"}})),
    })
    .await;
    let client = Client::new(&format!("{}/prod/", stub.url), Auth::None).unwrap();
    let page = client
        .list(&ListJobs {
            status: Some(JobState::Running),
            job_type: Some("a b".into()),
            schedule_id: Some(schedule),
            limit: Some(5),
            cursor: Some("c1".into()),
        })
        .await
        .unwrap();
    assert_eq!(page.jobs[0].job_id, id);
    assert_eq!(page.next_cursor.as_deref(), Some("c2"));
    assert_eq!(
        stub.seen()[0].query,
        format!("limit=5&status=running&type=a%20b&scheduleId={schedule}&cursor=c1")
    );
    let Cancel::Cancelled { job } = client.cancel(id).await.unwrap() else {
        panic!("cancelled")
    };
    assert_eq!(job.status, JobState::Cancelled);
    assert_eq!(
        client.run_now(id).await.unwrap(),
        RunNow::NotScheduled {
            status: JobState::Running
        }
    );
    assert_eq!(
        client.delete(id).await.unwrap(),
        Deleted::NotFinished {
            status: JobState::Running
        }
    );
    let error = client.status(id).await.unwrap_err();
    assert_eq!(error.code().as_deref(), Some("not_found"));
    let paths: Vec<String> = stub.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths[1..4],
        [
            format!("/prod/jobs/{id}/cancel"),
            format!("/prod/jobs/{id}/run"),
            format!("/prod/jobs/{id}")
        ]
    );

    let stub = Stub::replies(vec![Reply::json(204, Value::Null)]).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    assert_eq!(client.delete(id).await.unwrap(), Deleted::Deleted);
}

fn schedule(id: ScheduleId) -> Value {
    json!({
        "scheduleId": id.to_string(), "expression": "rate(1 hour)", "timezone": "UTC",
        "description": "every hour", "type": "primes", "payload": {"upTo": 10},
        "callbackUrl": null, "overlap": "allow", "paused": true,
        "createdAt": "2027-03-01T08:00:00.000Z", "updatedAt": "2027-03-01T08:00:00.000Z",
        "nextFires": [], "lastFire": null,
        "fires": {"fired": 0, "skipped": 0, "refused": 0, "lastMissedAt": null, "lastRefusal": null},
        "jobsUrl": format!("/jobs?scheduleId={id}"),
    })
}

#[tokio::test]
async fn schedules_are_typed_both_ways() {
    let id = ScheduleId::random();
    let stub = Stub::start(
        move |seen, _| match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/schedules") => Reply::json(
                200,
                json!({"schedules": [schedule(id)], "nextCursor": null}),
            ),
            ("POST", p) if p.ends_with("/trigger") => Reply::json(
                409,
                json!({"error": {"code": "schedule_overlap", "message": "the last job runs"}}),
            ),
            ("DELETE", _) => Reply::json(204, Value::Null),
            _ => Reply::json(200, schedule(id)),
        },
    )
    .await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let page = client
        .schedules(&ListSchedules {
            limit: Some(10),
            cursor: Some("c 1".into()),
        })
        .await
        .unwrap();
    assert_eq!(page.schedules[0].schedule_id, id);
    assert_eq!(page.next_cursor, None);
    let changes = ScheduleChanges {
        overlap: Some(Overlap::Skip),
        callback_url: Some(None),
        ..ScheduleChanges::default()
    };
    let updated = client.update_schedule(id, &changes).await.unwrap();
    assert!(updated.paused);
    client.pause_schedule(id).await.unwrap();
    client.resume_schedule(id).await.unwrap();
    assert_eq!(
        client.trigger_schedule(id).await.unwrap(),
        Triggered::Skipped {
            message: "the last job runs".into()
        }
    );
    client.delete_schedule(id).await.unwrap();
    let seen = stub.seen();
    assert_eq!(seen[0].query, "limit=10&cursor=c%201");
    assert_eq!(
        (seen[1].method.as_str(), seen[1].json()),
        ("PATCH", json!({"overlap": "skip", "callbackUrl": null}))
    );
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    let calls: Vec<(String, String)> = seen[2..]
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_owned(), format!("/schedules/{id}/pause")),
            ("POST".to_owned(), format!("/schedules/{id}/resume")),
            ("POST".to_owned(), format!("/schedules/{id}/trigger")),
            ("DELETE".to_owned(), format!("/schedules/{id}")),
        ]
    );
}

#[tokio::test]
async fn credentials_go_with_every_call() {
    let id = JobId::random();
    let stub = Stub::replies(vec![Reply::json(200, json!({"secret": "whsec_abc"}))]).await;
    let client = Client::new(&stub.url, Auth::Bearer("jwt-token".into()))
        .unwrap()
        .with_user_agent("my-service/2")
        .unwrap();
    assert_eq!(client.webhook_secret().await.unwrap(), "whsec_abc");
    let seen = &stub.seen()[0];
    assert_eq!(seen.path, "/webhook-secret");
    assert_eq!(seen.header("authorization"), Some("Bearer jwt-token"));
    assert_eq!(seen.header("user-agent"), Some("my-service/2"));
    assert_eq!(seen.header("accept"), Some("application/json"));

    let stub = Stub::replies(vec![Reply::json(200, job(id, "queued"))]).await;
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
    let client = Client::new(
        &stub.url,
        Auth::SigV4(Signer::new(credentials, "eu-west-1")),
    )
    .unwrap();
    client.status(id).await.unwrap();
    let request = &stub.seen()[0];
    let authorization = request.header("authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/execute-api/aws4_request"),
        "{authorization}"
    );
    assert_eq!(request.header("x-amz-security-token"), Some("token"));
    let signed = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert!(signed.split(';').any(|h| h == "host"), "{signed}");
    for header in signed.split(';') {
        assert!(
            request.headers.contains_key(header),
            "signed {header} was sent"
        );
    }
}

#[tokio::test]
async fn a_link_is_fetched_with_no_credentials() {
    let stub = Stub::start(|seen, _| match seen.path.as_str() {
        "/bucket/results/1/1.json" => Reply {
            status: 200,
            headers: Vec::new(),
            body: b"\"xx\"".to_vec(),
            delay: Duration::ZERO,
        },
        _ => Reply::json(403, json!({"denied": true})),
    })
    .await;
    let signer = Signer::new(
        Credentials::new("AKID", "SECRET", None, None, "test"),
        "us-east-1",
    );
    let client = Client::new(&stub.url, Auth::SigV4(signer)).unwrap();
    let url = format!("{}/bucket/results/1/1.json?X-Amz-Signature=abc", stub.url);
    assert_eq!(client.fetch_link(&url).await.unwrap(), b"\"xx\"");
    let seen = &stub.seen()[0];
    assert_eq!(seen.query, "X-Amz-Signature=abc");
    assert_eq!(
        seen.header("authorization"),
        None,
        "the link carries its own signature"
    );
    let denied = client.fetch_link(&format!("{}/x", stub.url)).await;
    assert!(
        matches!(&denied, Err(jobline_client::ClientError::Status { status, .. }) if status.as_u16() == 403),
        "{denied:?}"
    );
    assert!(client.fetch_link("ftp://example.com/x").await.is_err());
}
