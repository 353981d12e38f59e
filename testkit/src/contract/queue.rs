//! The checks of a [`JobQueue`]: what SQS and the fake both honour.

use jobline_core::JobQueue;
use jobline_core::caller::CallerKey;
use jobline_core::job::JobId;
use jobline_core::limits::SQS_MAX_BATCH_ENTRIES;
use jobline_core::queue::{JobMessage, Receive, ReceivedMessage, VisibilityChange};
use jobline_core::trace_context::{MESSAGE_ATTRIBUTE, TraceContext};
use std::collections::BTreeSet;

fn receive(max_messages: i32, wait_secs: i32) -> Receive {
    Receive {
        max_messages,
        wait_secs,
        visibility_secs: 30,
    }
}

/// A message sent in a caller's group (SQS fair queues' tenant) comes back
/// in it, through a retry too; one sent in none comes back in none.
pub async fn a_message_keeps_its_callers_group(queue: &dyn JobQueue) {
    let caller = CallerKey::of("arn:aws:iam::123456789012:user/alice");
    let grouped = JobMessage::new(JobId::random()).in_group(Some(caller));
    queue.send(&grouped).await.unwrap();
    let batch = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(batch[0].group(), Some(caller));
    queue
        .change_visibility(&batch[0].receipt_handle, 0)
        .await
        .unwrap();
    let again = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(again[0].group(), Some(caller), "a retry keeps its group");
    queue
        .delete(&[again[0].receipt_handle.clone()])
        .await
        .unwrap();

    queue.send(&JobMessage::new(JobId::random())).await.unwrap();
    let plain = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(plain[0].group(), None);
    queue
        .delete(&[plain[0].receipt_handle.clone()])
        .await
        .unwrap();
}

/// A message sent with a trace context carries it as its `traceparent`
/// message attribute, through a retry too; one sent without carries none.
pub async fn a_message_carries_its_trace_context(queue: &dyn JobQueue) {
    let context = TraceContext::new_root();
    let traced = JobMessage::new(JobId::random()).traced(Some(context));
    queue.send(&traced).await.unwrap();
    let batch = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(batch[0].traceparent(), Some(context));
    assert_eq!(
        batch[0].message_attributes[MESSAGE_ATTRIBUTE],
        context.to_string()
    );
    queue
        .change_visibility(&batch[0].receipt_handle, 0)
        .await
        .unwrap();
    let again = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(again[0].traceparent(), Some(context), "a retry keeps it");
    queue
        .delete(&[again[0].receipt_handle.clone()])
        .await
        .unwrap();

    queue
        .send_delayed(&JobMessage::new(JobId::random()), 0)
        .await
        .unwrap();
    let plain = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(plain[0].traceparent(), None);
    assert!(plain[0].message_attributes.is_empty());
    queue
        .delete(&[plain[0].receipt_handle.clone()])
        .await
        .unwrap();
}

/// A received message stays hidden, also after a visibility change to a
/// later time, until it is made visible; then it comes back under a new
/// receipt handle, counted, and a delete with that handle removes it.
pub async fn a_received_message_is_hidden_until_made_visible(queue: &dyn JobQueue) {
    let message = JobMessage::new(JobId::random());
    let id = queue.send(&message).await.unwrap();
    let batch = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(batch[0].message_id, id);
    assert_eq!(JobMessage::decode(&batch[0].body).unwrap(), message);
    assert_eq!(batch[0].receive_count(), 1);
    assert!(batch[0].sent_at_ms().is_some());
    let first = batch[0].receipt_handle.clone();
    assert!(queue.receive(receive(10, 0)).await.unwrap().is_empty());

    queue.change_visibility(&first, 30).await.unwrap();
    assert!(queue.receive(receive(10, 0)).await.unwrap().is_empty());
    queue.change_visibility(&first, 0).await.unwrap();
    let again = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].message_id, id);
    assert_eq!(again[0].receive_count(), 2);
    assert_ne!(again[0].receipt_handle, first, "a new receipt handle");

    let undeleted = queue
        .delete(std::slice::from_ref(&again[0].receipt_handle))
        .await
        .unwrap();
    assert!(undeleted.is_empty(), "{undeleted:?}");
    assert!(queue.receive(receive(10, 0)).await.unwrap().is_empty());
    assert!(queue.delete(&[]).await.unwrap().is_empty());
}

