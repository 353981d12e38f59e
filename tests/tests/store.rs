//! The DynamoDB job store against moto: the conditional writes that make
//! claims and completions safe.

use jobline_shared::aws::{Clients, TrustRoots};
use jobline_shared::job::{ClaimRefusal, now_ms};
use jobline_shared::queue::Receive;
use jobline_shared::store::ReplayOutcome;
use jobline_shared::{
    Completion, JobId, JobMessage, JobQueue, JobRecord, JobRequest, JobState, JobStore, StoreError,
};
use jobline_tests::TestEnv;
use serde_json::json;

fn queued_job() -> JobRecord {
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 10}),
    };
    JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 30)
}

#[tokio::test]
async fn create_is_conditional_and_returns_the_existing_job() {
    let env = TestEnv::new().await;
    let store = env.store();
    let job = queued_job();
    store.create(&job).await.unwrap();
    match store.create(&job).await {
        Err(StoreError::Conflict {
            current: Some(existing),
        }) => assert_eq!(*existing, job),
        other => panic!("expected a conflict with the existing job, got {other:?}"),
    }
    assert_eq!(store.get(job.id).await.unwrap(), Some(job));
    assert_eq!(store.get(JobId::random()).await.unwrap(), None);
    env.cleanup().await;
}

#[tokio::test]
async fn claim_then_fenced_completion() {
    let env = TestEnv::new().await;
    let store = env.store();
    let job = queued_job();
    store.create(&job).await.unwrap();
    let now = now_ms();
    let claimed = store.claim(job.id, now, now + 60_000).await.unwrap();
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.started_at, Some(now));
    assert_eq!(claimed.payload, job.payload);

    // A second claim while the lease is live is refused, with the item.
    let refused = store
        .claim(job.id, now + 1, now + 60_000)
        .await
        .unwrap_err();
    let StoreError::Conflict { current } = refused else {
        panic!("expected a conflict, got {refused:?}")
    };
    assert_eq!(
        ClaimRefusal::from_current(current.as_deref(), now + 1),
        ClaimRefusal::Leased {
            until_ms: now + 60_000
        }
    );

    // A stale attempt number cannot complete the job.
    let done = Completion::Succeeded(json!({"count": 4}));
    assert!(matches!(
        store.finish(job.id, 2, &done, now + 2).await,
        Err(StoreError::Conflict { .. })
    ));
    store.finish(job.id, 1, &done, now + 2).await.unwrap();
    let finished = store.get(job.id).await.unwrap().unwrap();
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.result, Some(json!({"count": 4})));
    assert_eq!(finished.finished_at, Some(now + 2));
    assert_eq!(finished.lease_expires_at, None);

    // A duplicate delivery's claim fails once and sees the finished job.
    let StoreError::Conflict { current } = store.claim(job.id, now + 3, now + 9).await.unwrap_err()
    else {
        panic!("expected a conflict")
    };
    assert_eq!(
        ClaimRefusal::from_current(current.as_deref(), now + 3),
        ClaimRefusal::Finished(JobState::Succeeded)
    );
    env.cleanup().await;
}

#[tokio::test]
async fn expired_leases_are_reclaimed_and_fence_the_old_attempt() {
    let env = TestEnv::new().await;
    let store = env.store();
    let job = queued_job();
    store.create(&job).await.unwrap();
    let now = now_ms();
    store.claim(job.id, now, now + 10).await.unwrap();
    let second = store.claim(job.id, now + 11, now + 60_000).await.unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(second.started_at, Some(now), "first start is kept");
    let failed = Completion::Failed {
        error: "late".into(),
        dead_lettered: false,
    };
    assert!(store.finish(job.id, 1, &failed, now + 12).await.is_err());
    store.return_to_queue(job.id, 2, "try again").await.unwrap();
    let released = store.get(job.id).await.unwrap().unwrap();
    assert_eq!(released.state, JobState::Queued);
    assert_eq!(released.error.as_deref(), Some("try again"));
    env.cleanup().await;
}

#[tokio::test]
async fn requeue_only_moves_failed_jobs() {
    let env = TestEnv::new().await;
    let store = env.store();
    let job = queued_job();
    store.create(&job).await.unwrap();
    assert_eq!(
        store.replay(job.id).await.unwrap(),
        ReplayOutcome::Unchanged(JobState::Queued)
    );
    assert_eq!(
        store.replay(JobId::random()).await.unwrap(),
        ReplayOutcome::Missing
    );
    let now = now_ms();
    store.claim(job.id, now, now + 60_000).await.unwrap();
    let dead = Completion::Failed {
        error: "boom".into(),
        dead_lettered: true,
    };
    store.finish(job.id, 1, &dead, now).await.unwrap();
    assert_eq!(store.replay(job.id).await.unwrap(), ReplayOutcome::Replayed);
    let replayed = store.get(job.id).await.unwrap().unwrap();
    assert_eq!(replayed.state, JobState::Queued);
    assert_eq!(replayed.replays, 1);
    assert!(!replayed.dead_lettered);
    assert_eq!(replayed.finished_at, None);
    env.cleanup().await;
}

#[tokio::test]
async fn a_job_whose_message_was_not_sent_can_be_submitted_again() {
    let env = TestEnv::new().await;
    let store = env.store();
    let job = queued_job();
    store.create(&job).await.unwrap();
    store
        .mark_enqueue_failed(&job, "SQS unreachable")
        .await
        .unwrap();
    let failed = store.get(job.id).await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.enqueue_failed);
    store
        .create(&job)
        .await
        .expect("recreate over an enqueue failure");
    assert_eq!(store.get(job.id).await.unwrap(), Some(job));
    env.cleanup().await;
}

/// The functions' clients (`Clients::for_lambda`: credentials and region
/// from Lambda's variables, their own HTTPS client) honour
/// `AWS_ENDPOINT_URL` and reach the same table and queue.
#[tokio::test]
async fn lambda_clients_reach_the_configured_endpoint() {
    let env = TestEnv::new().await;
    let lambda = Clients::for_lambda(TrustRoots::AmazonTrustServices).await;
    let job = queued_job();
    lambda.store(&env.config).create(&job).await.unwrap();
    assert_eq!(env.store().get(job.id).await.unwrap(), Some(job.clone()));
    let message = JobMessage { job_id: job.id };
    lambda.queue(&env.config).send(&message).await.unwrap();
    let received = env
        .queue()
        .receive(Receive {
            max_messages: 10,
            wait_secs: 1,
            visibility_secs: 30,
        })
        .await
        .unwrap();
    let bodies: Vec<&str> = received.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, [message.encode()]);
    env.cleanup().await;
}
