//! The checks of the API function's role ([`ApiStore`](jobline_core::store::ApiStore))
//! and the cancel it shares with operators: creation, what an enqueue did,
//! a caller's listing, the cancel and the delete.

use super::*;

/// `create` writes only a new id (or over an enqueue failure), and on a
/// taken one returns the existing job.
pub async fn create_is_conditional_on_a_new_id(store: &dyn JobStore) {
    let queued = job("primes").payload(json!({"upTo": 10})).build();
    store.create(&queued).await.unwrap();
    let rival = job("primes").id(queued.id).owner("bob").build();
    match store.create(&rival).await {
        Err(StoreError::Conflict {
            current: Some(existing),
        }) => assert_eq!(*existing, queued),
        other => panic!("expected a conflict with the existing job, got {other:?}"),
    }
    assert_eq!(store.get(queued.id).await.unwrap(), Some(queued));
    assert_eq!(store.get(JobId::random()).await.unwrap(), None);
}

/// `mark_enqueue_failed` fails (and finishes) a job no worker claimed,
/// which the same id may then create again.
pub async fn mark_enqueue_failed_only_before_a_claim(store: &dyn JobStore) {
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    let before = now_ms();
    let other_request = JobRecord {
        created_at: queued.created_at + 1,
        ..queued.clone()
    };
    assert!(
        matches!(
            store
                .mark_enqueue_failed(&other_request, "not mine", before)
                .await,
            Err(StoreError::Conflict { current: Some(_) })
        ),
        "only the request that created the record may mark it"
    );
    store
        .mark_enqueue_failed(&queued, "SQS unreachable", now_ms())
        .await
        .unwrap();
    let after = now_ms();
    let failed = stored(store, queued.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.enqueue_failed);
    assert_eq!(failed.error.as_deref(), Some("SQS unreachable"));
    let finished = failed.finished_at.expect("finishedAt is set");
    assert!((before..=after).contains(&finished), "{finished}");
    assert_eq!(
        refusal(store, queued.id, after).await,
        ClaimRefusal::Finished(JobState::Failed)
    );

    store
        .create(&queued)
        .await
        .expect("recreate over an enqueue failure");
    assert_eq!(store.get(queued.id).await.unwrap(), Some(queued.clone()));
    let running = store
        .claim(queued.id, after, after + 60_000, 1, TOKEN)
        .await
        .unwrap();
    match store.mark_enqueue_failed(&queued, "too late", after).await {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => assert_eq!(*current, running),
        other => panic!("expected a conflict with the claimed job, got {other:?}"),
    }
    let never_created = job("primes").build();
    assert!(matches!(
        store
            .mark_enqueue_failed(&never_created, "lost", after)
            .await,
        Err(StoreError::Conflict { current: None })
    ));
    assert!(matches!(
        store.mark_resending(running.id, after).await,
        Err(StoreError::Conflict { current: Some(_) })
    ));
}

/// A repeat of a submission marks the job before sending its message
/// again; from then on the creator's failed send cannot fail the job,
/// whose message may be in the queue. An enqueue-failed job is not
/// resent (its key creates it again).
pub async fn a_resent_job_is_never_marked_enqueue_failed(store: &dyn JobStore) {
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    let now = now_ms();
    store.mark_resending(queued.id, now).await.unwrap();
    assert_eq!(stored(store, queued.id).await.resent_at, Some(now));
    match store
        .mark_enqueue_failed(&queued, "send timed out", now)
        .await
    {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => assert_eq!(current.state, JobState::Queued),
        other => panic!("expected a conflict with the resent job, got {other:?}"),
    }
    assert_eq!(stored(store, queued.id).await.state, JobState::Queued);

    let unsent = job("primes").build();
    store.create(&unsent).await.unwrap();
    store
        .mark_enqueue_failed(&unsent, "lost", now)
        .await
        .unwrap();
    assert!(matches!(
        store.mark_resending(unsent.id, now).await,
        Err(StoreError::Conflict { current: Some(_) })
    ));
    assert!(matches!(
        store.mark_resending(JobId::random(), now).await,
        Err(StoreError::Conflict { current: None })
    ));
}

