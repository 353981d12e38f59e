//! Uploads against a stub of the contract: `POST /uploads` with the file's
//! size, type and SHA-256; the file `PUT` to the presigned URL with exactly
//! the headers given (and none of the client's credentials), streamed; then
//! `GET /uploads/{id}` until it is complete.

use crate::support::{Reply, Seen, Stub};
use jobline_client::{Auth, Client, ClientError, NewUpload, UploadStatus};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

const UPLOAD_ID: &str = "0193f0a4-0000-7000-8000-00000000beef";

fn upload(status: &str, seen: &Seen) -> Value {
    let asked = seen.json();
    json!({
        "uploadId": UPLOAD_ID, "status": status, "size": asked["size"],
        "contentType": asked["contentType"], "sha256": asked["sha256"],
        "createdAt": "2027-03-01T08:00:00.000Z", "expiresAt": "2027-03-02T08:00:00.000Z",
    })
}

/// A stub of the upload routes whose presigned URL is its own `/bucket/…`,
/// answering the PUT with `put_status`; `GET /uploads/{id}` reads it
/// `pending` once (as the API shows one: nothing declared), then `complete`.
async fn storage(put_status: u16) -> Stub {
    let asked = Arc::new(Mutex::new(None::<Seen>));
    let url = Arc::new(Mutex::new(String::new()));
    let base = url.clone();
    let gets = Arc::new(Mutex::new(0));
    let stub = Stub::start(move |seen, _| {
        let mut asked = asked.lock().unwrap();
        match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", "/uploads") => {
                *asked = Some(seen.clone());
                let mut created = upload("pending", seen);
                created["statusUrl"] = json!(format!("/uploads/{UPLOAD_ID}"));
                let sha256 = hex_to_base64(seen.json()["sha256"].as_str().unwrap());
                created["upload"] = json!({
                    "method": "PUT",
                    "url": format!("{}/bucket/{UPLOAD_ID}?X-Amz-Signature=s1g", base.lock().unwrap()),
                    "headers": {"content-type": seen.json()["contentType"],
                                "x-amz-checksum-sha256": sha256},
                    "expiresAt": "2027-03-01T08:15:00.000Z",
                });
                Reply::json(201, created)
            }
            ("PUT", _) => Reply::json(put_status, json!({})),
            ("GET", _) => {
                let mut gets = gets.lock().unwrap();
                *gets += 1;
                let asked = asked.clone().unwrap();
                let mut read = upload("complete", &asked);
                if *gets == 1 {
                    read = json!({"uploadId": UPLOAD_ID, "status": "pending", "size": null,
                                  "contentType": null, "sha256": null,
                                  "createdAt": read["createdAt"], "expiresAt": read["expiresAt"]});
                }
                Reply::json(200, read)
            }
            _ => Reply::json(404, json!({})),
        }
    })
    .await;
    *url.lock().unwrap() = stub.url.clone();
    stub
}

fn hex_to_base64(hex: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_file_is_hashed_announced_streamed_and_confirmed() {
    let stub = storage(200).await;
    let client = Client::new(&stub.url, Auth::Bearer("jwt".into())).unwrap();
    let path = std::env::temp_dir().join(format!("jobline-upload-{}.csv", std::process::id()));
    let data: Vec<u8> = (0..700_000u32)
        .map(|i| b"0123456789,\n"[(i % 12) as usize])
        .collect();
    std::fs::write(&path, &data).unwrap();
    let upload = client.upload_file(&path, "text/csv").await.unwrap();
    std::fs::remove_file(&path).unwrap();

    assert_eq!(upload.upload_id.to_string(), UPLOAD_ID);
    assert_eq!(upload.status, UploadStatus::Complete);
    assert_eq!(upload.upload, None, "the confirmed upload has no URL");
    assert_eq!(upload.as_input(), json!({"upload": UPLOAD_ID}));

    let seen = stub.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    let bucket = format!("/bucket/{UPLOAD_ID}");
    let status = format!("/uploads/{UPLOAD_ID}");
    assert_eq!(
        calls,
        [
            ("POST", "/uploads"),
            ("PUT", bucket.as_str()),
            ("GET", status.as_str()),
            ("GET", status.as_str())
        ]
    );
    let sha256: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        seen[0].json(),
        json!({"size": data.len(), "contentType": "text/csv", "sha256": sha256})
    );
    assert_eq!(seen[0].header("authorization"), Some("Bearer jwt"));

    let put = &seen[1];
    assert_eq!(put.query, "X-Amz-Signature=s1g");
    assert_eq!(put.body, data);
    assert_eq!(
        put.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(put.header("content-type"), Some("text/csv"));
    assert_eq!(
        put.header("x-amz-checksum-sha256"),
        Some(hex_to_base64(&sha256).as_str())
    );
    assert_eq!(
        put.header("authorization"),
        None,
        "no credentials of the client's"
    );
    let mut sent: Vec<&str> = put.headers.keys().map(|name| name.as_str()).collect();
    sent.sort_unstable();
    assert_eq!(
        sent,
        [
            "content-length",
            "content-type",
            "host",
            "x-amz-checksum-sha256"
        ],
        "exactly the signed headers, and HTTP's own"
    );
}

#[tokio::test]
async fn bytes_upload_alike_and_a_refused_file_is_an_error() {
    let stub = storage(200).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let upload = client
        .upload_bytes(&b"{\"a\": 1}"[..], "application/json")
        .await
        .unwrap();
    assert_eq!(upload.size, Some(8));
    assert_eq!(upload.content_type.as_deref(), Some("application/json"));
    assert_eq!(stub.seen()[1].body, b"{\"a\": 1}");

    let stub = storage(403).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let error = client
        .upload_bytes(&b"x"[..], "text/plain")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::UploadRefused { status, .. } if status.as_u16() == 403),
        "{error:?}"
    );
    assert!(!error.to_string().contains("s1g"), "{error}");

    let missing = client
        .upload_file("/nonexistent/file.csv", "text/csv")
        .await
        .unwrap_err();
    assert!(matches!(missing, ClientError::File { .. }), "{missing:?}");
    assert!(missing.to_string().contains("/nonexistent/file.csv"));
}

/// An upload declared with `create_upload` and sent in a step of its own:
/// the bytes go to its link with exactly its signed headers, and a refusal
/// of the storage (S3's to bytes other than declared) is the error; an
/// upload read back (no link) cannot be sent to.
#[tokio::test]
async fn a_created_upload_is_sent_in_its_own_step() {
    let stub = storage(400).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let declared = NewUpload::of(b"a,b", "text/csv");
    let created = client.create_upload(&declared).await.unwrap();
    let refused = client.send_upload(&created, &b"a;b"[..]).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::UploadRefused { status, .. } if status.as_u16() == 400),
        "{refused:?}"
    );
    let put = &stub.seen()[1];
    assert_eq!(
        (put.method.as_str(), put.body.as_slice()),
        ("PUT", &b"a;b"[..])
    );
    assert_eq!(put.header("content-type"), Some("text/csv"));
    assert!(put.header("x-amz-checksum-sha256").is_some());

    let stub = storage(200).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let created = client.create_upload(&declared).await.unwrap();
    client.send_upload(&created, &b"a,b"[..]).await.unwrap();
    let read = client.upload(created.upload_id).await.unwrap();
    let no_link = client.send_upload(&read, &b"a,b"[..]).await.unwrap_err();
    assert!(
        matches!(no_link, ClientError::InvalidRequest(_)),
        "{no_link:?}"
    );
}
