//! Uploads, as a client uses them, against the local stack on moto: a file
//! declared with `POST /uploads`, sent through its presigned `PUT` with the
//! headers the link signs, named by a `csv-stats` job that reads it as a
//! stream; what each caller may name (only its own), when (within the
//! upload's window, on a moved clock), and what (only what was declared);
//! and how much each caller may upload in a UTC day.
//!
//! Moto checks no signature, expiry or policy, so what S3 enforces on a
//! presigned `PUT` (the signed length, checksum and metadata) is checked
//! here by Jobline's own check at submission, and deployed by both.

use jobline_api::Api;
use jobline_core::Clock;
use jobline_core::caller::{UploadQuota, until_next_utc_day};
use jobline_core::files::{KEEP_TAG, keep_days, upload_key};
use jobline_testkit::contract::files::declare;
use jobline_tests::TestEnv;
use jobline_tests::identity::request_as;
use jobline_tests::stack::Served;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&Value>,
    sub: &str,
) -> (u16, Value) {
    let reply = api.handle(request_as(method, path, body, sub)).await;
    let status = reply.response.status().as_u16();
    let json = serde_json::from_slice(reply.response.body().as_ref()).unwrap_or(Value::Null);
    (status, json)
}

/// `path`'s job, read as `sub` until it is succeeded or failed (a minute at most).
async fn until_final(api: &Api, path: &str, sub: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, job) = call(api, "GET", path, None, sub).await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A CSV of `rows` rows.
fn document(rows: u32) -> Vec<u8> {
    let mut text = String::from("id,price\n");
    for n in 0..rows {
        text.push_str(&format!("{n},{}.5\n", n % 100));
    }
    text.into_bytes()
}

/// Declares `body` as `sub` and answers the upload.
async fn create(api: &Api, body: &[u8], sub: &str) -> Value {
    let declared = declare(body, "text/csv");
    let (status, upload) = call(api, "POST", "/uploads", Some(&json!(declared)), sub).await;
    assert_eq!(status, 201, "{upload}");
    upload
}

/// Sends `body` through `upload`'s link with the headers it signs.
async fn send(upload: &Value, body: Vec<u8>) -> (u16, String) {
    let headers: Vec<(String, String)> = upload["upload"]["headers"]
        .as_object()
        .expect("the signed headers")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
        .collect();
    let url = upload["upload"]["url"].as_str().expect("the link");
    jobline_tests::http::put(url, &headers, body).await
}

fn csv_job(upload: &Value) -> Value {
    json!({"type": "csv-stats", "payload": {"input": {"upload": upload["uploadId"]}}})
}