/// A cancel ends a `queued` job at once (out of the due index, and no
/// claim takes it), flags a `running` one for its worker, leaves a
/// cancelled one so, and refuses a finished one with its state.
pub async fn cancel_ends_queued_jobs_and_flags_running_ones(store: &dyn JobStore) {
    let now = now_ms();
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    for _ in 0..2 {
        match store.cancel(queued.id, now + 1).await.unwrap() {
            CancelOutcome::Cancelled(job) => {
                assert_eq!(job.state, JobState::Cancelled);
                assert_eq!(job.finished_at, Some(now + 1), "the first cancel's time");
            }
            other => panic!("expected the queued job cancelled, got {other:?}"),
        }
    }
    assert!(!listed(store, queued.id, far_after(now)).await);
    assert_eq!(
        refusal(store, queued.id, now + 2).await,
        ClaimRefusal::Finished(JobState::Cancelled)
    );
    assert_eq!(
        store.discard(queued.id, now + 2).await.unwrap(),
        DiscardOutcome::Unchanged(JobState::Cancelled)
    );
    assert_eq!(
        store.replay(queued.id, now_ms()).await.unwrap(),
        ReplayOutcome::Unchanged(JobState::Cancelled)
    );

    let running = claimed(store, now).await;
    match store.cancel(running.id, now + 3).await.unwrap() {
        CancelOutcome::Requested(job) => {
            assert_eq!(job.state, JobState::Running);
            assert!(job.cancel_requested);
        }
        other => panic!("expected a cancel request, got {other:?}"),
    }
    store
        .finish(running.id, 1, TOKEN, &Completion::Cancelled, now + 4)
        .await
        .unwrap();
    let cancelled = stored(store, running.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.finished_at, Some(now + 4));
    assert_eq!(cancelled.lease_expires_at, None);
    assert!(!listed(store, running.id, far_after(now)).await);

    let done = claimed(store, now).await;
    let result = Completion::Succeeded(json!(1));
    store.finish(done.id, 1, TOKEN, &result, now).await.unwrap();
    assert_eq!(
        store.cancel(done.id, now + 5).await.unwrap(),
        CancelOutcome::Finished(JobState::Succeeded)
    );
    assert_eq!(stored(store, done.id).await.state, JobState::Succeeded);
    assert_eq!(
        store.cancel(JobId::random(), now).await.unwrap(),
        CancelOutcome::Missing
    );
}

