//! The checks of the worker function's role
//! ([`WorkerStore`](jobline_core::store::WorkerStore)): the claim, the fenced
//! writes that end or hand back an attempt (also when their answer was
//! lost), the heartbeat and the continuation.

use super::*;

/// A claim takes a `queued` job, or a `running` one whose lease ran out
/// or that has none; it refuses a live lease, a finished job and a
/// missing one, returning the current item.
pub async fn claim_takes_queued_jobs_and_expired_or_missing_leases(store: &dyn JobStore) {
    let now = now_ms();
    let queued = job("primes").payload(json!({"upTo": 10})).build();
    store.create(&queued).await.unwrap();
    let claimed = store
        .claim(queued.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.started_at, Some(now));
    assert_eq!(claimed.lease_expires_at, Some(now + 60_000));
    assert_eq!(claimed.payload, queued.payload);
    assert_eq!(stored(store, queued.id).await, claimed);
    assert_eq!(
        refusal(store, queued.id, now + 1).await,
        ClaimRefusal::Leased {
            until_ms: now + 60_000
        }
    );

    let expired = job("primes")
        .state(JobState::Running)
        .attempts(1)
        .started_at(now - 100)
        .lease_until(now - 1)
        .build();
    store.create(&expired).await.unwrap();
    let taken_over = store
        .claim(expired.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(taken_over.attempts, 2);
    assert_eq!(
        taken_over.started_at,
        Some(now - 100),
        "first start is kept"
    );
    assert_eq!(taken_over.lease_expires_at, Some(now + 60_000));

    let unleased = job("primes").state(JobState::Running).attempts(1).build();
    store.create(&unleased).await.unwrap();
    let taken_over = store
        .claim(unleased.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(taken_over.attempts, 2, "running with no lease is claimable");

    for state in [JobState::Succeeded, JobState::Failed] {
        let done = job("primes").state(state).attempts(1).build();
        store.create(&done).await.unwrap();
        assert_eq!(
            refusal(store, done.id, now).await,
            ClaimRefusal::Finished(state)
        );
        assert_eq!(
            stored(store, done.id).await,
            done,
            "a refusal changes nothing"
        );
    }
    assert_eq!(
        refusal(store, JobId::random(), now).await,
        ClaimRefusal::Missing
    );
}

/// `finish` completes only the attempt that holds the job.
pub async fn finish_is_fenced_by_the_attempt(store: &dyn JobStore) {
    let now = now_ms();
    let queued = job("primes").error("an earlier attempt failed").build();
    store.create(&queued).await.unwrap();
    store
        .claim(queued.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    let done = Completion::Succeeded(json!({"count": 4}));
    match store.finish(queued.id, 2, TOKEN, &done, now + 2).await {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => {
            assert_eq!(current.attempts, 1);
        }
        other => panic!("expected a stale attempt to conflict, got {other:?}"),
    }
    store
        .finish(queued.id, 1, TOKEN, &done, now + 2)
        .await
        .unwrap();
    let succeeded = stored(store, queued.id).await;
    assert_eq!(succeeded.state, JobState::Succeeded);
    assert_eq!(succeeded.result, Some(json!({"count": 4})));
    assert_eq!(succeeded.finished_at, Some(now + 2));
    assert_eq!(succeeded.lease_expires_at, None);
    assert_eq!(succeeded.error, None);
    assert!(matches!(
        store.finish(queued.id, 1, OTHER, &done, now + 3).await,
        Err(StoreError::Conflict { .. })
    ));

    let failing = claimed(store, now).await;
    let dead = Completion::Failed {
        error: "boom".into(),
        dead_lettered: true,
    };
    store
        .finish(failing.id, 1, TOKEN, &dead, now + 4)
        .await
        .unwrap();
    let failed = stored(store, failing.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert!(failed.dead_lettered);
    assert_eq!(failed.finished_at, Some(now + 4));
    assert_eq!(failed.lease_expires_at, None);

    // An attempt whose lease was taken over cannot complete the job.
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    store
        .claim(queued.id, now, now + 10, 1, TOKEN)
        .await
        .unwrap();
    store
        .claim(queued.id, now + 11, now + 60_000, 1, OTHER)
        .await
        .unwrap();
    assert!(matches!(
        store.finish(queued.id, 1, TOKEN, &done, now + 12).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(stored(store, queued.id).await.state, JobState::Running);
}

/// A delivery's claim, finish or return that is sent again after it
/// landed (its answer was lost, the SDK retried, the store refused the
/// retry) is recognised by its claim token: the claim returns the job
/// with no second attempt, the finish and the return succeed. Another
/// delivery's token, another attempt or an operator's discard is still
/// refused.
pub async fn writes_whose_answer_was_lost_are_recognised(store: &dyn JobStore) {
    let now = now_ms();
    let running = claimed(store, now).await;
    assert_eq!(running.claim_token.as_deref(), Some(TOKEN));
    let again = store
        .claim(running.id, now + 1, now + 60_000, 1, TOKEN)
        .await;
    assert_eq!(again.unwrap(), running, "the same attempt");
    assert_eq!(stored(store, running.id).await, running, "nothing changed");
    assert_eq!(
        refusal(store, running.id, now + 1).await,
        ClaimRefusal::Leased {
            until_ms: now + 60_000
        }
    );

    let done = Completion::Succeeded(json!({"count": 4}));
    store
        .finish(running.id, 1, TOKEN, &done, now + 2)
        .await
        .unwrap();
    let succeeded = stored(store, running.id).await;
    store
        .finish(running.id, 1, TOKEN, &done, now + 3)
        .await
        .unwrap();
    assert_eq!(stored(store, running.id).await, succeeded, "written once");
    let failed = Completion::Failed {
        error: "boom".into(),
        dead_lettered: false,
    };
    for (attempt, token, completion) in [(1, OTHER, &done), (2, TOKEN, &done), (1, TOKEN, &failed)]
    {
        assert!(
            matches!(
                store
                    .finish(running.id, attempt, token, completion, now + 4)
                    .await,
                Err(StoreError::Conflict { .. })
            ),
            "attempt {attempt}, token {token}, {completion:?}"
        );
    }
    assert!(
        matches!(
            store
                .claim(running.id, now + 5, now + 60_000, 1, TOKEN)
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "a finished job is not claimed again"
    );

    let returned = claimed(store, now).await;
    store
        .return_to_queue(returned.id, 1, TOKEN, "later")
        .await
        .unwrap();
    store
        .return_to_queue(returned.id, 1, TOKEN, "later")
        .await
        .unwrap();
    assert!(matches!(
        store.return_to_queue(returned.id, 1, OTHER, "later").await,
        Err(StoreError::Conflict { .. })
    ));
    let second = store
        .claim(returned.id, now + 1, now + 60_000, 1, OTHER)
        .await
        .unwrap();
    assert_eq!(second.attempts, 2);
    assert!(matches!(
        store.return_to_queue(returned.id, 1, TOKEN, "stale").await,
        Err(StoreError::Conflict { .. })
    ));

    let discarded = claimed(store, now).await;
    store.discard(discarded.id, now + 1).await.unwrap();
    let dead = Completion::Failed {
        error: "boom".into(),
        dead_lettered: true,
    };
    assert!(
        matches!(
            store.finish(discarded.id, 1, TOKEN, &dead, now + 2).await,
            Err(StoreError::Conflict { .. })
        ),
        "an operator's discard is not the attempt's failure"
    );
}

/// `return_to_queue` puts the holding attempt's job back in `queued`,
/// with its error, fenced like `finish`.
pub async fn return_to_queue_keeps_the_error(store: &dyn JobStore) {
    let now = now_ms();
    let running = claimed(store, now).await;
    assert!(matches!(
        store.return_to_queue(running.id, 2, TOKEN, "stale").await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .return_to_queue(running.id, 1, TOKEN, "try again")
        .await
        .unwrap();
    let returned = stored(store, running.id).await;
    assert_eq!(returned.state, JobState::Queued);
    assert_eq!(returned.error.as_deref(), Some("try again"));
    assert_eq!(returned.lease_expires_at, None);
    assert_eq!(returned.attempts, 1);
    let again = store
        .claim(running.id, now + 1, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert!(matches!(
        store.return_to_queue(running.id, 1, TOKEN, "stale").await,
        Err(StoreError::Conflict { .. })
    ));
}

/// A heartbeat of the running attempt renews its lease and stores new
/// progress and checkpoint (keeping the old ones when it has none); it is
/// fenced by the attempt and the delivery's token, and tells the attempt
/// when a client asked to cancel. Only the claim reads the checkpoint back:
/// every other read says when it was saved.
pub async fn heartbeats_renew_the_lease_and_carry_the_cancel(store: &dyn JobStore) {
    let now = now_ms();
    let running = claimed(store, now).await;
    let progress = Progress::new(0.25, "a quarter", now + 1);
    let checkpoint = json!({"next": 250});
    let beat = Heartbeat {
        now_ms: now + 1,
        lease_until_ms: now + 120_000,
        progress: Some(&progress),
        checkpoint: Some(&checkpoint),
    };
    let renewed = store.heartbeat(running.id, 1, TOKEN, &beat).await.unwrap();
    assert!(!renewed.cancel_requested);
    let beaten = stored(store, running.id).await;
    assert_eq!(beaten.lease_expires_at, Some(now + 120_000));
    assert_eq!(beaten.progress, Some(progress.clone()));
    assert_eq!(
        beaten.checkpoint, None,
        "a read leaves the checkpoint apart"
    );
    assert_eq!(beaten.checkpoint_at, Some(now + 1));
    assert_eq!(beaten.state, JobState::Running);
    assert!(listed(store, running.id, far_after(now)).await);
    assert!(
        matches!(
            refusal(store, running.id, now + 90_000).await,
            ClaimRefusal::Leased { until_ms } if until_ms == now + 120_000
        ),
        "the renewed lease holds past the claim's"
    );

    let bare = Heartbeat {
        now_ms: now + 2,
        lease_until_ms: now + 130_000,
        progress: None,
        checkpoint: None,
    };
    for (attempt, token) in [(1, OTHER), (2, TOKEN)] {
        assert!(
            matches!(
                store.heartbeat(running.id, attempt, token, &bare).await,
                Err(StoreError::Conflict { current: Some(_) })
            ),
            "attempt {attempt} of delivery {token} is fenced out"
        );
    }
    store.heartbeat(running.id, 1, TOKEN, &bare).await.unwrap();
    let kept = stored(store, running.id).await;
    assert_eq!(kept.lease_expires_at, Some(now + 130_000));
    assert_eq!(
        (kept.progress, kept.checkpoint_at),
        (Some(progress), Some(now + 1)),
        "a beat with nothing new keeps what was written"
    );

    // The lease runs out; the next claim resumes from the checkpoint.
    let taken = store
        .claim(running.id, now + 140_000, now + 200_000, 2, OTHER)
        .await
        .unwrap();
    assert_eq!(taken.attempts, 2);
    assert_eq!(taken.checkpoint, Some(checkpoint.clone()));
    let stale = Heartbeat {
        now_ms: now + 140_001,
        checkpoint: Some(&json!({"next": 1})),
        ..bare
    };
    assert!(
        matches!(
            store.heartbeat(running.id, 1, TOKEN, &stale).await,
            Err(StoreError::Conflict { .. })
        ),
        "the attempt whose lease ran out is fenced out, checkpoint and all"
    );
    // Over the inline size: stored apart from the job's record.
    let newer = json!({"next": 500, "seen": "x".repeat(1_000)});
    let beat = Heartbeat {
        now_ms: now + 140_002,
        lease_until_ms: now + 200_000,
        progress: None,
        checkpoint: Some(&newer),
    };
    store.heartbeat(running.id, 2, OTHER, &beat).await.unwrap();
    assert_eq!(
        stored(store, running.id).await.checkpoint_at,
        Some(now + 140_002)
    );
    // The next attempt after this one's lease gets the newer checkpoint.
    let third = store
        .claim(running.id, now + 250_000, now + 300_000, 3, "third")
        .await
        .unwrap();
    assert_eq!(third.checkpoint, Some(newer));

    assert!(matches!(
        store.cancel(running.id, now + 250_001).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    let renewed = store
        .heartbeat(running.id, 3, "third", &bare)
        .await
        .unwrap();
    assert!(renewed.cancel_requested);
    assert!(matches!(
        store.heartbeat(JobId::random(), 1, TOKEN, &bare).await,
        Err(StoreError::Conflict { current: None })
    ));
}

/// A continuation puts the running attempt's job back in `queued` with
/// its checkpoint and one more continuation, fenced and idempotent; the
/// next claim finds the checkpoint.
pub async fn suspend_queues_a_continuation_with_its_checkpoint(store: &dyn JobStore) {
    let now = now_ms();
    let running = claimed(store, now).await;
    let checkpoint = json!({"next": 1000});
    for _ in 0..2 {
        // The second is a retry whose first answer was lost.
        store
            .suspend(running.id, 1, TOKEN, Some(&checkpoint), now + 1)
            .await
            .unwrap();
    }
    let queued = stored(store, running.id).await;
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.continuations, 1);
    assert_eq!(
        queued.checkpoint, None,
        "a read leaves the checkpoint apart"
    );
    assert_eq!(queued.checkpoint_at, Some(now + 1));
    assert_eq!(queued.lease_expires_at, None);
    assert!(listed(store, running.id, far_after(now)).await);
    assert!(
        matches!(
            store.suspend(running.id, 1, OTHER, None, now + 2).await,
            Err(StoreError::Conflict { .. })
        ),
        "another delivery's suspend of a queued job is refused"
    );

    let again = store
        .claim(running.id, now + 3, now + 60_000, 1, OTHER)
        .await
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(again.checkpoint, Some(checkpoint.clone()));
    store
        .suspend(running.id, 2, OTHER, None, now + 4)
        .await
        .unwrap();
    let kept = stored(store, running.id).await;
    assert_eq!(kept.continuations, 2);
    assert_eq!(kept.checkpoint_at, Some(now + 1));
    let third = store
        .claim(running.id, now + 5, now + 60_000, 1, "third")
        .await
        .unwrap();
    assert_eq!(
        third.checkpoint,
        Some(checkpoint),
        "no new checkpoint keeps the last"
    );
}

/// A success whose result is stored apart keeps only the result's key,
/// fenced by the attempt and idempotent like any finish.
pub async fn a_linked_result_is_stored_as_its_key(store: &dyn JobStore) {
    let now = now_ms();
    let running = claimed(store, now).await;
    let linked = Completion::SucceededLinked("results/a/1.json".into());
    store
        .finish(running.id, 2, TOKEN, &linked, now)
        .await
        .expect_err("a stale attempt's finish is refused");
    for _ in 0..2 {
        store
            .finish(running.id, 1, TOKEN, &linked, now)
            .await
            .unwrap();
    }
    let done = stored(store, running.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, None);
    assert_eq!(done.result_key.as_deref(), Some("results/a/1.json"));
}
