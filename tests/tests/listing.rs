//! `GET /jobs` against DynamoDB on the emulator: a caller pages through its
//! own jobs, newest first, and each page reads at most its limit of index
//! entries on a table that holds many more jobs of other callers (a scan
//! filtered by owner would read them all). And the operators' listing by
//! state across callers: each page reads at most 16 × its limit entries of
//! the state index, whatever the table holds.

use futures_util::StreamExt;
use jobline_core::store::{ApiStore, OperatorStore, SHARDS};
use jobline_core::{JobId, JobState};
use jobline_testkit::testing::job;
use jobline_tests::TestEnv;
use lambda_http::Body;
use serde_json::Value;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Jobs of other callers beside the lister's.
const OTHERS: usize = 1_000;
/// The writes of those jobs in flight at once.
const WRITERS: usize = 32;
/// The lister's jobs.
const MINE: usize = 25;

#[tokio::test]
async fn pages_read_at_most_their_limit_whatever_other_callers_hold() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let store = env.store();
    // At most WRITERS at once: a thousand connections at once can outrun
    // the emulator's accept queue on a busy machine (a connect timeout).
    futures_util::stream::iter(0..OTHERS)
        .for_each_concurrent(WRITERS, |i| {
            let store = &store;
            async move {
                let other = job("primes").owner(&format!("caller-{}", i % 50)).build();
                store.create(&other).await.unwrap();
            }
        })
        .await;
    let base = jobline_testkit::testing::now_ms();
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
    let api = env.api(jobline_jobs::builtin());
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

/// Jobs of every state and many callers for the listing by state.
const SPREAD: usize = 1_000;

#[tokio::test]
async fn state_pages_read_a_bounded_number_of_entries_whatever_the_table_holds() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let store = Arc::new(env.store());
    let states = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];
    let base = jobline_testkit::testing::now_ms();
    let mut created = Vec::new();
    // In batches, so as not to flood the emulator beside the other test.
    for batch in (0..SPREAD).collect::<Vec<_>>().chunks(50) {
        let mut writes = JoinSet::new();
        for &i in batch {
            let store = Arc::clone(&store);
            // Ten jobs a millisecond (two of each state): ties in createdAt.
            let job = job("primes")
                .owner(&format!("caller-{}", i % 37))
                .state(states[i % states.len()])
                .created_at(base + (i / 10) as i64)
                .build();
            writes.spawn(async move {
                store.create(&job).await.unwrap();
                (job.state, job.created_at, job.id)
            });
        }
        created.extend(writes.join_all().await);
    }
    let newest_first = |state: JobState| {
        let mut keys: Vec<(i64, JobId)> = created
            .iter()
            .filter(|(s, _, _)| *s == state)
            .map(|&(_, created_at, id)| (created_at, id))
            .collect();
        keys.sort_by(|a, b| b.cmp(a));
        keys.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    let bound = usize::from(SHARDS) * 10;

    // Queued jobs come from the due index, which holds the running ones
    // too (due, like them, a fixed time after their creation): a page of
    // 10 entries holds the queued among the 10 newest unfinished jobs.
    let page = store
        .list_by_state(JobState::Queued, None, 10)
        .await
        .unwrap();
    assert!(page.scanned <= bound, "a page of 10 read {}", page.scanned);
    let ids: Vec<JobId> = page.jobs.iter().map(|job| job.id).collect();
    let mut unfinished: Vec<(i64, JobId, JobState)> = created
        .iter()
        .filter(|(s, _, _)| !s.is_finished())
        .map(|&(state, created_at, id)| (created_at, id, state))
        .collect();
    unfinished.sort_by_key(|&(at, id, _)| std::cmp::Reverse((at, id)));
    let expected: Vec<JobId> = unfinished[..10]
        .iter()
        .filter(|(_, _, state)| *state == JobState::Queued)
        .map(|&(_, id, _)| id)
        .collect();
    assert_eq!(ids, expected);
    assert!(page.jobs.iter().all(|job| job.state == JobState::Queued));
    assert!(page.next.is_some());
    let mut after = page.next;
    let mut queued = ids;
    while let Some(next) = after {
        let page = store
            .list_by_state(JobState::Queued, Some(next), 10)
            .await
            .unwrap();
        assert!(page.scanned <= bound, "a page of 10 read {}", page.scanned);
        queued.extend(page.jobs.iter().map(|job| job.id));
        after = page.next;
    }
    assert_eq!(
        queued,
        newest_first(JobState::Queued),
        "every queued job once"
    );
    assert!(matches!(
        store.list_by_state(JobState::Succeeded, None, 10).await,
        Err(jobline_core::StoreError::Invalid { .. })
    ));

    let mut after = None;
    let mut listed = Vec::new();
    for _ in 0..SPREAD {
        let page = store
            .list_by_state(JobState::Failed, after, 10)
            .await
            .unwrap();
        assert!(page.scanned <= bound, "a page of 10 read {}", page.scanned);
        assert!(page.jobs.len() <= 10);
        assert!(page.jobs.iter().all(|job| job.state == JobState::Failed));
        listed.extend(page.jobs.iter().map(|job| job.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let failed = newest_first(JobState::Failed);
    assert_eq!(failed.len(), SPREAD / states.len());
    assert_eq!(listed, failed, "every failed job once, newest first");
    env.cleanup().await;
}
