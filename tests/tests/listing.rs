//! `GET /jobs` against DynamoDB on the emulator: a caller pages through its
//! own jobs, newest first, and each page reads at most its limit of index
//! entries on a table that holds many more jobs of other callers (a scan
//! filtered by owner would read them all).

use jobline_shared::store::JobStore;
use jobline_shared::testing::job;
use jobline_shared::{JobId, JobTypes};
use jobline_tests::TestEnv;
use lambda_http::Body;
use serde_json::Value;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Jobs of other callers beside the lister's.
const OTHERS: usize = 1_000;
/// The lister's jobs.
const MINE: usize = 25;

#[tokio::test]
async fn pages_read_at_most_their_limit_whatever_other_callers_hold() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let store = Arc::new(env.store());
    let mut writes = JoinSet::new();
    for i in 0..OTHERS {
        let store = Arc::clone(&store);
        writes.spawn(async move {
            let other = job("primes").owner(&format!("caller-{}", i % 50)).build();
            store.create(&other).await.unwrap();
        });
    }
    writes.join_all().await;
    let base = jobline_shared::job::now_ms();
    let mut mine = Vec::new();
    for i in 0..MINE {
        let job = job("primes")
            .owner("anonymous")
            .created_at(base + i as i64)
            .build();
        store.create(&job).await.unwrap();
        mine.push(job.id);
    }
    mine.reverse();

    // The store: each page one bounded query.
    let mut after = None;
    let mut listed = Vec::new();
    loop {
        let page = store.list("anonymous", after, 10).await.unwrap();
        assert!(page.scanned <= 10, "a page of 10 read {}", page.scanned);
        listed.extend(page.jobs.iter().map(|job| job.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, mine);

    // The API: the same pages, through opaque cursors.
    let api = env.api(JobTypes::builtin());
    let mut seen: Vec<JobId> = Vec::new();
    let mut path = "/jobs?limit=10".to_owned();
    for _ in 0..10 {
        let request = http::Request::builder()
            .uri(&path)
            .body(Body::Empty)
            .unwrap();
        let reply = api.handle(request).await;
        assert_eq!(reply.response.status(), 200);
        let page: Value = serde_json::from_slice(reply.response.body().as_ref()).unwrap();
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|job| job["jobId"].as_str().unwrap().parse::<JobId>().unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/jobs?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, mine);
    env.cleanup().await;
}
