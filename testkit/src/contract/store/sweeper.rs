//! The checks of the sweeper function's role
//! ([`SweeperStore`](jobline_core::store::SweeperStore)): the due index,
//! the sweep, and the webhook index of the webhooks still owed.

use super::*;

/// The due index lists a job from its creation until its final state,
/// never before its `dueAt`: creation, claims, returns and replays keep
/// it there; finishing, discarding and an enqueue failure take it out.
pub async fn the_due_index_lists_only_unfinished_jobs(store: &dyn JobStore) {
    let now = now_ms();
    let far = far_after(now);
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    assert!(
        listed(store, queued.id, far).await,
        "a created job is listed"
    );
    assert!(
        !listed(store, queued.id, now).await,
        "a new job is not overdue"
    );
    store
        .claim(queued.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert!(
        listed(store, queued.id, far).await,
        "a claimed job is listed"
    );
    assert!(
        !listed(store, queued.id, now + 60_000).await,
        "not overdue before its lease ends"
    );
    store
        .return_to_queue(queued.id, 1, TOKEN, "again")
        .await
        .unwrap();
    assert!(
        listed(store, queued.id, far).await,
        "a returned job is listed"
    );
    // Claimed on a last delivery, the job is due a margin after its
    // lease; its message sent again renews its bound to a new job's
    // (here, the template's: more than two days).
    let late = job("primes").build();
    store.create(&late).await.unwrap();
    store
        .claim(late.id, now, now + 1_000, u32::MAX, TOKEN)
        .await
        .unwrap();
    let two_days = now + 2 * 86_400_000;
    assert!(listed(store, late.id, two_days).await);
    store.renew_due(late.id, now).await.unwrap();
    assert!(!listed(store, late.id, two_days).await, "renewed");
    assert!(listed(store, late.id, far).await);
    let done = job("primes").state(JobState::Succeeded).build();
    store.create(&done).await.unwrap();
    assert!(matches!(
        store.renew_due(done.id, now).await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .claim(queued.id, now, now + 60_000, 2, TOKEN)
        .await
        .unwrap();
    let done = Completion::Succeeded(json!(1));
    store.finish(queued.id, 2, TOKEN, &done, now).await.unwrap();
    assert!(
        !listed(store, queued.id, far).await,
        "a finished job is not"
    );

    let failing = claimed(store, now).await;
    let failed = Completion::Failed {
        error: "boom".into(),
        dead_lettered: false,
    };
    store
        .finish(failing.id, 1, TOKEN, &failed, now)
        .await
        .unwrap();
    assert!(!listed(store, failing.id, far).await, "a failed job is not");
    assert_eq!(
        store.replay(failing.id, now_ms()).await.unwrap(),
        ReplayOutcome::Replayed
    );
    assert!(listed(store, failing.id, far).await, "a replayed job is");
    assert!(
        !listed(store, failing.id, now).await,
        "a replayed job is not overdue"
    );
    store.discard(failing.id, now).await.unwrap();
    assert!(
        !listed(store, failing.id, far).await,
        "a discarded job is not"
    );

    let unsent = job("primes").build();
    store.create(&unsent).await.unwrap();
    store
        .mark_enqueue_failed(&unsent, "lost", now)
        .await
        .unwrap();
    assert!(!listed(store, unsent.id, far).await, "an unsent job is not");
    let finished = job("primes").state(JobState::Succeeded).build();
    store.create(&finished).await.unwrap();
    assert!(!listed(store, finished.id, far).await);
}

/// `sweep` fails an overdue unfinished job, once, and takes it out of
/// the index; it leaves alone a job that is not overdue or finished.
pub async fn sweep_fails_only_overdue_unfinished_jobs(store: &dyn JobStore) {
    let now = now_ms();
    let far = far_after(now);
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    assert_eq!(
        store.sweep(queued.id, now).await.unwrap(),
        SweepOutcome::Unchanged(JobState::Queued),
        "not overdue yet"
    );
    let SweepOutcome::Swept(swept) = store.sweep(queued.id, far).await.unwrap() else {
        panic!("an overdue job is swept");
    };
    assert_eq!(*swept, stored(store, queued.id).await);
    assert_eq!(swept.state, JobState::Failed);
    assert!(swept.dead_lettered);
    assert_eq!(swept.error.as_deref(), Some(SWEPT_ERROR));
    assert_eq!(swept.finished_at, Some(far));
    assert_eq!(swept.lease_expires_at, None);
    assert!(!listed(store, queued.id, far).await);
    assert_eq!(
        store.sweep(queued.id, far).await.unwrap(),
        SweepOutcome::Unchanged(JobState::Failed)
    );

    let running = claimed(store, now).await;
    let SweepOutcome::Swept(swept) = store.sweep(running.id, far).await.unwrap() else {
        panic!("an overdue running job is swept");
    };
    assert_eq!(swept.attempts, 1);
    let done = Completion::Succeeded(json!(1));
    assert!(
        matches!(
            store.finish(running.id, 1, TOKEN, &done, far).await,
            Err(StoreError::Conflict { .. })
        ),
        "the lost attempt cannot complete a swept job"
    );
    assert_eq!(
        store.replay(running.id, now_ms()).await.unwrap(),
        ReplayOutcome::Replayed
    );
    assert!(
        listed(store, running.id, far).await,
        "replayed: listed again"
    );

    let succeeded = job("primes").state(JobState::Succeeded).build();
    store.create(&succeeded).await.unwrap();
    assert_eq!(
        store.sweep(succeeded.id, far).await.unwrap(),
        SweepOutcome::Unchanged(JobState::Succeeded)
    );
    assert_eq!(
        store.sweep(JobId::random(), far).await.unwrap(),
        SweepOutcome::Missing
    );
}

/// A job with a callback URL is in the webhook index from its final
/// state until its delivery is recorded `delivered` or `failed`, listed
/// by its `finishedAt`; a replay lists it again for its new run;
/// `settle_webhook` takes it out. A job without a callback is never in it.
pub async fn owed_webhooks_are_listed_from_the_final_state_until_delivered(store: &dyn JobStore) {
    use jobline_core::job::{DeliveryState, WebhookDelivery};
    let now = now_ms();
    let far = far_after(now);
    let hooked = job("primes")
        .callback_url("https://hooks.example.com/x")
        .build();
    let plain = job("primes").build();
    for created in [&hooked, &plain] {
        store.create(created).await.unwrap();
        assert!(!owed(store, created.id, far).await, "unfinished: not owed");
        store
            .claim(created.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        store
            .finish(created.id, 1, TOKEN, &Completion::Succeeded(json!(1)), now)
            .await
            .unwrap();
    }
    assert!(owed(store, hooked.id, now + 1).await, "finished: owed");
    assert!(
        !owed(store, hooked.id, now).await,
        "listed by its finishedAt"
    );
    assert!(!owed(store, plain.id, far).await, "no callback: never owed");
    let delivery = |state, attempts| WebhookDelivery {
        for_finished_at: now,
        state,
        attempts,
        last_status: Some(503),
        at_ms: now,
    };
    let pending = delivery(DeliveryState::Pending, 1);
    store
        .record_delivery(hooked.id, None, &pending)
        .await
        .unwrap();
    assert!(owed(store, hooked.id, far).await, "pending: still owed");
    store
        .record_delivery(
            hooked.id,
            Some(&pending),
            &delivery(DeliveryState::Delivered, 2),
        )
        .await
        .unwrap();
    assert!(!owed(store, hooked.id, far).await, "delivered: settled");

    let failing = job("primes")
        .callback_url("https://hooks.example.com/y")
        .state(JobState::Failed)
        .attempts(1)
        .finished_at(now)
        .build();
    store.create(&failing).await.unwrap();
    assert!(owed(store, failing.id, far).await);
    store
        .record_delivery(failing.id, None, &delivery(DeliveryState::Failed, 8))
        .await
        .unwrap();
    assert!(!owed(store, failing.id, far).await, "failed: settled");
    store.replay(failing.id, now + 1).await.unwrap();
    assert!(!owed(store, failing.id, far).await, "replayed: unfinished");
    store
        .claim(failing.id, now + 2, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    store
        .finish(
            failing.id,
            2,
            TOKEN,
            &Completion::Succeeded(json!(2)),
            now + 3,
        )
        .await
        .unwrap();
    assert!(
        owed(store, failing.id, now + 4).await,
        "the new run's webhook is owed"
    );
    store.settle_webhook(failing.id).await.unwrap();
    assert!(!owed(store, failing.id, far).await, "settled");
    assert!(matches!(
        store.settle_webhook(JobId::random()).await,
        Err(StoreError::Conflict { current: None })
    ));
}
