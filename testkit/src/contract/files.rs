//! The checks of a bucket of uploads and outputs ([`UploadFiles`] and
//! [`JobFiles`]): what S3 and the fake both honour, and what a handler's
//! [`InputReader`](jobline_core::job_types::InputReader) and [`OutputWriter`](jobline_core::job_types::OutputWriter) make of them. Each check uses keys
//! of its own under `prefix` (fresh per run), so they may share a bucket.

use jobline_core::JobId;
use jobline_core::files::{
    Declared, FileError, JobFiles, KEEP_TIERS_DAYS, PART_BYTES, UploadFiles, UploadId,
    output_prefix, upload_key,
};
use jobline_core::job_types::{JobContext, JobError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A bucket of both roles, as the fake and `S3Bucket` are.
pub trait Files: UploadFiles + JobFiles {}
impl<F: UploadFiles + JobFiles> Files for F {}

/// The declaration of `body`.
pub fn declare(body: &[u8], content_type: &str) -> Declared {
    Declared {
        size: body.len() as u64,
        content_type: content_type.to_owned(),
        sha256: Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

/// An upload arrives as declared: `head` describes it with its declaration,
/// a job may keep it for longer (never shorter), and a reader reads it
/// whole or from a byte on, only while its ETag holds. `put` stores the
/// bytes as a client's `PUT` through the presigned URL does.
pub async fn an_upload_is_read_as_declared_and_from_any_byte(
    files: Arc<dyn Files>,
    owner: &str,
    put: impl AsyncFn(&str, &Declared, Vec<u8>),
) {
    let body: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
    let declared = declare(&body, "application/octet-stream");
    let key = upload_key(owner, UploadId::new(1_800_000_000_000));
    assert_eq!(files.head(&key).await.unwrap(), None, "not there before");
    put(&key, &declared, body.clone()).await;

    let object = files.head(&key).await.unwrap().expect("the upload");
    assert_eq!(object.size, body.len() as u64);
    assert_eq!(object.declared().as_ref(), Some(&declared));
    assert!(object.matches(&declared), "{object:?}");
    let other = declare(b"other bytes", "application/octet-stream");
    assert!(!object.matches(&other));

    files.keep(&key, KEEP_TIERS_DAYS[3]).await.unwrap();
    files.keep(&key, KEEP_TIERS_DAYS[1]).await.unwrap();

    let read = |from: u64| {
        let files = Arc::clone(&files);
        let key = key.clone();
        let etag = object.etag.clone();
        async move {
            let mut chunks = files.read(&key, &etag, from).await.unwrap();
            let mut all = Vec::new();
            while let Some(chunk) = chunks.next_chunk().await.unwrap() {
                all.extend(chunk);
            }
            all
        }
    };
    assert_eq!(read(0).await, body);
    assert_eq!(read(123_457).await, body[123_457..]);

    let stale = files.read(&key, "\"not-its-etag\"", 0).await;
    assert!(
        matches!(stale, Err(FileError::Changed)),
        "{:?}",
        stale.err()
    );
    let gone = files.read(&format!("{key}-missing"), &object.etag, 0).await;
    assert!(matches!(gone, Err(FileError::NotFound)), "{:?}", gone.err());
}

/// An output larger than a part goes up as a multipart upload, completed
/// once and listed under its attempt; one that is dropped unfinished, or
/// whose attempt was stopped, leaves nothing under its key.
pub async fn outputs_are_written_in_parts_and_only_when_finished(files: Arc<dyn Files>) {
    let job = JobId::random();
    let body: Vec<u8> = (0..PART_BYTES + 300_000).map(|n| (n % 251) as u8).collect();
    let ctx = |attempt: u32, stop: CancellationToken| {
        JobContext::new(job, attempt, i64::MAX, stop).with_files(files.clone(), Vec::new())
    };

    let mut big = ctx(1, CancellationToken::new())
        .create_output("big.bin", "application/octet-stream")
        .unwrap();
    for chunk in body.chunks(100_000) {
        big.write(chunk).await.unwrap();
    }
    let small = ctx(1, CancellationToken::new())
        .create_output("small.txt", "text/plain")
        .unwrap();
    let written = big.finish().await.unwrap();
    assert_eq!(written.size, body.len() as u64);
    small.finish().await.unwrap();

    // A second attempt's outputs: one stopped before it finished, one dropped.
    let stop = CancellationToken::new();
    let mut stopped = ctx(2, stop.clone())
        .create_output("big.bin", "application/octet-stream")
        .unwrap();
    stopped.write(&body).await.unwrap();
    stop.cancel();
    let refused = stopped.finish().await;
    assert!(
        matches!(refused, Err(JobError::Retryable(_))),
        "{refused:?}"
    );
    let mut dropped = ctx(2, CancellationToken::new())
        .create_output("dropped.bin", "application/octet-stream")
        .unwrap();
    dropped.write(&body).await.unwrap();
    drop(dropped);

    let listed = files.list(&output_prefix(job, 1)).await.unwrap();
    let names: Vec<(&str, u64)> = listed.iter().map(|o| (o.name.as_str(), o.size)).collect();
    assert_eq!(names, [("big.bin", body.len() as u64), ("small.txt", 0)]);
    let mut chunks = files
        .read(
            &listed[0].key,
            &files.head(&listed[0].key).await.unwrap().unwrap().etag,
            0,
        )
        .await
        .unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = chunks.next_chunk().await.unwrap() {
        read.extend(chunk);
    }
    assert!(read == body, "the output reads back as written");
    // The abort of a dropped writer runs in the background.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        files.list(&output_prefix(job, 2)).await.unwrap().is_empty(),
        "a stopped or dropped attempt's outputs are not there"
    );
    let bad = ctx(3, CancellationToken::new()).create_output("../x", "text/plain");
    assert!(matches!(bad, Err(JobError::Permanent(_))), "{bad:?}");
}
