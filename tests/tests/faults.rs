//! The fault-injecting proxy itself, against moto: each fault reaches the
//! SDK as AWS would send it, and a reset after forwarding leaves the write
//! in place while its caller sees an error.

use jobline_shared::aws::Clients;
use jobline_shared::testing;
use jobline_shared::{DynamoJobStore, JobStore, StoreError};
use jobline_tests::TestEnv;
use jobline_tests::faults::{Fault, FaultPlan, FaultProxy, FaultRates};

/// The test's store, reached through a proxy with `plan`, with the SDK's
/// retries off so that each fault reaches the caller.
async fn store_behind(env: &TestEnv, plan: FaultPlan) -> (FaultProxy, DynamoJobStore) {
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's URL");
    let proxy = FaultProxy::start("test", &upstream, plan)
        .await
        .expect("start the proxy");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let store = Clients::from_sdk_config(&sdk).store(&env.config);
    (proxy, store)
}

#[tokio::test]
async fn each_fault_reaches_the_caller_and_a_late_reset_keeps_the_write() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    for fault in [Fault::ServerError, Fault::Throttle, Fault::ResetBefore] {
        let plan = FaultPlan::uniform(FaultRates::none().with(fault, 1.0));
        let (proxy, store) = store_behind(&env, plan).await;
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
    let (proxy, store) = store_behind(&env, plan).await;
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