/// A listing pages through one caller's jobs, newest first, each page
/// reading at most its limit of index entries however many jobs other
/// callers have, with the jobs' fields but no payload or result.
pub async fn list_pages_through_ones_own_jobs_newest_first(store: &dyn JobStore) {
    let owner = format!("lister-{}", JobId::random());
    let base = now_ms();
    let mut mine = Vec::new();
    for i in 0..5 {
        let job = job("primes")
            .owner(&owner)
            .created_at(base + i)
            .payload(json!({"pad": "x".repeat(2_000), "i": i}))
            .build();
        store.create(&job).await.unwrap();
        mine.push(job.id);
    }
    for i in 0..8 {
        let theirs = job("primes")
            .owner("someone-else")
            .created_at(base + i)
            .build();
        store.create(&theirs).await.unwrap();
    }
    // A claimed job of the caller, created after the others: listed first.
    let running = job("primes").owner(&owner).created_at(base + 10).build();
    store.create(&running).await.unwrap();
    store
        .claim(running.id, base, base + 60_000, 1, TOKEN)
        .await
        .unwrap();
    mine.push(running.id);
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = store.list(&owner, after, 2).await.unwrap();
        assert!(
            page.scanned <= 2,
            "read {} entries for a page of 2",
            page.scanned
        );
        assert!(page.jobs.len() <= 2);
        for listed in &page.jobs {
            assert_eq!(listed.owner, owner);
            assert_eq!(listed.payload, serde_json::Value::Null, "no payload read");
            let expected = if listed.id == running.id {
                JobState::Running
            } else {
                JobState::Queued
            };
            assert_eq!(listed.state, expected);
            assert_eq!(listed.job_type, "primes");
        }
        seen.extend(page.jobs.iter().map(|listed| listed.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    mine.reverse();
    assert_eq!(seen, mine, "every job of the caller once, newest first");
    assert!(
        store
            .list("nobody", None, 10)
            .await
            .unwrap()
            .jobs
            .is_empty(),
        "a caller without jobs lists none"
    );
}

/// A delete removes a finished job (and its payload) at once, and
/// leaves an unfinished one.
pub async fn delete_removes_only_finished_jobs(store: &dyn JobStore) {
    let now = now_ms();
    let running = claimed(store, now).await;
    assert_eq!(
        store.delete(running.id).await.unwrap(),
        DeleteOutcome::Unfinished(JobState::Running)
    );
    assert!(store.get(running.id).await.unwrap().is_some());
    let large = job("primes")
        .payload(json!({"pad": "x".repeat(4_000)}))
        .build();
    store.create(&large).await.unwrap();
    store
        .claim(large.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    let done = Completion::Succeeded(json!({"count": 1}));
    store.finish(large.id, 1, TOKEN, &done, now).await.unwrap();
    assert_eq!(
        store.delete(large.id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(store.get(large.id).await.unwrap(), None);
    assert_eq!(
        store.delete(large.id).await.unwrap(),
        DeleteOutcome::Missing
    );
    // Its id can be written afresh: nothing of it is left.
    store.create(&large).await.unwrap();
}

/// A delayed job is `scheduled`: due from its `runAt` (listed due as one
/// queued then, so not late before it is due), never claimed before its
/// time, claimed from `scheduled` at it, cancelled at once like a queued
/// one, and run now only while it still is `scheduled`.
pub async fn a_scheduled_job_waits_for_its_time(store: &dyn JobStore) {
    let now = now_ms();
    let run_at = now + 40 * 24 * HOUR_MS;
    let later = job("primes").build().delayed_until(run_at);
    assert_eq!(later.state, JobState::Scheduled);
    store.create(&later).await.unwrap();
    assert_eq!(stored(store, later.id).await, later, "runAt round-trips");
    assert!(
        !listed(store, later.id, far_after(now)).await,
        "not late 30 days on: its bound counts from its runAt"
    );
    assert!(listed(store, later.id, far_after(run_at)).await);
    assert_eq!(
        refusal(store, later.id, run_at - 2_000).await,
        ClaimRefusal::NotYetDue { run_at },
        "never claimed early"
    );
    let claimed = store
        .claim(later.id, run_at, run_at + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!((claimed.state, claimed.attempts), (JobState::Running, 1));

    let cancelled = job("primes").build().delayed_until(run_at);
    store.create(&cancelled).await.unwrap();
    match store.cancel(cancelled.id, now + 1).await.unwrap() {
        CancelOutcome::Cancelled(job) => assert_eq!(job.state, JobState::Cancelled),
        other => panic!("expected the scheduled job cancelled, got {other:?}"),
    }
    assert!(!listed(store, cancelled.id, far_after(run_at)).await);
    match store.run_now(cancelled.id, now + 2).await {
        Err(StoreError::Conflict { current: Some(job) }) => {
            assert_eq!(job.state, JobState::Cancelled);
        }
        other => panic!("expected a cancelled job not to run now, got {other:?}"),
    }

    let soon = job("primes").build().delayed_until(run_at);
    store.create(&soon).await.unwrap();
    let queued = store.run_now(soon.id, now + 3).await.unwrap();
    assert_eq!(
        (queued.state, queued.run_at),
        (JobState::Queued, Some(now + 3))
    );
    let claimed = store
        .claim(soon.id, now + 4, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(claimed.state, JobState::Running);
    assert!(matches!(
        store.run_now(JobId::random(), now).await,
        Err(StoreError::Conflict { current: None })
    ));
}
