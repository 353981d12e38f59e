//! The checks of what every role's writes keep alike: the stored error's
//! budget, DynamoDB's item size limit, and a large payload stored apart.

use super::*;

/// Every write cuts the error it stores to the error budget.
pub async fn stored_errors_are_bounded(store: &dyn JobStore) {
    let now = now_ms();
    let long = "é".repeat(3_000);
    let bounded = Some(bound_error(&long).into_owned());

    let running = claimed(store, now).await;
    store
        .return_to_queue(running.id, 1, TOKEN, &long)
        .await
        .unwrap();
    assert_eq!(stored(store, running.id).await.error, bounded);
    store
        .claim(running.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    let failed = Completion::Failed {
        error: long.clone(),
        dead_lettered: false,
    };
    store
        .finish(running.id, 2, TOKEN, &failed, now)
        .await
        .unwrap();
    assert_eq!(stored(store, running.id).await.error, bounded);

    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    store
        .mark_enqueue_failed(&queued, &long, now)
        .await
        .unwrap();
    assert_eq!(stored(store, queued.id).await.error, bounded);

    let created = job("primes").error(&long).build();
    store.create(&created).await.unwrap();
    assert_eq!(stored(store, created.id).await.error, bounded);
}

/// A job with a large payload (200 KiB: stored apart by DynamoDB, see
/// [`jobline_dynamodb::item::INLINE_PAYLOAD_BYTES`]) keeps its payload
/// through create, claim, a lost claim answer, finish, replay and
/// discard, and a reused key with another payload leaves it alone.
pub async fn large_payloads_round_trip(store: &dyn JobStore) {
    let now = now_ms();
    let large = job("primes")
        .payload(json!({"upTo": 10, "pad": "p".repeat(200 * 1024)}))
        .build();
    store.create(&large).await.unwrap();
    assert_eq!(stored(store, large.id).await, large);
    let rival = job("primes")
        .id(large.id)
        .payload(json!({"upTo": 11, "pad": "q".repeat(200 * 1024)}))
        .build();
    match store.create(&rival).await {
        Err(StoreError::Conflict {
            current: Some(existing),
        }) => assert_eq!(*existing, large),
        other => panic!("expected a conflict with the existing job, got {other:?}"),
    }
    assert_eq!(stored(store, large.id).await.payload, large.payload);

    let claimed = store
        .claim(large.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(claimed.payload, large.payload);
    let again = store
        .claim(large.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap();
    assert_eq!(again, claimed, "a lost claim answer is recognised whole");
    let failed = Completion::Failed {
        error: "boom".into(),
        dead_lettered: true,
    };
    store
        .finish(large.id, 1, TOKEN, &failed, now + 1)
        .await
        .unwrap();
    assert_eq!(stored(store, large.id).await.payload, large.payload);

    assert_eq!(
        store.replay(large.id, now_ms()).await.unwrap(),
        ReplayOutcome::Replayed
    );
    let replayed = stored(store, large.id).await;
    assert!(replayed.expires_at >= large.expires_at);
    let claimed = store
        .claim(large.id, now + 2, now + 60_000, 1, OTHER)
        .await
        .unwrap();
    assert_eq!((claimed.attempts, &claimed.payload), (2, &large.payload));
    let done = Completion::Succeeded(json!({"count": 4}));
    store
        .finish(large.id, 2, OTHER, &done, now + 3)
        .await
        .unwrap();
    let finished = stored(store, large.id).await;
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.result, Some(json!({"count": 4})));
    assert_eq!(finished.payload, large.payload);

    let discarded = job("primes")
        .payload(json!({"pad": "d".repeat(200 * 1024)}))
        .build();
    store.create(&discarded).await.unwrap();
    store
        .mark_enqueue_failed(&discarded, "no queue", now)
        .await
        .unwrap();
    assert_eq!(
        store.discard(discarded.id, now).await.unwrap(),
        DiscardOutcome::Discarded
    );
    let kept = stored(store, discarded.id).await;
    assert!(kept.enqueue_failed && kept.discarded, "{kept:?}");
    assert_eq!(kept.payload, discarded.payload);
}

/// An item over DynamoDB's 400 KB is refused as `Invalid`; a refused
/// create writes nothing. (DynamoDB also leaves an item alone when it
/// refuses an update, but moto applies part of it before refusing, so
/// the contract does not check that.)
pub async fn oversized_items_are_invalid(store: &dyn JobStore) {
    let huge = json!("x".repeat(MAX_ITEM_BYTES));
    let too_large = job("primes").payload(huge.clone()).build();
    assert!(matches!(
        store.create(&too_large).await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(store.get(too_large.id).await.unwrap(), None);

    let running = claimed(store, now_ms()).await;
    let result = Completion::Succeeded(huge);
    assert!(matches!(
        store.finish(running.id, 1, TOKEN, &result, now_ms()).await,
        Err(StoreError::Invalid { .. })
    ));
}
