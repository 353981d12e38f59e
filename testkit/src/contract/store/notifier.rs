//! The checks of the notifier function's role
//! ([`NotifierStore`](jobline_core::store::NotifierStore)): a webhook
//! delivery's record, written only over the one its notifier read.

use super::*;

/// A webhook delivery is recorded only on a finished job, for the final
/// state it announces, over the record its notifier read: a second
/// notifier that read the same record is refused, with the job.
pub async fn a_delivery_is_recorded_only_over_what_was_seen(store: &dyn JobStore) {
    use jobline_core::job::{DeliveryState, WebhookDelivery};
    let now = now_ms();
    let running = claimed(store, now).await;
    let attempt = |attempts, state| WebhookDelivery {
        for_finished_at: now,
        state,
        attempts,
        last_status: Some(503),
        at_ms: now + i64::from(attempts),
    };
    let first = attempt(1, DeliveryState::Pending);
    let refused = store.record_delivery(running.id, None, &first).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { current: Some(_) })),
        "an unfinished job has no delivery: {refused:?}"
    );
    let done = Completion::Succeeded(json!(1));
    store
        .finish(running.id, 1, TOKEN, &done, now)
        .await
        .unwrap();
    let stale = WebhookDelivery {
        for_finished_at: now - 1,
        ..first
    };
    assert!(matches!(
        store.record_delivery(running.id, None, &stale).await,
        Err(StoreError::Conflict { current: Some(_) })
    ));
    store
        .record_delivery(running.id, None, &first)
        .await
        .unwrap();
    let again = store.record_delivery(running.id, None, &first).await;
    match again {
        Err(StoreError::Conflict { current: Some(job) }) => {
            assert_eq!(job.webhook, Some(first), "the conflict carries the record");
        }
        other => panic!("a second notifier that saw no record is refused: {other:?}"),
    }
    let second = attempt(2, DeliveryState::Delivered);
    store
        .record_delivery(running.id, Some(&first), &second)
        .await
        .unwrap();
    assert!(
        store
            .record_delivery(running.id, Some(&first), &attempt(2, DeliveryState::Failed))
            .await
            .is_err()
    );
    let job = stored(store, running.id).await;
    assert_eq!(job.webhook, Some(second));
    assert_eq!(job.state, JobState::Succeeded, "the job is untouched");
    assert!(matches!(
        store.record_delivery(JobId::random(), None, &first).await,
        Err(StoreError::Conflict { current: None })
    ));
}
