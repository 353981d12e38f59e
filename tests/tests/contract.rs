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

store_checks!(
    create_is_conditional_on_a_new_id,
    claim_takes_queued_jobs_and_expired_or_missing_leases,
    finish_is_fenced_by_the_attempt,
    return_to_queue_keeps_the_error,
    replay_moves_only_failed_jobs,
    discard_gives_up_on_any_unfinished_job,
    mark_enqueue_failed_only_before_a_claim,
    stored_errors_are_bounded,
    oversized_items_are_invalid,
    the_due_index_lists_only_unfinished_jobs,
    sweep_fails_only_overdue_unfinished_jobs,
);

queue_checks!(
    a_received_message_is_hidden_until_made_visible,
    a_receive_returns_at_most_max_messages,
    a_receive_asks_for_1_to_10_messages,
);
