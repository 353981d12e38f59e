//! The contract every `JobStore`, `JobQueue` and `ScheduleStore` honours
//! (`jobline_testkit::contract`), against DynamoDB and SQS on moto: the same
//! checks the in-memory fakes pass in `jobline-testkit`'s unit tests. Each
//! check gets its own table and queue (and schedules table).

use jobline_testkit::contract::{callers, queue, schedules, store};
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

macro_rules! schedule_checks {
    ($($check:ident),* $(,)?) => {
        mod schedule {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    jobline_tests::require_emulator!();
                    let env = TestEnv::new().await;
                    schedules::$check(&env.schedules().await).await;
                    env.cleanup().await;
                }
            )*
        }
    };
}

macro_rules! callers_checks {
    ($($check:ident),* $(,)?) => {
        mod callers_table {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    jobline_tests::require_emulator!();
                    let env = TestEnv::new().await;
                    let (_, counts) = env.caller_counts().await;
                    callers::$check(counts.as_ref()).await;
                    env.cleanup().await;
                }
            )*
        }
    };
}

jobline_testkit::for_each_store_check!(store_checks);
jobline_testkit::for_each_queue_check!(queue_checks);
jobline_testkit::for_each_schedule_check!(schedule_checks);
jobline_testkit::for_each_callers_check!(callers_checks);

/// A long poll outlasts the short bounds a function's clients carry (the
/// worker's: under a heartbeat): it is bounded by its own wait instead, so
/// an empty poll of a bounded client is an empty answer, not a time-out.
#[tokio::test]
async fn a_long_poll_outlasts_the_clients_operation_timeout() {
    use jobline_aws::AwsTimeouts;
    use jobline_core::queue::{JobQueue, Receive};
    use jobline_sqs::SqsJobQueue;
    use std::time::{Duration, Instant};
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let bounded = env
        .clients
        .clone()
        .with_timeouts(AwsTimeouts::within(Duration::from_secs(1)));
    let queue = SqsJobQueue::new(bounded.sqs.clone(), env.queue().url());
    let started = Instant::now();
    let received = queue
        .receive(Receive {
            max_messages: 1,
            wait_secs: 3,
            visibility_secs: 30,
        })
        .await
        .expect("an empty long poll is no error");
    assert!(received.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    env.cleanup().await;
}

/// The bucket's uploads and outputs on S3 (moto), as the fake passes them
/// in `jobline-testkit`: an upload arrives through its presigned `PUT`,
/// sent with exactly the headers the link signs.
mod bucket {
    use jobline_core::files::{Declared, UPLOAD_URL_TTL, UploadFiles};
    use jobline_testkit::contract::files;
    use jobline_tests::TestEnv;
    use std::sync::Arc;

    fn bucket(env: &TestEnv) -> Arc<jobline_s3::S3Bucket> {
        Arc::new(env.clients.results(&env.config).expect("the test's bucket"))
    }

    #[tokio::test]
    async fn an_upload_is_read_as_declared_and_from_any_byte() {
        jobline_tests::require_emulator!();
        let env = TestEnv::new().await;
        let s3 = bucket(&env);
        let put = async |key: &str, declared: &Declared, body: Vec<u8>| {
            let link = s3
                .presign_upload(key, declared, UPLOAD_URL_TTL)
                .await
                .unwrap();
            let (status, text) = jobline_tests::http::put(&link.url, &link.headers, body).await;
            assert_eq!(status, 200, "{text}");
        };
        files::an_upload_is_read_as_declared_and_from_any_byte(s3.clone(), "alice", put).await;
        env.cleanup().await;
    }

    #[tokio::test]
    async fn outputs_are_written_in_parts_and_only_when_finished() {
        jobline_tests::require_emulator!();
        let env = TestEnv::new().await;
        files::outputs_are_written_in_parts_and_only_when_finished(bucket(&env)).await;
        env.cleanup().await;
    }
}
