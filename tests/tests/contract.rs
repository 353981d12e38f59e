//! The contract every `JobStore` and `JobQueue` honours
//! (`jobline_shared::contract`), against DynamoDB and SQS on moto: the same
//! checks the in-memory fakes pass in `jobline-shared`'s unit tests. Each
//! check gets its own table and queue.

use jobline_shared::contract::{queue, store};
use jobline_tests::TestEnv;

macro_rules! store_checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                jobline_tests::require_emulator!();
                let env = TestEnv::new().await;
                store::$check(&env.store()).await;
                env.cleanup().await;
            }
        )*
    };
}

macro_rules! queue_checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                jobline_tests::require_emulator!();
                let env = TestEnv::new().await;
                queue::$check(&env.queue()).await;
                env.cleanup().await;
            }
        )*
    };
}

jobline_shared::for_each_store_check!(store_checks);
jobline_shared::for_each_queue_check!(queue_checks);
