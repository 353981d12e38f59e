//! The notifier on the fakes, delivering to a receiver on loopback.

use super::*;
use aws_lambda_events::event::sqs::SqsMessage;
use jobline_core::JobState;
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::store::MemoryStore;
use jobline_testkit::testing::job;
use jobline_testkit::testing::receiver;
use jobline_webhooks::keys::REFRESH_INTERVAL;
use jobline_webhooks::{
    FixedKeys, KeyError, KeyLoader, MasterKeys, RefreshingKeys, caller_secret, sign,
};
use std::sync::Mutex;
use std::time::Duration;

const MASTER: &[u8] = b"0123456789abcdef0123456789abcdef-master";

fn config(max_receive_count: u32) -> WebhookConfig {
    WebhookConfig {
        allow_local_callbacks: true,
        max_receive_count,
        retry_base_delay_secs: 1,
        retry_max_delay_secs: 4,
        ..WebhookConfig::default()
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    notifier: Notifier,
}

fn fixture(max_receive_count: u32) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new());
    let notifier = Notifier::new(
        store.clone(),
        queue.clone(),
        Arc::new(FixedKeys(MasterKeys::new(MASTER, None))),
        Deliverer::new(),
        &config(max_receive_count),
    );
    Fixture {
        store,
        queue,
        notifier,
    }
}

/// A finished job of `owner` calling back `url`.
fn finished(store: &MemoryStore, owner: &str, url: &str, state: JobState) -> JobRecord {
    let job = job("primes")
        .owner(owner)
        .state(state)
        .attempts(1)
        .finished_at(1_700_000_000_123)
        .callback_url(url)
        .build();
    store.insert(job.clone());
    job
}

/// The queue event of one message for `id`, on receive `receive_count`.
fn delivery_event(id: JobId, receive_count: u32) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some(format!("m-{id}"));
    record.receipt_handle = Some(format!("r-{id}-{receive_count}"));
    record.body = Some(JobMessage::new(id).encode());
    record.event_source = Some("aws:sqs".into());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

#[tokio::test]
async fn a_receiver_that_fails_first_gets_the_event_again_then_it_is_delivered_once() {
    let f = fixture(8);
    let (url, got) = receiver(vec![500, 204]).await;
    let job = finished(&f.store, "alice", &url, JobState::Succeeded);

    let first = f.notifier.deliver_batch(delivery_event(job.id, 1)).await;
    assert_eq!(first.batch_item_failures.len(), 1, "retried");
    let pending = f.store.job(job.id).unwrap().webhook.unwrap();
    assert_eq!(
        (pending.state, pending.attempts, pending.last_status),
        (DeliveryState::Pending, 1, Some(500))
    );
    let (_, delay) = f.queue.visibility_changes()[0].clone();
    assert_eq!(delay, 1, "the first backoff");

    let second = f.notifier.deliver_batch(delivery_event(job.id, 2)).await;
    assert!(second.batch_item_failures.is_empty());
    let delivered = f.store.job(job.id).unwrap().webhook.unwrap();
    assert_eq!(
        (delivered.state, delivered.attempts, delivered.last_status),
        (DeliveryState::Delivered, 2, Some(204))
    );
    // A duplicate message (a stream retry) sends nothing.
    let third = f.notifier.deliver_batch(delivery_event(job.id, 1)).await;
    assert!(third.batch_item_failures.is_empty());
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(
        got[0].headers["webhook-id"],
        webhook_id(job.id, 1_700_000_000_123)
    );

    // Signed with the caller's own secret, over the exact body.
    let request = &got[1];
    let secret = caller_secret(MASTER, "alice");
    let timestamp: u64 = request.headers["webhook-timestamp"].parse().unwrap();
    assert_eq!(
        request.headers["webhook-signature"],
        sign(
            &secret,
            &request.headers["webhook-id"],
            timestamp,
            request.body.as_bytes()
        )
    );
    assert_ne!(
        request.headers["webhook-signature"],
        sign(
            &caller_secret(MASTER, "bob"),
            &request.headers["webhook-id"],
            timestamp,
            request.body.as_bytes()
        )
    );
    let event: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(event["type"], "job.succeeded");
    assert_eq!(event["data"]["jobId"], job.id.to_string());
    assert_eq!(event["data"]["status"], "succeeded");
    assert!(event["data"].get("webhook").is_none());
}