#[tokio::test]
async fn an_upload_is_read_by_its_callers_job_within_its_window_and_as_declared() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let clock = Clock::movable();
    let served = Served::start(env.stack_on(jobline_jobs::builtin(), &clock).build()).await;
    let api = &served.api;

    // Declared, then sent through the link with exactly its signed headers.
    let body = document(120_000);
    let upload = create(api, &body, "alice").await;
    assert_eq!(upload["status"], "pending");
    let signed = upload["upload"]["headers"].as_object().unwrap();
    for header in [
        "content-length",
        "content-type",
        "x-amz-checksum-sha256",
        "x-amz-tagging",
    ] {
        assert!(
            signed.contains_key(header),
            "{header} is signed: {signed:?}"
        );
    }
    let id = upload["uploadId"].as_str().unwrap();
    let path = format!("/uploads/{id}");
    assert_eq!(
        call(api, "GET", &path, None, "alice").await.1["status"],
        "pending"
    );
    let (status, text) = send(&upload, body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let (status, shown) = call(api, "GET", &path, None, "alice").await;
    assert_eq!(
        (status, shown["status"].as_str()),
        (200, Some("complete")),
        "{shown}"
    );
    assert_eq!(shown["size"], body.len());

    // Another caller cannot name it, nor see it.
    let (status, refused) = call(api, "POST", "/jobs", Some(&csv_job(&upload)), "bob").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("input_not_found"))
    );
    assert_eq!(
        call(api, "GET", &path, None, "bob").await.1["status"],
        "pending"
    );

    // Its owner's job reads it as a stream.
    let (status, accepted) = call(api, "POST", "/jobs", Some(&csv_job(&upload)), "alice").await;
    assert_eq!(status, 202, "{accepted}");
    let job_path = format!("/jobs/{}", accepted["jobId"].as_str().unwrap());
    let job = until_final(api, &job_path, "alice").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["rows"], 120_000);
    assert_eq!(job["result"]["bytes"], body.len());
    assert_eq!(job["inputs"][0]["uploadId"], id);
    assert_eq!(job["inputs"][0]["size"], body.len());

    // Kept as long as the job's record: its keep tag was raised.
    let bucket = env.config.results_bucket.as_deref().unwrap();
    let listed = env
        .clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("uploads/")
        .send()
        .await
        .unwrap();
    let key = listed
        .contents()
        .iter()
        .filter_map(|object| object.key())
        .find(|key| key.ends_with(id))
        .expect("the upload's object");
    assert_ne!(
        key,
        upload_key("bob", id.parse().unwrap()),
        "under its owner's prefix"
    );
    let tags = env
        .clients
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let kept = tags.tag_set().iter().find(|t| t.key() == KEEP_TAG).unwrap();
    let created = id
        .parse::<jobline_core::files::UploadId>()
        .unwrap()
        .created_ms();
    let expires_at = clock.now_secs() + i64::from(env.config.retention_days) * 86_400;
    assert_eq!(
        kept.value(),
        keep_days(created, expires_at, None).to_string()
    );

    // Bytes other than the declared ones (one more): refused by S3, which
    // checks the signed length and checksum, or, on an emulator that checks
    // neither, at submission. (Other bytes of the declared length are S3's
    // alone to refuse, by the checksum: moto keeps the header as sent.)
    let other = create(api, &body, "alice").await;
    let mut tampered = body.clone();
    tampered.push(b'\n');
    let mut headers: Vec<(String, String)> = other["upload"]["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    for (name, value) in &mut headers {
        if name == "content-length" {
            *value = tampered.len().to_string();
        }
    }
    let url = other["upload"]["url"].as_str().unwrap();
    let (status, _) = jobline_tests::http::put(url, &headers, tampered).await;
    if status == 200 {
        let (status, refused) = call(api, "POST", "/jobs", Some(&csv_job(&other)), "alice").await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (422, Some("input_mismatch"))
        );
    }
    // Sent without the declaration the link signs: refused at submission.
    let bare = create(api, &body, "alice").await;
    let only_length = vec![("content-length".to_owned(), body.len().to_string())];
    let url = bare["upload"]["url"].as_str().unwrap();
    let (status, text) = jobline_tests::http::put(url, &only_length, body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let (status, refused) = call(api, "POST", "/jobs", Some(&csv_job(&bare)), "alice").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("input_mismatch")),
        "{refused}"
    );

    // A day and an hour later, no job may name it.
    clock.advance(Duration::from_secs(25 * 3600));
    let (status, refused) = call(api, "POST", "/jobs", Some(&csv_job(&upload)), "alice").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("input_expired"))
    );
    assert_eq!(
        call(api, "GET", &path, None, "alice").await.1["status"],
        "expired"
    );
    served.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn bad_declarations_name_their_field() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let sha = "a".repeat(64);
    for (body, status, code, field) in [
        (
            json!({"size": 0, "contentType": "text/csv", "sha256": sha}),
            422,
            "invalid_upload",
            Some("size"),
        ),
        (
            json!({"size": 10, "contentType": "csv", "sha256": sha}),
            422,
            "invalid_upload",
            Some("contentType"),
        ),
        (
            json!({"size": 10, "contentType": "text/csv", "sha256": "xyz"}),
            422,
            "invalid_upload",
            Some("sha256"),
        ),
        (
            json!({"size": 6_000_000_000u64, "contentType": "text/csv", "sha256": sha}),
            413,
            "upload_too_large",
            None,
        ),
        (
            json!({"size": 10, "contentType": "text/csv", "sha256": sha, "extra": 1}),
            422,
            "invalid_request",
            None,
        ),
    ] {
        let (got, answer) = call(&api, "POST", "/uploads", Some(&body), "alice").await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert_eq!(answer["error"]["field"].as_str(), field, "{answer}");
    }
    let (status, answer) = call(&api, "GET", "/uploads/not-an-id", None, "alice").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("upload_not_found"))
    );
    let bad = json!({"type": "csv-stats", "payload": {"input": {"upload": "nope"}}});
    let (status, answer) = call(&api, "POST", "/jobs", Some(&bad), "alice").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_payload")),
        "{answer}"
    );
    env.cleanup().await;
}

