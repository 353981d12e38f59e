use super::*;
use crate::test_context;
use jobline_core::files::UploadId;
use jobline_core::job_types::Reports;
use jobline_testkit::memory::files::{MemoryFiles, context};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[test]
fn summarises_numeric_columns() {
    let out = summarise("price, qty\n2.5,4\n1.5,2\n\n").unwrap();
    assert_eq!(out["rows"], 2);
    assert_eq!(out["columns"]["price"]["sum"], 4.0);
    assert_eq!(out["columns"]["price"]["mean"], 2.0);
    assert_eq!(out["columns"]["qty"]["min"], 2.0);
    assert_eq!(out["columns"]["qty"]["max"], 4.0);
}

#[test]
fn names_the_bad_row() {
    assert_eq!(
        summarise("a,b\n1,2\n3\n").unwrap_err(),
        "row 3 has 1 fields, the header has 2"
    );
    assert_eq!(
        summarise("a\nx\n").unwrap_err(),
        "row 2, column 1: not a number"
    );
    assert!(summarise("").is_err());
    let wide = vec!["c"; MAX_COLUMNS + 1].join(",");
    assert!(summarise(&wide).unwrap_err().contains("columns"));
}

#[tokio::test]
async fn bad_input_is_a_permanent_failure() {
    assert!(matches!(
        CsvStats
            .run(&test_context(1), json!({"csv": "a\nnope"}))
            .await,
        Err(JobError::Permanent(_))
    ));
    assert!(CsvStats.validate(&json!({"csv": 3})).is_err());
    assert_eq!(
        CsvStats
            .run(&test_context(1), json!({"csv": "a\n1"}))
            .await
            .unwrap()["rows"],
        1
    );
}

/// A CSV of `rows` rows, a few MB for 100,000.
fn document(rows: u32) -> String {
    let mut text = String::from("id,price,qty\n");
    for n in 0..rows {
        text.push_str(&format!("{n},{}.{},{}\n", n % 97, n % 10, n % 13));
    }
    text
}

#[tokio::test]
async fn an_upload_is_read_as_a_stream_with_the_inline_result() {
    let files = Arc::new(MemoryFiles::new());
    let text = document(100_000);
    let input = files.upload("alice", text.as_bytes(), "text/csv").await;
    let payload = json!({"input": {"upload": input.upload_id}});
    let mut result = CsvStats
        .run(
            &context(&files, vec![input.clone()], CancellationToken::new()),
            payload,
        )
        .await
        .unwrap();
    assert_eq!(result["bytes"], text.len());
    result.as_object_mut().unwrap().remove("bytes");
    assert_eq!(result, summarise(&text).unwrap());
}

/// Stopped after every chunk (as at each invocation's end), it resumes from
/// its checkpoint each time and ends with the one-pass result.
#[tokio::test]
async fn a_run_stopped_at_every_chunk_resumes_to_the_one_pass_result() {
    let files = Arc::new(MemoryFiles::new());
    let text = document(60_000);
    let input = files.upload("alice", text.as_bytes(), "text/csv").await;
    let payload = json!({"input": {"upload": input.upload_id}});
    let mut checkpoint = None;
    let mut runs = 0;
    let result = loop {
        runs += 1;
        let stop = CancellationToken::new();
        stop.cancel();
        let reports = Reports::new();
        let ctx = context(&files, vec![input.clone()], stop)
            .resuming_from(checkpoint.clone())
            .reporting_to(reports.clone());
        match CsvStats.run(&ctx, payload.clone()).await {
            Err(JobError::Continue) => checkpoint = reports.take().checkpoint,
            done => break done.unwrap(),
        }
    };
    assert!(runs > 10, "it was stopped {runs} times");
    let mut whole = summarise(&text).unwrap();
    whole["bytes"] = json!(text.len());
    assert_eq!(result, whole);
}

#[tokio::test]
async fn hostile_uploads_fail_for_good() {
    let files = Arc::new(MemoryFiles::new());
    for (body, expected) in [
        (
            format!("a\n{}", "1".repeat(MAX_LINE_BYTES + 10)),
            "row 2 is longer than",
        ),
        ("a,b\n1,2\n\u{0}\u{ff}".to_owned(), "row 3 has 1 fields"),
        ("a\n1\nx\n".to_owned(), "row 3, column 1: not a number"),
    ] {
        let input = files.upload("alice", body.as_bytes(), "text/csv").await;
        let payload = json!({"input": {"upload": input.upload_id}});
        match CsvStats
            .run(
                &context(&files, vec![input.clone()], CancellationToken::new()),
                payload,
            )
            .await
        {
            Err(JobError::Permanent(message)) => {
                assert!(message.contains(expected), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
    let bad = vec![b'a', b'\n', 0xff, 0xfe, b'\n'];
    let mut input = files.upload("alice", &bad, "text/csv").await;
    let run = CsvStats
        .run(
            &context(&files, vec![input.clone()], CancellationToken::new()),
            json!({"input": {"upload": input.upload_id}}),
        )
        .await;
    assert_eq!(
        run,
        Err(JobError::Permanent("row 2 is not UTF-8 text".to_owned()))
    );
    // An upload the job does not name, and one overwritten since.
    let other = json!({"input": {"upload": UploadId::new(0)}});
    assert!(matches!(
        CsvStats
            .run(
                &context(&files, vec![input.clone()], CancellationToken::new()),
                other
            )
            .await,
        Err(JobError::Permanent(_))
    ));
    input.etag = "\"stale\"".to_owned();
    match CsvStats
        .run(
            &context(&files, vec![input.clone()], CancellationToken::new()),
            json!({"input": {"upload": input.upload_id}}),
        )
        .await
    {
        Err(JobError::Permanent(message)) => assert!(message.contains("overwritten"), "{message}"),
        other => panic!("{other:?}"),
    }
}
