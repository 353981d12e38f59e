//! The DynamoDB job store against moto, beyond the contract every store
//! honours (`contract.rs`): the wiring of `Clients`, and the raw expressions
//! the benchmark's SDK baseline reuses.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use jobline_aws::TrustRoots;
use jobline_core::queue::Receive;
use jobline_core::store::{Completion, ReplayOutcome};
use jobline_core::{
    ApiStore, JobMessage, JobQueue, JobRecord, JobState, ReadStore, ReplayStore, WorkerStore,
};
use jobline_dynamodb::KEY_ATTRIBUTE;
use jobline_dynamodb::item::{
    INLINE_PAYLOAD_BYTES, PAYLOAD_ATTRIBUTE, TTL_ATTRIBUTE, item_size, payload_item_key,
};
use jobline_dynamodb::record_from_item;
use jobline_dynamodb::store::{
    CLAIM_CONDITION, CLAIM_UPDATE, FINISH_CONDITION, FINISH_SUCCEEDED_UPDATE,
};
use jobline_local::Clients;
use jobline_testkit::testing::job;
use jobline_testkit::testing::now_ms;
use jobline_tests::TestEnv;
use serde_json::json;
use std::collections::HashMap;

fn queued_job() -> JobRecord {
    job("primes").payload(json!({"upTo": 10})).build()
}

/// The store `Clients` builds keeps a replayed job for the configured
/// retention from the replay.
#[tokio::test]
async fn replay_keeps_the_job_for_the_configured_retention() {
    jobline_tests::require_emulator!();
    let mut env = TestEnv::new().await;
    env.config.retention_days = 3;
    let store = env.store();
    let failed = job("primes")
        .state(JobState::Failed)
        .expires_at(now_ms() / 1000)
        .build();
    store.create(&failed).await.unwrap();
    let before = now_ms() / 1000;
    assert_eq!(
        store.replay(failed.id, now_ms()).await.unwrap(),
        ReplayOutcome::Replayed
    );
    let after = now_ms() / 1000;
    let expires = store.get(failed.id).await.unwrap().unwrap().expires_at;
    assert!(
        (before + 3 * 86_400..=after + 3 * 86_400).contains(&expires),
        "{expires}"
    );
    env.cleanup().await;
}