/// A caller's uploads of a UTC day are bounded in number and in bytes
/// declared, counted in the callers table on the emulator: at its quota a
/// caller is refused (429 `too_many_uploads`, `Retry-After` until 00:00 UTC
/// on the moved clock), even by requests at once; no one else is; a file
/// larger than a day's bytes is refused outright (413); and the next day
/// the caller may upload again.
#[tokio::test]
async fn a_callers_uploads_are_bounded_by_the_day_and_start_again_at_midnight_utc() {
    jobline_tests::require_emulator!();
    let mut env = TestEnv::new().await;
    let (table, counts) = env.caller_counts().await;
    env.config.callers.table_name = Some(table);
    env.config.callers.upload_quota = UploadQuota {
        uploads: 3,
        bytes: 1_000_000,
    };
    // 22:00 UTC tomorrow: two hours before the next UTC day.
    let clock = Clock::movable();
    let to_midnight = u64::try_from(until_next_utc_day(clock.now_ms())).unwrap();
    clock.advance(Duration::from_millis(to_midnight) + Duration::from_secs(22 * 3600));
    let stack = env.stack_on(jobline_jobs::builtin(), &clock);
    let api = Arc::clone(stack.caller_counts(counts).build().api());
    let declared =
        |size: u64| json!({"size": size, "contentType": "text/csv", "sha256": "a".repeat(64)});

    // Five at once, three in the quota: three links, two refusals.
    let thousand = declared(1000);
    let requests = (0..5).map(|_| call(&api, "POST", "/uploads", Some(&thousand), "alice"));
    let answers = futures_util::future::join_all(requests).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == 201).count(),
            statuses.iter().filter(|s| **s == 429).count()
        ),
        (3, 2),
        "{answers:?}"
    );
    let reply = api
        .handle(request_as(
            "POST",
            "/uploads",
            Some(&declared(1000)),
            "alice",
        ))
        .await;
    assert_eq!(reply.response.status(), 429);
    let retry_after: u64 = reply.response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (7100..=7200).contains(&retry_after),
        "until 00:00 UTC: {retry_after}"
    );
    let refused: Value = serde_json::from_slice(reply.response.body().as_ref()).unwrap();
    assert_eq!(refused["error"]["code"], "too_many_uploads", "{refused}");
    assert_eq!(
        refused["error"]["limit"],
        json!({"uploadsPerDay": 3, "bytesPerDay": 1_000_000}),
        "{refused}"
    );

    // Another caller has its own quota, bounded by bytes too.
    let upload =
        async |size: u64| call(&api, "POST", "/uploads", Some(&declared(size)), "bob").await;
    assert_eq!(upload(999_000).await.0, 201);
    let (status, answer) = upload(1_001).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (429, Some("too_many_uploads"))
    );
    assert_eq!(upload(1_000).await.0, 201, "exactly the day's bytes");
    let (status, answer) = call(
        &api,
        "POST",
        "/uploads",
        Some(&declared(1_000_001)),
        "carol",
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("upload_too_large")),
        "{answer}"
    );

    // The next UTC day, two hours on.
    clock.advance(Duration::from_secs(2 * 3600));
    let (status, answer) = call(&api, "POST", "/uploads", Some(&declared(1000)), "alice").await;
    assert_eq!(status, 201, "{answer}");
    env.cleanup().await;
}

/// A PNG of `width` × `height`, a gradient.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

#[tokio::test]
async fn a_thumbnail_jobs_outputs_are_listed_with_links_that_open_as_images() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let clock = Clock::movable();
    let served = Served::start(env.stack_on(jobline_jobs::builtin(), &clock).build()).await;
    let api = &served.api;
    let body = png(800, 600);
    let declared = declare(&body, "image/png");
    let (status, upload) = call(api, "POST", "/uploads", Some(&json!(declared)), "alice").await;
    assert_eq!(status, 201, "{upload}");
    let (status, text) = send(&upload, body).await;
    assert_eq!(status, 200, "{text}");
    let request = json!({"type": "thumbnail", "payload": {
        "input": {"upload": upload["uploadId"]}, "sizes": [64, 200]
    }});
    let (status, accepted) = call(api, "POST", "/jobs", Some(&request), "alice").await;
    assert_eq!(status, 202, "{accepted}");
    let path = format!("/jobs/{}", accepted["jobId"].as_str().unwrap());
    let job = until_final(api, &path, "alice").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let outputs = job["outputs"].as_array().expect("its outputs");
    let mut names: Vec<&str> = outputs
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["thumb-200.png", "thumb-64.png"]);
    for output in outputs {
        let (status, bytes) = jobline_tests::http::fetch(output["url"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(output["size"], bytes.len());
        let image = image::load_from_memory(&bytes).expect("an image");
        let size: u32 = output["name"].as_str().unwrap()[6..]
            .trim_end_matches(".png")
            .parse()
            .unwrap();
        assert_eq!(
            (image.width(), image.height()),
            (size, size * 3 / 4),
            "{output}"
        );
        assert!(output["urlExpiresAt"].is_string());
    }
    // Another caller sees neither the job nor its outputs.
    let (status, _) = call(api, "GET", &path, None, "bob").await;
    assert_eq!(status, 404);
    // Deleting the job deletes its outputs.
    let (status, _) = call(api, "DELETE", &path, None, "alice").await;
    assert_eq!(status, 204);
    let left = env
        .clients
        .s3
        .list_objects_v2()
        .bucket(env.config.results_bucket.as_deref().unwrap())
        .prefix(format!("outputs/{}/", accepted["jobId"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(left.contents().is_empty(), "{left:?}");
    served.stop().await;
    env.cleanup().await;
}