/// A receive returns at most `max_messages`, and every message sent is
/// received once.
pub async fn a_receive_returns_at_most_max_messages(queue: &dyn JobQueue) {
    let mut sent = BTreeSet::new();
    for _ in 0..3 {
        let message = JobMessage::new(JobId::random());
        sent.insert(queue.send(&message).await.unwrap());
    }
    let mut received = BTreeSet::new();
    for _ in 0..10 {
        let batch = queue.receive(receive(2, 1)).await.unwrap();
        assert!(batch.len() <= 2, "{batch:?}");
        for message in batch {
            assert!(received.insert(message.message_id), "received once");
        }
        if received.len() == sent.len() {
            break;
        }
    }
    assert_eq!(received, sent);
}

/// The counts tell waiting from hidden messages, and reading them
/// receives nothing.
pub async fn counts_show_waiting_and_hidden_messages(queue: &dyn JobQueue) {
    assert_eq!(queue.counts().await.unwrap().total(), 0);
    for _ in 0..3 {
        let message = JobMessage::new(JobId::random());
        queue.send(&message).await.unwrap();
    }
    let received = queue.receive(receive(1, 1)).await.unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.visible, counts.in_flight), (2, 1), "{counts:?}");
    assert_eq!(counts.total(), 3);
    let again = queue.counts().await.unwrap();
    assert_eq!(again, counts, "reading the counts hides nothing");
}

/// A receive must ask for 1 to 10 messages.
pub async fn a_receive_asks_for_1_to_10_messages(queue: &dyn JobQueue) {
    for max_messages in [0, 11] {
        assert!(queue.receive(receive(max_messages, 0)).await.is_err());
    }
}

/// Sends `n` messages and receives them all (hidden for 30 s).
async fn send_and_receive(queue: &dyn JobQueue, n: usize) -> Vec<ReceivedMessage> {
    for _ in 0..n {
        let message = JobMessage::new(JobId::random());
        queue.send(&message).await.unwrap();
    }
    let mut received: Vec<ReceivedMessage> = Vec::new();
    for _ in 0..10 {
        received.extend(queue.receive(receive(10, 1)).await.unwrap());
        if received.len() >= n {
            break;
        }
    }
    assert_eq!(received.len(), n, "{received:?}");
    received
}

fn change(message: &ReceivedMessage, secs: u32) -> VisibilityChange {
    VisibilityChange {
        receipt_handle: message.receipt_handle.clone(),
        secs,
    }
}

/// A batch of visibility changes makes each one: a message hidden for
/// longer stays hidden, one made visible (0) comes back. An entry whose
/// message was deleted comes back failed, by its receipt handle, while the
/// others succeed. A batch takes at most 10 entries (more is an error, and
/// changes nothing), and an empty one does nothing.
pub async fn a_visibility_batch_changes_each_entry_and_names_the_failed(queue: &dyn JobQueue) {
    let received = send_and_receive(queue, 3).await;
    let (kept, shown, deleted) = (&received[0], &received[1], &received[2]);
    let undeleted = queue
        .delete(std::slice::from_ref(&deleted.receipt_handle))
        .await
        .unwrap();
    assert!(undeleted.is_empty(), "{undeleted:?}");

    let failed = queue
        .change_visibility_batch(&[change(kept, 60), change(shown, 0), change(deleted, 60)])
        .await
        .unwrap();
    assert_eq!(failed, std::slice::from_ref(&deleted.receipt_handle));
    let again = queue.receive(receive(10, 1)).await.unwrap();
    assert_eq!(again.len(), 1, "only the message made visible: {again:?}");
    assert_eq!(again[0].message_id, shown.message_id);
    assert_eq!(again[0].receive_count(), 2);

    let too_many = vec![change(kept, 60); SQS_MAX_BATCH_ENTRIES + 1];
    assert!(queue.change_visibility_batch(&too_many).await.is_err());
    assert!(queue.change_visibility_batch(&[]).await.unwrap().is_empty());
    assert!(queue.receive(receive(10, 0)).await.unwrap().is_empty());
}