#[tokio::test]
async fn each_attempt_sends_a_traceparent_in_the_jobs_trace() {
    let f = fixture(8);
    let (url, got) = receiver(vec![500, 204]).await;
    let mut job = finished(&f.store, "alice", &url, JobState::Succeeded);
    let context = TraceContext::new_root();
    job.traceparent = Some(context);
    f.store.insert(job.clone());
    f.notifier.deliver_batch(delivery_event(job.id, 1)).await;
    f.notifier.deliver_batch(delivery_event(job.id, 2)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let sent: Vec<TraceContext> = got
        .iter()
        .map(|request| request.headers["traceparent"].parse().unwrap())
        .collect();
    for attempt in &sent {
        assert_eq!(attempt.trace_id(), context.trace_id());
        assert_ne!(attempt.span_id(), context.span_id(), "a child span");
        assert!(attempt.sampled());
    }
    assert_ne!(sent[0].span_id(), sent[1].span_id(), "a span each attempt");

    // A job from before traces: each attempt still sends one.
    let (url, got) = receiver(vec![204]).await;
    let old = finished(&f.store, "alice", &url, JobState::Failed);
    assert_eq!(old.traceparent, None);
    f.notifier.deliver_batch(delivery_event(old.id, 1)).await;
    let header = &got.lock().unwrap()[0].headers["traceparent"];
    assert!(header.parse::<TraceContext>().is_ok(), "{header}");
}

#[tokio::test]
async fn a_client_error_or_the_last_receive_fails_the_delivery_for_good() {
    let f = fixture(3);
    let (gone, _) = receiver(vec![410]).await;
    let job = finished(&f.store, "alice", &gone, JobState::Failed);
    let answer = f.notifier.deliver_batch(delivery_event(job.id, 1)).await;
    assert!(answer.batch_item_failures.is_empty(), "not retried");
    let failed = f.store.job(job.id).unwrap().webhook.unwrap();
    assert_eq!(
        (failed.state, failed.last_status),
        (DeliveryState::Failed, Some(410))
    );

    let (down, _) = receiver(vec![503]).await;
    let job = finished(&f.store, "alice", &down, JobState::Cancelled);
    let last = f.notifier.deliver_batch(delivery_event(job.id, 3)).await;
    assert!(last.batch_item_failures.is_empty(), "the last receive");
    assert_eq!(
        f.store.job(job.id).unwrap().webhook.unwrap().state,
        DeliveryState::Failed
    );
}

#[tokio::test]
async fn unfinished_deleted_and_refused_jobs_send_nothing() {
    let f = fixture(8);
    let (url, got) = receiver(vec![204]).await;
    let running = job("primes")
        .state(JobState::Running)
        .callback_url(&url)
        .build();
    f.store.insert(running.clone());
    let answer = f
        .notifier
        .deliver_batch(delivery_event(running.id, 1))
        .await;
    assert!(answer.batch_item_failures.is_empty());
    let missing = f
        .notifier
        .deliver_batch(delivery_event(JobId::random(), 1))
        .await;
    assert!(missing.batch_item_failures.is_empty());
    assert!(got.lock().unwrap().is_empty());

    // A URL the deployment's policy refuses is failed without a request.
    let strict = Notifier::new(
        f.store.clone(),
        f.queue.clone(),
        Arc::new(FixedKeys(MasterKeys::new(MASTER, None))),
        Deliverer::new(),
        &WebhookConfig::default(),
    );
    let job = finished(&f.store, "alice", &url, JobState::Succeeded);
    strict.deliver_batch(delivery_event(job.id, 1)).await;
    assert_eq!(
        f.store.job(job.id).unwrap().webhook.unwrap().state,
        DeliveryState::Failed
    );
    assert!(got.lock().unwrap().is_empty());
}

fn stream_record(sequence: &str, id: JobId, old: &str, new: &str) -> Value {
    let image = |state: &str| {
        json!({
            "jobId": {"S": id.to_string()},
            "state": {"S": state},
            "callbackUrl": {"S": "https://hooks.example.com/"},
        })
    };
    json!({
        "eventSource": "aws:dynamodb",
        "eventName": "MODIFY",
        "dynamodb": {"SequenceNumber": sequence, "OldImage": image(old), "NewImage": image(new)},
    })
}

#[tokio::test]
async fn the_stream_is_relayed_to_the_queue_and_a_failed_send_is_retried_from_its_record() {
    let f = fixture(8);
    let (a, b) = (JobId::random(), JobId::random());
    let event = json!({"Records": [
        stream_record("1", a, "queued", "running"),
        stream_record("2", a, "running", "succeeded"),
        stream_record("3", a, "succeeded", "succeeded"),
        stream_record("4", b, "queued", "cancelled"),
    ]});
    let answer = f.notifier.handle(event.clone()).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let sent: Vec<JobId> = f.queue.sent().iter().map(|m| m.job_id).collect();
    assert_eq!(sent, [a, b]);

    f.queue.set_failing_sends(true);
    let answer = f.notifier.handle(event).await;
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "2"}]})
    );
}

