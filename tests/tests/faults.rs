//! The fault-injecting proxy itself, against moto: each fault reaches the
//! SDK as AWS would send it, and a reset after forwarding leaves the write
//! in place while its caller sees an error. And the store and the worker
//! recognise their own write when its answer was lost and the SDK's retry
//! was refused.

use aws_config::retry::RetryConfig;
use jobline_core::queue::Receive;
use jobline_core::{
    ApiStore, Completion, JobMessage, JobQueue, JobState, ReadStore, StoreError, WorkerStore,
};
use jobline_dynamodb::DynamoJobStore;
use jobline_local::Clients;
use jobline_testkit::testing;
use jobline_testkit::testing::now_ms;
use jobline_tests::TestEnv;
use jobline_tests::faults::{Fault, FaultPlan, FaultProxy, FaultRates};
use jobline_worker::Worker;
use serde_json::json;
use std::sync::Arc;

/// The test's store, reached through a proxy with `plan`, with the SDK's
/// `retries`.
async fn store_behind(
    env: &TestEnv,
    plan: FaultPlan,
    retries: RetryConfig,
) -> (FaultProxy, DynamoJobStore) {
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's URL");
    let proxy = FaultProxy::start("test", &upstream, plan)
        .await
        .expect("start the proxy");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .retry_config(retries)
        .load()
        .await;
    let store = Clients::from_sdk_config(&sdk).store(&env.config);
    (proxy, store)
}

/// The first `UpdateItem` lands but its answer is lost; the SDK's retry
/// (and every later call) passes.
fn first_update_answer_lost() -> FaultPlan {
    FaultPlan::uniform(FaultRates::none())
        .with_operation(
            "UpdateItem",
            FaultRates::none().with(Fault::ResetAfter, 1.0),
        )
        .at_most(1)
}

fn updates(proxy: &FaultProxy) -> usize {
    proxy
        .calls()
        .iter()
        .filter(|call| call.operation == "UpdateItem")
        .count()
}

#[tokio::test]
async fn a_claim_or_completion_whose_answer_was_lost_is_recognised_on_the_sdks_retry() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let (proxy, store) =
        store_behind(&env, first_update_answer_lost(), RetryConfig::standard()).await;
    let job = testing::job("primes").build();
    env.store().create(&job).await.unwrap();
    let now = now_ms();
    let claimed = store
        .claim(job.id, now, now + 60_000, 1, "a-delivery")
        .await
        .expect("the retry finds the claim's own lease");
    assert_eq!(proxy.injected().get(&Fault::ResetAfter), Some(&1));
    assert_eq!(updates(&proxy), 2, "the lost claim and the SDK's retry");
    assert_eq!((claimed.state, claimed.attempts), (JobState::Running, 1));
    assert_eq!(env.store().get(job.id).await.unwrap(), Some(claimed));

    proxy.set_plan(first_update_answer_lost());
    let done = Completion::Succeeded(json!({"count": 4}));
    store
        .finish(job.id, 1, "a-delivery", &done, now + 1)
        .await
        .expect("the retry finds the completion landed");
    assert_eq!(updates(&proxy), 4);
    let finished = env.store().get(job.id).await.unwrap().unwrap();
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.result, Some(json!({"count": 4})));
    env.cleanup().await;
}

#[tokio::test]
async fn a_worker_whose_claim_answer_was_lost_runs_the_job_once() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let (proxy, store) =
        store_behind(&env, first_update_answer_lost(), RetryConfig::standard()).await;
    let worker = Worker::new(
        Arc::new(store),
        Arc::new(env.queue()),
        jobline_jobs::builtin(),
        env.config.worker.clone(),
    );
    let job = testing::job("primes").payload(json!({"upTo": 10})).build();
    env.store().create(&job).await.unwrap();
    env.queue().send(&JobMessage::new(job.id)).await.unwrap();
    let messages = env
        .queue()
        .receive(Receive {
            max_messages: 10,
            wait_secs: 1,
            visibility_secs: 30,
        })
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let event = jobline_tests::stack::sqs_event(&messages);
    let outcome = worker.process_batch(event, now_ms() + 30_000).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "acknowledged"
    );
    assert_eq!(proxy.injected().get(&Fault::ResetAfter), Some(&1));
    let finished = env.store().get(job.id).await.unwrap().unwrap();
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.attempts, 1, "no second attempt");
    env.cleanup().await;
}

#[tokio::test]
async fn each_fault_reaches_the_caller_and_a_late_reset_keeps_the_write() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    for fault in [Fault::ServerError, Fault::Throttle, Fault::ResetBefore] {
        let plan = FaultPlan::uniform(FaultRates::none().with(fault, 1.0));
        let (proxy, store) = store_behind(&env, plan, RetryConfig::disabled()).await;
        let job = testing::job("primes").build();
        let error = store.create(&job).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Aws { .. }),
            "{fault:?}: {error}"
        );
        assert!(
            env.store().get(job.id).await.unwrap().is_none(),
            "{fault:?} is injected before the write"
        );
        assert_eq!(proxy.injected().get(&fault), Some(&1));
    }

    let plan = FaultPlan::uniform(FaultRates::none().with(Fault::ResetAfter, 1.0));
    let (proxy, store) = store_behind(&env, plan, RetryConfig::disabled()).await;
    let job = testing::job("primes").build();
    assert!(
        store.create(&job).await.is_err(),
        "the caller sees an error"
    );
    let landed = env.store().get(job.id).await.unwrap();
    assert_eq!(landed.map(|j| j.id), Some(job.id), "but the write landed");
    assert_eq!(
        proxy.operations().into_iter().collect::<Vec<_>>(),
        [("dynamodb".to_owned(), "PutItem".to_owned())]
    );
    env.cleanup().await;
}
