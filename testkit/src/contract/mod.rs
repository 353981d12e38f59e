//! The behaviour every [`JobStore`](jobline_core::store::JobStore) and
//! [`JobQueue`](jobline_core::JobQueue) must have, written once:
//! [`store`] (its checks grouped by the store's roles) and [`queue`]; and
//! every [`ScheduleStore`](jobline_core::schedule::ScheduleStore)'s:
//! [`schedules`]; a bucket of uploads and outputs': [`files`]; and each
//! caller's counts' ([`CallerCounts`](jobline_core::caller::CallerCounts)):
//! [`callers`].
//!
//! Each check is a public async function that takes the port as a trait
//! object and panics when the adapter behind it misbehaves. This crate's
//! unit tests run them against the fakes ([`crate::memory::store`],
//! [`crate::memory::queue`], [`crate::memory::schedules`],
//! [`crate::memory::callers`]);
//! `tests/tests/contract.rs` runs them against DynamoDB and SQS on the
//! emulator. So a fake that other crates' tests rely on cannot drift from
//! the adapters production uses.
//!
//! The checks create their own jobs with fresh ids, so they may share a
//! store; the queue checks expect an empty queue each.

/// Calls macro `$checks` with the names of every check in [`store`], so a
/// runner lists no check by hand: `for_each_store_check!(my_tests)` expands
/// to `my_tests!(create_is_conditional_on_a_new_id, …)`, and
/// `for_each_store_check!(my_tests, a, b)` to `my_tests!(a, b, create_is_…, …)`.
#[macro_export]
macro_rules! for_each_store_check {
    ($checks:ident $(, $arg:tt)*) => {
        $checks!(
            $($arg,)*
            create_is_conditional_on_a_new_id,
            claim_takes_queued_jobs_and_expired_or_missing_leases,
            finish_is_fenced_by_the_attempt,
            return_to_queue_keeps_the_error,
            replay_moves_only_failed_jobs,
            discard_gives_up_on_any_unfinished_job,
            mark_enqueue_failed_only_before_a_claim,
            a_resent_job_is_never_marked_enqueue_failed,
            stored_errors_are_bounded,
            oversized_items_are_invalid,
            large_payloads_round_trip,
            writes_whose_answer_was_lost_are_recognised,
            the_due_index_lists_only_unfinished_jobs,
            sweep_fails_only_overdue_unfinished_jobs,
            heartbeats_renew_the_lease_and_carry_the_cancel,
            suspend_queues_a_continuation_with_its_checkpoint,
            cancel_ends_queued_jobs_and_flags_running_ones,
            a_scheduled_job_waits_for_its_time,
            list_pages_through_ones_own_jobs_newest_first,
            list_by_state_pages_through_every_callers_jobs_newest_first,
            delete_removes_only_finished_jobs,
            a_linked_result_is_stored_as_its_key,
            a_delivery_is_recorded_only_over_what_was_seen,
            owed_webhooks_are_listed_from_the_final_state_until_delivered,
            states_are_counted_within_a_bound_and_their_oldest_found,
        );
    };
}

/// Calls macro `$checks` with the names of every check in [`queue`].
#[macro_export]
macro_rules! for_each_queue_check {
    ($checks:ident $(, $arg:tt)*) => {
        $checks!(
            $($arg,)*
            a_received_message_is_hidden_until_made_visible,
            a_message_keeps_its_callers_group,
            a_message_carries_its_trace_context,
            a_receive_returns_at_most_max_messages,
            a_receive_asks_for_1_to_10_messages,
            counts_show_waiting_and_hidden_messages,
            a_visibility_batch_changes_each_entry_and_names_the_failed,
        );
    };
}

/// Calls macro `$checks` with the names of every check in [`schedules`].
#[macro_export]
macro_rules! for_each_schedule_check {
    ($checks:ident $(, $arg:tt)*) => {
        $checks!(
            $($arg,)*
            create_is_conditional_on_a_new_id,
            a_schedule_is_reached_only_through_its_owner,
            list_pages_by_id_within_one_owner,
            count_counts_the_owners_schedules_up_to_the_bound,
            update_is_conditional_on_the_version_and_keeps_the_fire_record,
            delete_reports_whether_one_existed,
            a_fire_moves_the_last_fire_forward_only,
            skipped_and_refused_fires_count_and_keep_the_reason_bounded,
            a_deleted_schedules_fire_is_a_conflict,
            list_all_pages_over_every_owner,
        );
    };
}

/// Calls macro `$checks` with the names of every check in [`callers`].
#[macro_export]
macro_rules! for_each_callers_check {
    ($checks:ident $(, $arg:tt)*) => {
        $checks!(
            $($arg,)*
            unfinished_jobs_are_counted_within_the_bound,
            uploads_are_counted_within_the_days_quota,
            concurrent_uploads_never_pass_the_quota,
        );
    };
}

/// Runs every check of contract module `$module`, as its `for_each_…`
/// macro lists them, as a test against a fresh `$fake::new()`:
/// `for_each_queue_check!(fake_suite, queue, MemoryQueue)`.
#[cfg(test)]
macro_rules! fake_suite {
    ($module:ident, $fake:ident, $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::contract::$module::$check(&$fake::new()).await;
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use fake_suite;

pub mod callers;
pub mod files;
pub mod queue;
pub mod schedules;
pub mod store;