/// A record whose relay has failed for longer than `SET_ASIDE_AFTER_MS`
/// is set aside (the sweeper hands its job to the notifier again), so it
/// holds up no later record of its shard; a younger one is retried.
#[tokio::test]
async fn a_record_that_keeps_failing_is_set_aside_after_its_bound() {
    let clock = Clock::at(1_800_000_000_000);
    let f = fixture(8);
    let notifier = Notifier::new(
        f.store.clone(),
        f.queue.clone(),
        Arc::new(FixedKeys(MasterKeys::new(MASTER, None))),
        Deliverer::new(),
        &config(8),
    )
    .with_clock(clock.clone());
    let changed_at = |record: &mut Value, ms: i64| {
        record["dynamodb"]["ApproximateCreationDateTime"] = json!(ms / 1000);
    };
    let mut old = stream_record("7", JobId::random(), "running", "failed");
    changed_at(&mut old, clock.now_ms() - SET_ASIDE_AFTER_MS - 1_000);
    let mut young = stream_record("8", JobId::random(), "running", "succeeded");
    changed_at(&mut young, clock.now_ms() - 60_000);
    f.queue.set_failing_sends(true);
    let answer = notifier
        .handle(json!({"Records": [old.clone(), young]}))
        .await;
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "8"}]}),
        "the old record is set aside, the young one retried"
    );
    clock.advance(Duration::from_millis(
        u64::try_from(SET_ASIDE_AFTER_MS).unwrap(),
    ));
    let answer = notifier.handle(json!({"Records": [old]})).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
}

/// The master key's secret as a test keeps it: rotated at will, or down.
#[derive(Debug, Clone)]
struct Secret(Arc<Mutex<Option<MasterKeys>>>);

impl Secret {
    fn new(keys: MasterKeys) -> Self {
        Self(Arc::new(Mutex::new(Some(keys))))
    }

    fn set(&self, keys: Option<MasterKeys>) {
        *self.0.lock().unwrap() = keys;
    }
}

#[async_trait::async_trait]
impl KeyLoader for Secret {
    async fn load(&self) -> Result<MasterKeys, KeyError> {
        self.0
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| KeyError::Unavailable("down".into()))
    }
}

const OLD: &[u8] = b"old-master-key-old-master-key-old-master-key";
const NEW: &[u8] = b"new-master-key-new-master-key-new-master-key";

/// A notifier whose keys come from `secret`, refreshed on `clock`, and
/// which has already read them (an earlier event).
async fn refreshing(f: &Fixture, secret: &Secret, clock: &Clock) -> Notifier {
    let keys = RefreshingKeys::of(secret.clone()).with_clock(clock.clone());
    keys.keys().await.unwrap();
    Notifier::new(
        f.store.clone(),
        f.queue.clone(),
        Arc::new(keys),
        Deliverer::new(),
        &config(8),
    )
    .with_clock(clock.clone())
}