/// The item at `key`, read raw.
async fn raw_item(
    env: &TestEnv,
    key: HashMap<String, AttributeValue>,
) -> Option<HashMap<String, AttributeValue>> {
    env.clients
        .dynamodb
        .get_item()
        .table_name(&env.table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

/// A 200 KiB payload lives in an item of its own: through create, claim,
/// finish and replay the job item stays under 2 KiB (so a state change
/// costs about 1 write unit), while the payload item holds the payload,
/// outside the due index, and lives as long as the job.
#[tokio::test]
async fn a_large_payload_stays_out_of_the_job_item() {
    jobline_tests::require_emulator!();
    let mut env = TestEnv::new().await;
    env.config.retention_days = 3;
    let store = env.store();
    let large = job("primes")
        .payload(json!({"upTo": 10, "pad": "p".repeat(200 * 1024)}))
        .expires_at(now_ms() / 1000)
        .build();
    let job_key = HashMap::from([(
        KEY_ATTRIBUTE.to_owned(),
        AttributeValue::S(large.id.to_string()),
    )]);
    let job_item = || raw_item(&env, job_key.clone());
    let small = |item: HashMap<String, AttributeValue>| {
        assert!(!item.contains_key(PAYLOAD_ATTRIBUTE), "{:?}", item.keys());
        assert!(item_size(&item) < 2 * 1024, "{}", item_size(&item));
        item
    };

    store.create(&large).await.unwrap();
    let created = small(job_item().await.unwrap());
    let payload_key = payload_item_key(&created).unwrap().expect("stored apart");
    let payload = raw_item(&env, payload_key.clone()).await.unwrap();
    assert_eq!(
        payload[PAYLOAD_ATTRIBUTE],
        AttributeValue::S(large.payload.to_string())
    );
    assert!(
        payload.len() == 3,
        "key, payload, TTL only: {:?}",
        payload.keys()
    );
    assert!(large.payload.to_string().len() > INLINE_PAYLOAD_BYTES);

    let now = now_ms();
    let claimed = store
        .claim(large.id, now, now + 60_000, 1, "a-delivery")
        .await
        .unwrap();
    assert_eq!(claimed.payload, large.payload);
    small(job_item().await.unwrap());
    let failed = Completion::Failed {
        error: "boom".into(),
        dead_lettered: true,
    };
    store
        .finish(large.id, 1, "a-delivery", &failed, now + 1)
        .await
        .unwrap();
    small(job_item().await.unwrap());

    assert_eq!(
        store.replay(large.id, now_ms()).await.unwrap(),
        ReplayOutcome::Replayed
    );
    let replayed = small(job_item().await.unwrap());
    let payload = raw_item(&env, payload_key).await.unwrap();
    assert_eq!(payload[TTL_ATTRIBUTE], replayed[TTL_ATTRIBUTE]);
    let ttl: i64 = payload[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
    assert!(
        ttl >= large.expires_at + 3 * 86_400,
        "the replay extended the payload's TTL: {ttl}"
    );
    assert_eq!(
        store.get(large.id).await.unwrap().unwrap().payload,
        large.payload
    );
    env.cleanup().await;
}

/// The exported claim and finish expressions, sent as a raw SDK call would
/// send them, claim and complete a job as the store does.
#[tokio::test]
async fn the_exported_expressions_claim_and_finish_a_job() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let store = env.store();
    let queued = queued_job();
    store.create(&queued).await.unwrap();
    let key = AttributeValue::S(queued.id.to_string());
    let now = now_ms();
    let claimed = env
        .clients
        .dynamodb
        .update_item()
        .table_name(&env.table)
        .key(KEY_ATTRIBUTE, key.clone())
        .update_expression(CLAIM_UPDATE)
        .condition_expression(CLAIM_CONDITION)
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":running", AttributeValue::S("running".into()))
        .expression_attribute_values(":queued", AttributeValue::S("queued".into()))
        .expression_attribute_values(":scheduled", AttributeValue::S("scheduled".into()))
        .expression_attribute_values(":dueBy", AttributeValue::N((now + 1_000).to_string()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":lease", AttributeValue::N((now + 60_000).to_string()))
        .expression_attribute_values(":token", AttributeValue::S("a-delivery".into()))
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    let claimed = record_from_item(claimed.attributes().unwrap()).unwrap();
    assert_eq!(claimed, store.get(queued.id).await.unwrap().unwrap());
    assert_eq!((claimed.state, claimed.attempts), (JobState::Running, 1));

    env.clients
        .dynamodb
        .update_item()
        .table_name(&env.table)
        .key(KEY_ATTRIBUTE, key)
        .update_expression(FINISH_SUCCEEDED_UPDATE)
        .condition_expression(FINISH_CONDITION)
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#result", "result")
        .expression_attribute_names("#error", "error")
        .expression_attribute_values(":running", AttributeValue::S("running".into()))
        .expression_attribute_values(":attempt", AttributeValue::N("1".into()))
        .expression_attribute_values(":done", AttributeValue::S("succeeded".into()))
        .expression_attribute_values(":result", AttributeValue::S(r#"{"count":4}"#.into()))
        .expression_attribute_values(":now", AttributeValue::N((now + 1).to_string()))
        .send()
        .await
        .unwrap();
    let finished = store.get(queued.id).await.unwrap().unwrap();
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.result, Some(json!({"count": 4})));
    assert_eq!(finished.finished_at, Some(now + 1));
    env.cleanup().await;
}

/// The functions' clients (`Clients::for_lambda`: credentials and region
/// from Lambda's variables, their own HTTPS client) honour
/// `AWS_ENDPOINT_URL` and reach the same table and queue.
#[tokio::test]
async fn lambda_clients_reach_the_configured_endpoint() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let lambda = Clients::for_lambda(TrustRoots::AmazonTrustServices);
    let job = queued_job();
    lambda.store(&env.config).create(&job).await.unwrap();
    assert_eq!(env.store().get(job.id).await.unwrap(), Some(job.clone()));
    let message = JobMessage::new(job.id);
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