/// The signatures a received request carries.
fn signatures(request: &receiver::Received) -> Vec<String> {
    request.headers["webhook-signature"]
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// The signature of a received request by alice's secret from `key`.
fn signed_by(request: &receiver::Received, key: &[u8]) -> String {
    sign(
        &caller_secret(key, "alice"),
        &request.headers["webhook-id"],
        request.headers["webhook-timestamp"].parse().unwrap(),
        request.body.as_bytes(),
    )
}

#[tokio::test]
async fn a_signature_refused_after_a_rotation_the_notifier_had_not_seen_is_retried_with_both_keys()
{
    let f = fixture(8);
    let clock = Clock::at(1_700_000_100_000);
    let secret = Secret::new(MasterKeys::new(OLD, None));
    let notifier = refreshing(&f, &secret, &clock).await;

    // The key is rotated; the receiver fetches its new secret and accepts
    // only that one, while this notifier's keys are still the old ones.
    secret.set(Some(MasterKeys::new(NEW, Some(OLD.to_vec()))));
    let (url, got) = receiver(vec![401, 204]).await;
    let job = finished(&f.store, "alice", &url, JobState::Succeeded);

    let first = notifier.deliver_batch(delivery_event(job.id, 1)).await;
    assert_eq!(first.batch_item_failures.len(), 1, "retried, not failed");
    let pending = f.store.job(job.id).unwrap().webhook.unwrap();
    assert_eq!(
        (pending.state, pending.attempts, pending.last_status),
        (DeliveryState::Pending, 1, Some(401))
    );

    // Within the refresh interval still: the next attempt is signed with
    // the keys read again after the refusal, the new key and the old one.
    clock.advance(Duration::from_secs(1));
    assert!(Duration::from_secs(1) < REFRESH_INTERVAL);
    let second = notifier.deliver_batch(delivery_event(job.id, 2)).await;
    assert!(second.batch_item_failures.is_empty());
    let delivered = f.store.job(job.id).unwrap().webhook.unwrap();
    assert_eq!(
        (delivered.state, delivered.attempts, delivered.last_status),
        (DeliveryState::Delivered, 2, Some(204))
    );

    let got = got.lock().unwrap().clone();
    assert_eq!(
        signatures(&got[0]),
        [signed_by(&got[0], OLD)],
        "the old key alone"
    );
    assert_eq!(
        signatures(&got[1]),
        [signed_by(&got[1], NEW), signed_by(&got[1], OLD)],
        "either secret verifies"
    );
}

#[tokio::test]
async fn a_refused_signature_with_no_rotation_fails_at_once_unless_the_keys_cannot_be_read() {
    let f = fixture(8);
    let clock = Clock::at(1_700_000_100_000);
    // Mid-rotation already, and seen: the receiver holds neither secret.
    let secret = Secret::new(MasterKeys::new(NEW, Some(OLD.to_vec())));
    let notifier = refreshing(&f, &secret, &clock).await;
    for status in [401, 403] {
        let (url, got) = receiver(vec![status]).await;
        let job = finished(&f.store, "alice", &url, JobState::Failed);
        let answer = notifier.deliver_batch(delivery_event(job.id, 1)).await;
        assert!(
            answer.batch_item_failures.is_empty(),
            "{status}: not retried"
        );
        let failed = f.store.job(job.id).unwrap().webhook.unwrap();
        assert_eq!(
            (failed.state, failed.attempts, failed.last_status),
            (DeliveryState::Failed, 1, Some(status))
        );
        assert_eq!(got.lock().unwrap().len(), 1);
    }

    // The keys cannot be read again: no telling a rotation from a wrong
    // receiver, so the delivery is retried, until its last receive.
    secret.set(None);
    let (url, _) = receiver(vec![401]).await;
    let job = finished(&f.store, "alice", &url, JobState::Succeeded);
    let answer = notifier.deliver_batch(delivery_event(job.id, 1)).await;
    assert_eq!(answer.batch_item_failures.len(), 1);
    assert_eq!(
        f.store.job(job.id).unwrap().webhook.unwrap().state,
        DeliveryState::Pending
    );
    let last = notifier.deliver_batch(delivery_event(job.id, 8)).await;
    assert!(last.batch_item_failures.is_empty(), "the last receive");
    assert_eq!(
        f.store.job(job.id).unwrap().webhook.unwrap().state,
        DeliveryState::Failed
    );

    // Other 4xx statuses never read the keys again: they fail at once even
    // when a rotation is pending.
    secret.set(Some(MasterKeys::new(
        b"newest-master-key-newest-master-key".to_vec(),
        None,
    )));
    let (url, _) = receiver(vec![404]).await;
    let job = finished(&f.store, "alice", &url, JobState::Succeeded);
    let answer = notifier.deliver_batch(delivery_event(job.id, 1)).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(
        f.store.job(job.id).unwrap().webhook.unwrap().state,
        DeliveryState::Failed
    );
}
