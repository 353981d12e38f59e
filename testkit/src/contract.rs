//! The behaviour every [`JobStore`] and [`JobQueue`] must have, written
//! once (this crate's tests and feature `memory`).
//!
//! Each check is a public async function that takes the port as a trait
//! object and panics when the adapter behind it misbehaves. This crate's
//! unit tests run them against the fakes ([`crate::memory::store`],
//! [`crate::memory::queue`]); `tests/tests/contract.rs` runs them against
//! DynamoDB and SQS on the emulator. So a fake that other crates' tests rely
//! on cannot drift from the adapters production uses.
//!
//! The checks create their own jobs with fresh ids, so they may share a
//! store; the queue checks expect an empty queue each.

use crate::testing::job;
use crate::testing::now_ms;
use jobline_core::job::{ClaimRefusal, JobId, JobRecord, JobState};
use jobline_core::limits::MAX_ITEM_BYTES;
use jobline_core::store::{Completion, JobStore};
use jobline_core::{JobQueue, StoreError};
use jobline_dynamodb::item::bound_error;

/// Calls macro `$checks` with the names of every check in [`store`], so a
/// runner lists no check by hand: `for_each_store_check!(my_tests)` expands
/// to `my_tests!(create_is_conditional_on_a_new_id, …)`.
#[macro_export]
macro_rules! for_each_store_check {
    ($checks:ident) => {
        $checks!(
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
    ($checks:ident) => {
        $checks!(
            a_received_message_is_hidden_until_made_visible,
            a_receive_returns_at_most_max_messages,
            a_receive_asks_for_1_to_10_messages,
            counts_show_waiting_and_hidden_messages,
        );
    };
}

/// The checks of a [`JobStore`].
pub mod store {
    use super::*;
    use jobline_core::job::Progress;
    use jobline_core::store::{
        CancelOutcome, DISCARDED_ERROR, DeleteOutcome, DiscardOutcome, Heartbeat, ReplayOutcome,
        SHARDS, SWEPT_ERROR, SweepOutcome,
    };
    use serde_json::json;

    /// The claim token of the checks' deliveries.
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    /// The claim token of another delivery.
    const OTHER: &str = "fedcba9876543210fedcba9876543210";
    /// An hour, in ms: the checks move time by hours and days.
    const HOUR_MS: i64 = 3_600_000;

    /// Thirty days from `now`: past every job's `dueAt` under any
    /// [`Deadlines`](jobline_core::deadline::Deadlines) a test uses.
    fn far_after(now: i64) -> i64 {
        now + 30 * 86_400_000
    }

    /// Whether job `id` is in the due index, due before `before_ms`.
    async fn listed(store: &dyn JobStore, id: JobId, before_ms: i64) -> bool {
        in_time_index(store, id, before_ms, false).await
    }

    /// Whether job `id` is in the webhook index, finished before `before_ms`.
    async fn owed(store: &dyn JobStore, id: JobId, before_ms: i64) -> bool {
        in_time_index(store, id, before_ms, true).await
    }

    /// Whether job `id` is in the due index (or, with `webhooks`, the
    /// webhook index) before `before_ms`, paging through its partition.
    async fn in_time_index(
        store: &dyn JobStore,
        id: JobId,
        before_ms: i64,
        webhooks: bool,
    ) -> bool {
        let mut after = None;
        loop {
            let shard = id.shard(SHARDS);
            let page = if webhooks {
                store.owed_webhooks(shard, before_ms, after, 10).await
            } else {
                store.overdue(shard, before_ms, after, 10).await
            }
            .unwrap();
            if page.jobs.iter().any(|due| due.id == id) {
                return true;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return false,
            }
        }
    }

    /// How a claim of job `id` at `now` by another delivery was refused.
    async fn refusal(store: &dyn JobStore, id: JobId, now: i64) -> ClaimRefusal {
        match store.claim(id, now, now + 60_000, 1, OTHER).await {
            Err(StoreError::Conflict { current }) => {
                ClaimRefusal::from_current(current.as_deref(), now)
            }
            other => panic!("expected the claim to be refused, got {other:?}"),
        }
    }

    /// A new queued job, claimed at `now` with a one-minute lease.
    async fn claimed(store: &dyn JobStore, now: i64) -> JobRecord {
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        store
            .claim(queued.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap()
    }

    /// Job `id` as stored; it must exist.
    async fn stored(store: &dyn JobStore, id: JobId) -> JobRecord {
        store.get(id).await.unwrap().expect("the job exists")
    }

    /// `create` writes only a new id (or over an enqueue failure), and on a
    /// taken one returns the existing job.
    pub async fn create_is_conditional_on_a_new_id(store: &dyn JobStore) {
        let queued = job("primes").payload(json!({"upTo": 10})).build();
        store.create(&queued).await.unwrap();
        let rival = job("primes").id(queued.id).owner("bob").build();
        match store.create(&rival).await {
            Err(StoreError::Conflict {
                current: Some(existing),
            }) => assert_eq!(*existing, queued),
            other => panic!("expected a conflict with the existing job, got {other:?}"),
        }
        assert_eq!(store.get(queued.id).await.unwrap(), Some(queued));
        assert_eq!(store.get(JobId::random()).await.unwrap(), None);
    }

    /// A claim takes a `queued` job, or a `running` one whose lease ran out
    /// or that has none; it refuses a live lease, a finished job and a
    /// missing one, returning the current item.
    pub async fn claim_takes_queued_jobs_and_expired_or_missing_leases(store: &dyn JobStore) {
        let now = now_ms();
        let queued = job("primes").payload(json!({"upTo": 10})).build();
        store.create(&queued).await.unwrap();
        let claimed = store
            .claim(queued.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(claimed.state, JobState::Running);
        assert_eq!(claimed.attempts, 1);
        assert_eq!(claimed.started_at, Some(now));
        assert_eq!(claimed.lease_expires_at, Some(now + 60_000));
        assert_eq!(claimed.payload, queued.payload);
        assert_eq!(stored(store, queued.id).await, claimed);
        assert_eq!(
            refusal(store, queued.id, now + 1).await,
            ClaimRefusal::Leased {
                until_ms: now + 60_000
            }
        );

        let expired = job("primes")
            .state(JobState::Running)
            .attempts(1)
            .started_at(now - 100)
            .lease_until(now - 1)
            .build();
        store.create(&expired).await.unwrap();
        let taken_over = store
            .claim(expired.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(taken_over.attempts, 2);
        assert_eq!(
            taken_over.started_at,
            Some(now - 100),
            "first start is kept"
        );
        assert_eq!(taken_over.lease_expires_at, Some(now + 60_000));

        let unleased = job("primes").state(JobState::Running).attempts(1).build();
        store.create(&unleased).await.unwrap();
        let taken_over = store
            .claim(unleased.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(taken_over.attempts, 2, "running with no lease is claimable");

        for state in [JobState::Succeeded, JobState::Failed] {
            let done = job("primes").state(state).attempts(1).build();
            store.create(&done).await.unwrap();
            assert_eq!(
                refusal(store, done.id, now).await,
                ClaimRefusal::Finished(state)
            );
            assert_eq!(
                stored(store, done.id).await,
                done,
                "a refusal changes nothing"
            );
        }
        assert_eq!(
            refusal(store, JobId::random(), now).await,
            ClaimRefusal::Missing
        );
    }

    /// `finish` completes only the attempt that holds the job.
    pub async fn finish_is_fenced_by_the_attempt(store: &dyn JobStore) {
        let now = now_ms();
        let queued = job("primes").error("an earlier attempt failed").build();
        store.create(&queued).await.unwrap();
        store
            .claim(queued.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        let done = Completion::Succeeded(json!({"count": 4}));
        match store.finish(queued.id, 2, TOKEN, &done, now + 2).await {
            Err(StoreError::Conflict {
                current: Some(current),
            }) => {
                assert_eq!(current.attempts, 1);
            }
            other => panic!("expected a stale attempt to conflict, got {other:?}"),
        }
        store
            .finish(queued.id, 1, TOKEN, &done, now + 2)
            .await
            .unwrap();
        let succeeded = stored(store, queued.id).await;
        assert_eq!(succeeded.state, JobState::Succeeded);
        assert_eq!(succeeded.result, Some(json!({"count": 4})));
        assert_eq!(succeeded.finished_at, Some(now + 2));
        assert_eq!(succeeded.lease_expires_at, None);
        assert_eq!(succeeded.error, None);
        assert!(matches!(
            store.finish(queued.id, 1, OTHER, &done, now + 3).await,
            Err(StoreError::Conflict { .. })
        ));

        let failing = claimed(store, now).await;
        let dead = Completion::Failed {
            error: "boom".into(),
            dead_lettered: true,
        };
        store
            .finish(failing.id, 1, TOKEN, &dead, now + 4)
            .await
            .unwrap();
        let failed = stored(store, failing.id).await;
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(failed.error.as_deref(), Some("boom"));
        assert!(failed.dead_lettered);
        assert_eq!(failed.finished_at, Some(now + 4));
        assert_eq!(failed.lease_expires_at, None);

        // An attempt whose lease was taken over cannot complete the job.
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        store
            .claim(queued.id, now, now + 10, 1, TOKEN)
            .await
            .unwrap();
        store
            .claim(queued.id, now + 11, now + 60_000, 1, OTHER)
            .await
            .unwrap();
        assert!(matches!(
            store.finish(queued.id, 1, TOKEN, &done, now + 12).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(stored(store, queued.id).await.state, JobState::Running);
    }

    /// A delivery's claim, finish or return that is sent again after it
    /// landed (its answer was lost, the SDK retried, the store refused the
    /// retry) is recognised by its claim token: the claim returns the job
    /// with no second attempt, the finish and the return succeed. Another
    /// delivery's token, another attempt or an operator's discard is still
    /// refused.
    pub async fn writes_whose_answer_was_lost_are_recognised(store: &dyn JobStore) {
        let now = now_ms();
        let running = claimed(store, now).await;
        assert_eq!(running.claim_token.as_deref(), Some(TOKEN));
        let again = store
            .claim(running.id, now + 1, now + 60_000, 1, TOKEN)
            .await;
        assert_eq!(again.unwrap(), running, "the same attempt");
        assert_eq!(stored(store, running.id).await, running, "nothing changed");
        assert_eq!(
            refusal(store, running.id, now + 1).await,
            ClaimRefusal::Leased {
                until_ms: now + 60_000
            }
        );

        let done = Completion::Succeeded(json!({"count": 4}));
        store
            .finish(running.id, 1, TOKEN, &done, now + 2)
            .await
            .unwrap();
        let succeeded = stored(store, running.id).await;
        store
            .finish(running.id, 1, TOKEN, &done, now + 3)
            .await
            .unwrap();
        assert_eq!(stored(store, running.id).await, succeeded, "written once");
        let failed = Completion::Failed {
            error: "boom".into(),
            dead_lettered: false,
        };
        for (attempt, token, completion) in
            [(1, OTHER, &done), (2, TOKEN, &done), (1, TOKEN, &failed)]
        {
            assert!(
                matches!(
                    store
                        .finish(running.id, attempt, token, completion, now + 4)
                        .await,
                    Err(StoreError::Conflict { .. })
                ),
                "attempt {attempt}, token {token}, {completion:?}"
            );
        }
        assert!(
            matches!(
                store
                    .claim(running.id, now + 5, now + 60_000, 1, TOKEN)
                    .await,
                Err(StoreError::Conflict { .. })
            ),
            "a finished job is not claimed again"
        );

        let returned = claimed(store, now).await;
        store
            .return_to_queue(returned.id, 1, TOKEN, "later")
            .await
            .unwrap();
        store
            .return_to_queue(returned.id, 1, TOKEN, "later")
            .await
            .unwrap();
        assert!(matches!(
            store.return_to_queue(returned.id, 1, OTHER, "later").await,
            Err(StoreError::Conflict { .. })
        ));
        let second = store
            .claim(returned.id, now + 1, now + 60_000, 1, OTHER)
            .await
            .unwrap();
        assert_eq!(second.attempts, 2);
        assert!(matches!(
            store.return_to_queue(returned.id, 1, TOKEN, "stale").await,
            Err(StoreError::Conflict { .. })
        ));

        let discarded = claimed(store, now).await;
        store.discard(discarded.id, now + 1).await.unwrap();
        let dead = Completion::Failed {
            error: "boom".into(),
            dead_lettered: true,
        };
        assert!(
            matches!(
                store.finish(discarded.id, 1, TOKEN, &dead, now + 2).await,
                Err(StoreError::Conflict { .. })
            ),
            "an operator's discard is not the attempt's failure"
        );
    }

    /// `return_to_queue` puts the holding attempt's job back in `queued`,
    /// with its error, fenced like `finish`.
    pub async fn return_to_queue_keeps_the_error(store: &dyn JobStore) {
        let now = now_ms();
        let running = claimed(store, now).await;
        assert!(matches!(
            store.return_to_queue(running.id, 2, TOKEN, "stale").await,
            Err(StoreError::Conflict { .. })
        ));
        store
            .return_to_queue(running.id, 1, TOKEN, "try again")
            .await
            .unwrap();
        let returned = stored(store, running.id).await;
        assert_eq!(returned.state, JobState::Queued);
        assert_eq!(returned.error.as_deref(), Some("try again"));
        assert_eq!(returned.lease_expires_at, None);
        assert_eq!(returned.attempts, 1);
        let again = store
            .claim(running.id, now + 1, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(again.attempts, 2);
        assert!(matches!(
            store.return_to_queue(running.id, 1, TOKEN, "stale").await,
            Err(StoreError::Conflict { .. })
        ));
    }

    /// `replay` moves only a `failed` job back to `queued`, clears what
    /// marked it failed, and keeps it for the store's retention from now.
    pub async fn replay_moves_only_failed_jobs(store: &dyn JobStore) {
        let now = now_ms();
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        assert_eq!(
            store.replay(queued.id, now_ms()).await.unwrap(),
            ReplayOutcome::Unchanged(JobState::Queued)
        );
        assert_eq!(
            store.replay(JobId::random(), now_ms()).await.unwrap(),
            ReplayOutcome::Missing
        );
        let succeeded = job("primes").state(JobState::Succeeded).build();
        store.create(&succeeded).await.unwrap();
        assert_eq!(
            store.replay(succeeded.id, now_ms()).await.unwrap(),
            ReplayOutcome::Unchanged(JobState::Succeeded)
        );

        let failed = job("primes")
            .state(JobState::Failed)
            .attempts(3)
            .started_at(now - 2 * HOUR_MS)
            .run_started_at(now - HOUR_MS)
            .cancel_requested(true)
            .finished_at(now)
            .error("boom")
            .dead_lettered(true)
            .enqueue_failed(true)
            .discarded(true)
            .expires_at(now / 1000 + 60)
            .build();
        store.create(&failed).await.unwrap();
        // The next morning: the replay starts a new run on the moved time.
        let morning = now + 15 * HOUR_MS;
        assert_eq!(
            store.replay(failed.id, morning).await.unwrap(),
            ReplayOutcome::Replayed
        );
        let replayed = stored(store, failed.id).await;
        assert_eq!(replayed.run_started_at, None, "a new run clock");
        assert!(!replayed.cancel_requested, "the old cancel request is gone");
        assert_eq!(replayed.started_at, Some(now - 2 * HOUR_MS), "history kept");
        assert_eq!(replayed.state, JobState::Queued);
        assert_eq!(replayed.replays, 1);
        assert!(!replayed.dead_lettered);
        assert!(!replayed.enqueue_failed);
        assert!(!replayed.discarded);
        assert_eq!(replayed.finished_at, None);
        assert_eq!(replayed.attempts, 3);
        assert_eq!(replayed.error.as_deref(), Some("boom"));
        assert!(
            replayed.expires_at >= morning / 1000 + 86_400,
            "the TTL is extended by the retention from the replay: {} vs {}",
            replayed.expires_at,
            morning / 1000
        );
        assert_eq!(
            store.replay(failed.id, morning).await.unwrap(),
            ReplayOutcome::Unchanged(JobState::Queued),
            "a replayed job is not replayed twice"
        );
        let rerun = store
            .claim(failed.id, morning + 1, morning + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(
            rerun.run_started_at,
            Some(morning + 1),
            "the new run's clock"
        );
        assert_eq!(rerun.started_at, Some(now - 2 * HOUR_MS));
        assert!(!rerun.cancel_requested);
    }

    /// `discard` makes any job but a `succeeded` one `failed` and discarded,
    /// keeping an earlier finish time and error; it is idempotent.
    pub async fn discard_gives_up_on_any_unfinished_job(store: &dyn JobStore) {
        let now = now_ms();
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        assert_eq!(
            store.discard(queued.id, now).await.unwrap(),
            DiscardOutcome::Discarded
        );
        let discarded = stored(store, queued.id).await;
        assert_eq!(discarded.state, JobState::Failed);
        assert!(discarded.discarded);
        assert_eq!(discarded.finished_at, Some(now));
        assert_eq!(discarded.error.as_deref(), Some(DISCARDED_ERROR));
        assert_eq!(
            store.discard(queued.id, now + 5).await.unwrap(),
            DiscardOutcome::Discarded,
            "discarding is idempotent"
        );
        assert_eq!(stored(store, queued.id).await, discarded);

        let running = claimed(store, now).await;
        assert_eq!(
            store.discard(running.id, now + 1).await.unwrap(),
            DiscardOutcome::Discarded
        );
        let discarded = stored(store, running.id).await;
        assert_eq!(discarded.lease_expires_at, None);
        assert_eq!(discarded.finished_at, Some(now + 1));
        let done = Completion::Succeeded(json!(1));
        assert!(
            matches!(
                store.finish(running.id, 1, TOKEN, &done, now + 2).await,
                Err(StoreError::Conflict { .. })
            ),
            "the attempt that held the job cannot complete it"
        );

        let failed = job("primes")
            .state(JobState::Failed)
            .finished_at(now - 5)
            .error("boom")
            .build();
        store.create(&failed).await.unwrap();
        assert_eq!(
            store.discard(failed.id, now).await.unwrap(),
            DiscardOutcome::Discarded
        );
        let discarded = stored(store, failed.id).await;
        assert!(discarded.discarded);
        assert_eq!(discarded.finished_at, Some(now - 5));
        assert_eq!(discarded.error.as_deref(), Some("boom"));

        let succeeded = job("primes").state(JobState::Succeeded).build();
        store.create(&succeeded).await.unwrap();
        assert_eq!(
            store.discard(succeeded.id, now).await.unwrap(),
            DiscardOutcome::Unchanged(JobState::Succeeded)
        );
        assert_eq!(stored(store, succeeded.id).await, succeeded);
        assert_eq!(
            store.discard(JobId::random(), now).await.unwrap(),
            DiscardOutcome::Missing
        );
    }

    /// `mark_enqueue_failed` fails (and finishes) a job no worker claimed,
    /// which the same id may then create again.
    pub async fn mark_enqueue_failed_only_before_a_claim(store: &dyn JobStore) {
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        let before = now_ms();
        let other_request = JobRecord {
            created_at: queued.created_at + 1,
            ..queued.clone()
        };
        assert!(
            matches!(
                store
                    .mark_enqueue_failed(&other_request, "not mine", before)
                    .await,
                Err(StoreError::Conflict { current: Some(_) })
            ),
            "only the request that created the record may mark it"
        );
        store
            .mark_enqueue_failed(&queued, "SQS unreachable", now_ms())
            .await
            .unwrap();
        let after = now_ms();
        let failed = stored(store, queued.id).await;
        assert_eq!(failed.state, JobState::Failed);
        assert!(failed.enqueue_failed);
        assert_eq!(failed.error.as_deref(), Some("SQS unreachable"));
        let finished = failed.finished_at.expect("finishedAt is set");
        assert!((before..=after).contains(&finished), "{finished}");
        assert_eq!(
            refusal(store, queued.id, after).await,
            ClaimRefusal::Finished(JobState::Failed)
        );

        store
            .create(&queued)
            .await
            .expect("recreate over an enqueue failure");
        assert_eq!(store.get(queued.id).await.unwrap(), Some(queued.clone()));
        let running = store
            .claim(queued.id, after, after + 60_000, 1, TOKEN)
            .await
            .unwrap();
        match store.mark_enqueue_failed(&queued, "too late", after).await {
            Err(StoreError::Conflict {
                current: Some(current),
            }) => assert_eq!(*current, running),
            other => panic!("expected a conflict with the claimed job, got {other:?}"),
        }
        let never_created = job("primes").build();
        assert!(matches!(
            store
                .mark_enqueue_failed(&never_created, "lost", after)
                .await,
            Err(StoreError::Conflict { current: None })
        ));
        assert!(matches!(
            store.mark_resending(running.id, after).await,
            Err(StoreError::Conflict { current: Some(_) })
        ));
    }

    /// A repeat of a submission marks the job before sending its message
    /// again; from then on the creator's failed send cannot fail the job,
    /// whose message may be in the queue. An enqueue-failed job is not
    /// resent (its key creates it again).
    pub async fn a_resent_job_is_never_marked_enqueue_failed(store: &dyn JobStore) {
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        let now = now_ms();
        store.mark_resending(queued.id, now).await.unwrap();
        assert_eq!(stored(store, queued.id).await.resent_at, Some(now));
        match store
            .mark_enqueue_failed(&queued, "send timed out", now)
            .await
        {
            Err(StoreError::Conflict {
                current: Some(current),
            }) => assert_eq!(current.state, JobState::Queued),
            other => panic!("expected a conflict with the resent job, got {other:?}"),
        }
        assert_eq!(stored(store, queued.id).await.state, JobState::Queued);

        let unsent = job("primes").build();
        store.create(&unsent).await.unwrap();
        store
            .mark_enqueue_failed(&unsent, "lost", now)
            .await
            .unwrap();
        assert!(matches!(
            store.mark_resending(unsent.id, now).await,
            Err(StoreError::Conflict { current: Some(_) })
        ));
        assert!(matches!(
            store.mark_resending(JobId::random(), now).await,
            Err(StoreError::Conflict { current: None })
        ));
    }

    /// The due index lists a job from its creation until its final state,
    /// never before its `dueAt`: creation, claims, returns and replays keep
    /// it there; finishing, discarding and an enqueue failure take it out.
    pub async fn the_due_index_lists_only_unfinished_jobs(store: &dyn JobStore) {
        let now = now_ms();
        let far = far_after(now);
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        assert!(
            listed(store, queued.id, far).await,
            "a created job is listed"
        );
        assert!(
            !listed(store, queued.id, now).await,
            "a new job is not overdue"
        );
        store
            .claim(queued.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert!(
            listed(store, queued.id, far).await,
            "a claimed job is listed"
        );
        assert!(
            !listed(store, queued.id, now + 60_000).await,
            "not overdue before its lease ends"
        );
        store
            .return_to_queue(queued.id, 1, TOKEN, "again")
            .await
            .unwrap();
        assert!(
            listed(store, queued.id, far).await,
            "a returned job is listed"
        );
        // Claimed on a last delivery, the job is due a margin after its
        // lease; its message sent again renews its bound to a new job's
        // (here, the template's: more than two days).
        let late = job("primes").build();
        store.create(&late).await.unwrap();
        store
            .claim(late.id, now, now + 1_000, u32::MAX, TOKEN)
            .await
            .unwrap();
        let two_days = now + 2 * 86_400_000;
        assert!(listed(store, late.id, two_days).await);
        store.renew_due(late.id, now).await.unwrap();
        assert!(!listed(store, late.id, two_days).await, "renewed");
        assert!(listed(store, late.id, far).await);
        let done = job("primes").state(JobState::Succeeded).build();
        store.create(&done).await.unwrap();
        assert!(matches!(
            store.renew_due(done.id, now).await,
            Err(StoreError::Conflict { .. })
        ));
        store
            .claim(queued.id, now, now + 60_000, 2, TOKEN)
            .await
            .unwrap();
        let done = Completion::Succeeded(json!(1));
        store.finish(queued.id, 2, TOKEN, &done, now).await.unwrap();
        assert!(
            !listed(store, queued.id, far).await,
            "a finished job is not"
        );

        let failing = claimed(store, now).await;
        let failed = Completion::Failed {
            error: "boom".into(),
            dead_lettered: false,
        };
        store
            .finish(failing.id, 1, TOKEN, &failed, now)
            .await
            .unwrap();
        assert!(!listed(store, failing.id, far).await, "a failed job is not");
        assert_eq!(
            store.replay(failing.id, now_ms()).await.unwrap(),
            ReplayOutcome::Replayed
        );
        assert!(listed(store, failing.id, far).await, "a replayed job is");
        assert!(
            !listed(store, failing.id, now).await,
            "a replayed job is not overdue"
        );
        store.discard(failing.id, now).await.unwrap();
        assert!(
            !listed(store, failing.id, far).await,
            "a discarded job is not"
        );

        let unsent = job("primes").build();
        store.create(&unsent).await.unwrap();
        store
            .mark_enqueue_failed(&unsent, "lost", now)
            .await
            .unwrap();
        assert!(!listed(store, unsent.id, far).await, "an unsent job is not");
        let finished = job("primes").state(JobState::Succeeded).build();
        store.create(&finished).await.unwrap();
        assert!(!listed(store, finished.id, far).await);
    }

    /// `sweep` fails an overdue unfinished job, once, and takes it out of
    /// the index; it leaves alone a job that is not overdue or finished.
    pub async fn sweep_fails_only_overdue_unfinished_jobs(store: &dyn JobStore) {
        let now = now_ms();
        let far = far_after(now);
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        assert_eq!(
            store.sweep(queued.id, now).await.unwrap(),
            SweepOutcome::Unchanged(JobState::Queued),
            "not overdue yet"
        );
        let SweepOutcome::Swept(swept) = store.sweep(queued.id, far).await.unwrap() else {
            panic!("an overdue job is swept");
        };
        assert_eq!(*swept, stored(store, queued.id).await);
        assert_eq!(swept.state, JobState::Failed);
        assert!(swept.dead_lettered);
        assert_eq!(swept.error.as_deref(), Some(SWEPT_ERROR));
        assert_eq!(swept.finished_at, Some(far));
        assert_eq!(swept.lease_expires_at, None);
        assert!(!listed(store, queued.id, far).await);
        assert_eq!(
            store.sweep(queued.id, far).await.unwrap(),
            SweepOutcome::Unchanged(JobState::Failed)
        );

        let running = claimed(store, now).await;
        let SweepOutcome::Swept(swept) = store.sweep(running.id, far).await.unwrap() else {
            panic!("an overdue running job is swept");
        };
        assert_eq!(swept.attempts, 1);
        let done = Completion::Succeeded(json!(1));
        assert!(
            matches!(
                store.finish(running.id, 1, TOKEN, &done, far).await,
                Err(StoreError::Conflict { .. })
            ),
            "the lost attempt cannot complete a swept job"
        );
        assert_eq!(
            store.replay(running.id, now_ms()).await.unwrap(),
            ReplayOutcome::Replayed
        );
        assert!(
            listed(store, running.id, far).await,
            "replayed: listed again"
        );

        let succeeded = job("primes").state(JobState::Succeeded).build();
        store.create(&succeeded).await.unwrap();
        assert_eq!(
            store.sweep(succeeded.id, far).await.unwrap(),
            SweepOutcome::Unchanged(JobState::Succeeded)
        );
        assert_eq!(
            store.sweep(JobId::random(), far).await.unwrap(),
            SweepOutcome::Missing
        );
    }

    /// Every write cuts the error it stores to the error budget.
    pub async fn stored_errors_are_bounded(store: &dyn JobStore) {
        let now = now_ms();
        let long = "é".repeat(3_000);
        let bounded = Some(bound_error(&long).into_owned());

        let running = claimed(store, now).await;
        store
            .return_to_queue(running.id, 1, TOKEN, &long)
            .await
            .unwrap();
        assert_eq!(stored(store, running.id).await.error, bounded);
        store
            .claim(running.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        let failed = Completion::Failed {
            error: long.clone(),
            dead_lettered: false,
        };
        store
            .finish(running.id, 2, TOKEN, &failed, now)
            .await
            .unwrap();
        assert_eq!(stored(store, running.id).await.error, bounded);

        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        store
            .mark_enqueue_failed(&queued, &long, now)
            .await
            .unwrap();
        assert_eq!(stored(store, queued.id).await.error, bounded);

        let created = job("primes").error(&long).build();
        store.create(&created).await.unwrap();
        assert_eq!(stored(store, created.id).await.error, bounded);
    }

    /// A job with a large payload (200 KiB: stored apart by DynamoDB, see
    /// [`jobline_dynamodb::item::INLINE_PAYLOAD_BYTES`]) keeps its payload
    /// through create, claim, a lost claim answer, finish, replay and
    /// discard, and a reused key with another payload leaves it alone.
    pub async fn large_payloads_round_trip(store: &dyn JobStore) {
        let now = now_ms();
        let large = job("primes")
            .payload(json!({"upTo": 10, "pad": "p".repeat(200 * 1024)}))
            .build();
        store.create(&large).await.unwrap();
        assert_eq!(stored(store, large.id).await, large);
        let rival = job("primes")
            .id(large.id)
            .payload(json!({"upTo": 11, "pad": "q".repeat(200 * 1024)}))
            .build();
        match store.create(&rival).await {
            Err(StoreError::Conflict {
                current: Some(existing),
            }) => assert_eq!(*existing, large),
            other => panic!("expected a conflict with the existing job, got {other:?}"),
        }
        assert_eq!(stored(store, large.id).await.payload, large.payload);

        let claimed = store
            .claim(large.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(claimed.payload, large.payload);
        let again = store
            .claim(large.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        assert_eq!(again, claimed, "a lost claim answer is recognised whole");
        let failed = Completion::Failed {
            error: "boom".into(),
            dead_lettered: true,
        };
        store
            .finish(large.id, 1, TOKEN, &failed, now + 1)
            .await
            .unwrap();
        assert_eq!(stored(store, large.id).await.payload, large.payload);

        assert_eq!(
            store.replay(large.id, now_ms()).await.unwrap(),
            ReplayOutcome::Replayed
        );
        let replayed = stored(store, large.id).await;
        assert!(replayed.expires_at >= large.expires_at);
        let claimed = store
            .claim(large.id, now + 2, now + 60_000, 1, OTHER)
            .await
            .unwrap();
        assert_eq!((claimed.attempts, &claimed.payload), (2, &large.payload));
        let done = Completion::Succeeded(json!({"count": 4}));
        store
            .finish(large.id, 2, OTHER, &done, now + 3)
            .await
            .unwrap();
        let finished = stored(store, large.id).await;
        assert_eq!(finished.state, JobState::Succeeded);
        assert_eq!(finished.result, Some(json!({"count": 4})));
        assert_eq!(finished.payload, large.payload);

        let discarded = job("primes")
            .payload(json!({"pad": "d".repeat(200 * 1024)}))
            .build();
        store.create(&discarded).await.unwrap();
        store
            .mark_enqueue_failed(&discarded, "no queue", now)
            .await
            .unwrap();
        assert_eq!(
            store.discard(discarded.id, now).await.unwrap(),
            DiscardOutcome::Discarded
        );
        let kept = stored(store, discarded.id).await;
        assert!(kept.enqueue_failed && kept.discarded, "{kept:?}");
        assert_eq!(kept.payload, discarded.payload);
    }

    /// An item over DynamoDB's 400 KB is refused as `Invalid`; a refused
    /// create writes nothing. (DynamoDB also leaves an item alone when it
    /// refuses an update, but moto applies part of it before refusing, so
    /// the contract does not check that.)
    pub async fn oversized_items_are_invalid(store: &dyn JobStore) {
        let huge = json!("x".repeat(MAX_ITEM_BYTES));
        let too_large = job("primes").payload(huge.clone()).build();
        assert!(matches!(
            store.create(&too_large).await,
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.get(too_large.id).await.unwrap(), None);

        let running = claimed(store, now_ms()).await;
        let result = Completion::Succeeded(huge);
        assert!(matches!(
            store.finish(running.id, 1, TOKEN, &result, now_ms()).await,
            Err(StoreError::Invalid { .. })
        ));
    }

    /// A heartbeat of the running attempt renews its lease and `dueAt` and
    /// stores new progress and checkpoint (keeping the old ones when it has
    /// none); it is fenced by the attempt and the delivery's token, and
    /// tells the attempt when a client asked to cancel.
    pub async fn heartbeats_renew_the_lease_and_carry_the_cancel(store: &dyn JobStore) {
        let now = now_ms();
        let running = claimed(store, now).await;
        let progress = Progress::new(0.25, "a quarter", now + 1);
        let checkpoint = json!({"next": 250});
        let beat = Heartbeat {
            now_ms: now + 1,
            lease_until_ms: now + 120_000,
            progress: Some(&progress),
            checkpoint: Some(&checkpoint),
        };
        let renewed = store.heartbeat(running.id, 1, TOKEN, &beat).await.unwrap();
        assert!(!renewed.cancel_requested);
        let beaten = stored(store, running.id).await;
        assert_eq!(beaten.lease_expires_at, Some(now + 120_000));
        assert_eq!(beaten.progress, Some(progress.clone()));
        assert_eq!(beaten.checkpoint, Some(checkpoint.clone()));
        assert_eq!(beaten.checkpoint_at, Some(now + 1));
        assert_eq!(beaten.state, JobState::Running);
        assert!(listed(store, running.id, far_after(now)).await);
        assert!(
            matches!(
                refusal(store, running.id, now + 90_000).await,
                ClaimRefusal::Leased { until_ms } if until_ms == now + 120_000
            ),
            "the renewed lease holds past the claim's"
        );

        let bare = Heartbeat {
            now_ms: now + 2,
            lease_until_ms: now + 130_000,
            progress: None,
            checkpoint: None,
        };
        for (attempt, token) in [(1, OTHER), (2, TOKEN)] {
            assert!(
                matches!(
                    store.heartbeat(running.id, attempt, token, &bare).await,
                    Err(StoreError::Conflict { current: Some(_) })
                ),
                "attempt {attempt} of delivery {token} is fenced out"
            );
        }
        store.heartbeat(running.id, 1, TOKEN, &bare).await.unwrap();
        let kept = stored(store, running.id).await;
        assert_eq!(kept.lease_expires_at, Some(now + 130_000));
        assert_eq!(
            (kept.progress, kept.checkpoint),
            (Some(progress), Some(checkpoint)),
            "a beat with nothing new keeps what was written"
        );

        assert!(matches!(
            store.cancel(running.id, now + 3).await.unwrap(),
            CancelOutcome::Requested(_)
        ));
        let renewed = store.heartbeat(running.id, 1, TOKEN, &bare).await.unwrap();
        assert!(renewed.cancel_requested);
        assert!(matches!(
            store.heartbeat(JobId::random(), 1, TOKEN, &bare).await,
            Err(StoreError::Conflict { current: None })
        ));
    }

    /// A continuation puts the running attempt's job back in `queued` with
    /// its checkpoint and one more continuation, fenced and idempotent; the
    /// next claim finds the checkpoint.
    pub async fn suspend_queues_a_continuation_with_its_checkpoint(store: &dyn JobStore) {
        let now = now_ms();
        let running = claimed(store, now).await;
        let checkpoint = json!({"next": 1000});
        for _ in 0..2 {
            // The second is a retry whose first answer was lost.
            store
                .suspend(running.id, 1, TOKEN, Some(&checkpoint), now + 1)
                .await
                .unwrap();
        }
        let queued = stored(store, running.id).await;
        assert_eq!(queued.state, JobState::Queued);
        assert_eq!(queued.continuations, 1);
        assert_eq!(queued.checkpoint, Some(checkpoint.clone()));
        assert_eq!(queued.checkpoint_at, Some(now + 1));
        assert_eq!(queued.lease_expires_at, None);
        assert!(listed(store, running.id, far_after(now)).await);
        assert!(
            matches!(
                store.suspend(running.id, 1, OTHER, None, now + 2).await,
                Err(StoreError::Conflict { .. })
            ),
            "another delivery's suspend of a queued job is refused"
        );

        let again = store
            .claim(running.id, now + 3, now + 60_000, 1, OTHER)
            .await
            .unwrap();
        assert_eq!(again.attempts, 2);
        assert_eq!(again.checkpoint, Some(checkpoint.clone()));
        store
            .suspend(running.id, 2, OTHER, None, now + 4)
            .await
            .unwrap();
        let kept = stored(store, running.id).await;
        assert_eq!(kept.continuations, 2);
        assert_eq!(
            kept.checkpoint,
            Some(checkpoint),
            "no new checkpoint keeps the last"
        );
    }

    /// A cancel ends a `queued` job at once (out of the due index, and no
    /// claim takes it), flags a `running` one for its worker, leaves a
    /// cancelled one so, and refuses a finished one with its state.
    pub async fn cancel_ends_queued_jobs_and_flags_running_ones(store: &dyn JobStore) {
        let now = now_ms();
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        for _ in 0..2 {
            match store.cancel(queued.id, now + 1).await.unwrap() {
                CancelOutcome::Cancelled(job) => {
                    assert_eq!(job.state, JobState::Cancelled);
                    assert_eq!(job.finished_at, Some(now + 1), "the first cancel's time");
                }
                other => panic!("expected the queued job cancelled, got {other:?}"),
            }
        }
        assert!(!listed(store, queued.id, far_after(now)).await);
        assert_eq!(
            refusal(store, queued.id, now + 2).await,
            ClaimRefusal::Finished(JobState::Cancelled)
        );
        assert_eq!(
            store.discard(queued.id, now + 2).await.unwrap(),
            DiscardOutcome::Unchanged(JobState::Cancelled)
        );
        assert_eq!(
            store.replay(queued.id, now_ms()).await.unwrap(),
            ReplayOutcome::Unchanged(JobState::Cancelled)
        );

        let running = claimed(store, now).await;
        match store.cancel(running.id, now + 3).await.unwrap() {
            CancelOutcome::Requested(job) => {
                assert_eq!(job.state, JobState::Running);
                assert!(job.cancel_requested);
            }
            other => panic!("expected a cancel request, got {other:?}"),
        }
        store
            .finish(running.id, 1, TOKEN, &Completion::Cancelled, now + 4)
            .await
            .unwrap();
        let cancelled = stored(store, running.id).await;
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert_eq!(cancelled.finished_at, Some(now + 4));
        assert_eq!(cancelled.lease_expires_at, None);
        assert!(!listed(store, running.id, far_after(now)).await);

        let done = claimed(store, now).await;
        let result = Completion::Succeeded(json!(1));
        store.finish(done.id, 1, TOKEN, &result, now).await.unwrap();
        assert_eq!(
            store.cancel(done.id, now + 5).await.unwrap(),
            CancelOutcome::Finished(JobState::Succeeded)
        );
        assert_eq!(stored(store, done.id).await.state, JobState::Succeeded);
        assert_eq!(
            store.cancel(JobId::random(), now).await.unwrap(),
            CancelOutcome::Missing
        );
    }

    /// A listing pages through one caller's jobs, newest first, each page
    /// reading at most its limit of index entries however many jobs other
    /// callers have, with the jobs' fields but no payload or result.
    pub async fn list_pages_through_ones_own_jobs_newest_first(store: &dyn JobStore) {
        let owner = format!("lister-{}", JobId::random());
        let base = now_ms();
        let mut mine = Vec::new();
        for i in 0..5 {
            let job = job("primes")
                .owner(&owner)
                .created_at(base + i)
                .payload(json!({"pad": "x".repeat(2_000), "i": i}))
                .build();
            store.create(&job).await.unwrap();
            mine.push(job.id);
        }
        for i in 0..8 {
            let theirs = job("primes")
                .owner("someone-else")
                .created_at(base + i)
                .build();
            store.create(&theirs).await.unwrap();
        }
        // A claimed job of the caller, created after the others: listed first.
        let running = job("primes").owner(&owner).created_at(base + 10).build();
        store.create(&running).await.unwrap();
        store
            .claim(running.id, base, base + 60_000, 1, TOKEN)
            .await
            .unwrap();
        mine.push(running.id);
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..10 {
            let page = store.list(&owner, after, 2).await.unwrap();
            assert!(
                page.scanned <= 2,
                "read {} entries for a page of 2",
                page.scanned
            );
            assert!(page.jobs.len() <= 2);
            for listed in &page.jobs {
                assert_eq!(listed.owner, owner);
                assert_eq!(listed.payload, serde_json::Value::Null, "no payload read");
                let expected = if listed.id == running.id {
                    JobState::Running
                } else {
                    JobState::Queued
                };
                assert_eq!(listed.state, expected);
                assert_eq!(listed.job_type, "primes");
            }
            seen.extend(page.jobs.iter().map(|listed| listed.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        mine.reverse();
        assert_eq!(seen, mine, "every job of the caller once, newest first");
        assert!(
            store
                .list("nobody", None, 10)
                .await
                .unwrap()
                .jobs
                .is_empty(),
            "a caller without jobs lists none"
        );
    }

    /// The jobs of `mine` that [`JobStore::list_by_state`] lists in `state`,
    /// in its order, paging by `limit` until the listing passes jobs created
    /// before `base` (other checks' jobs, on a shared table); each page is
    /// newest first and reads at most `SHARDS × limit` index entries.
    async fn by_state(
        store: &dyn JobStore,
        state: JobState,
        mine: &[JobId],
        base: i64,
        limit: usize,
    ) -> Vec<JobId> {
        let mut found = Vec::new();
        let mut after = None;
        for _ in 0..100 {
            let page = store.list_by_state(state, after, limit).await.unwrap();
            assert!(
                page.scanned <= usize::from(SHARDS) * limit,
                "read {} entries for a page of {limit}",
                page.scanned
            );
            assert!(page.jobs.len() <= limit, "{} jobs", page.jobs.len());
            let keys: Vec<(i64, JobId)> = page.jobs.iter().map(|j| (j.created_at, j.id)).collect();
            assert!(
                keys.windows(2).all(|pair| pair[0] > pair[1]),
                "newest first: {keys:?}"
            );
            if let Some(after) = after {
                assert!(
                    keys.iter()
                        .all(|&(created_at, id)| (created_at, id) < (after.created_at, after.id)),
                    "a page starts after its cursor"
                );
            }
            for listed in page.jobs.iter().filter(|j| mine.contains(&j.id)) {
                assert_eq!(listed.state, state);
                assert_eq!(listed.payload, serde_json::Value::Null, "no payload read");
                assert_eq!(listed.job_type, "primes");
                found.push(listed.id);
            }
            let passed = keys
                .last()
                .is_some_and(|&(created_at, _)| created_at < base);
            match page.next {
                Some(next) if !passed => after = Some(next),
                _ => return found,
            }
        }
        panic!("the {state} listing did not end");
    }

    /// Listing by state pages through every caller's jobs in one state,
    /// newest first (ties in `createdAt` by id), each page reading a bounded
    /// number of index entries; a job that changes state moves from one
    /// state's listing to the other's.
    pub async fn list_by_state_pages_through_every_callers_jobs_newest_first(store: &dyn JobStore) {
        // Far in the future, so that no other check's jobs are newer.
        let base = now_ms() + 10 * 365 * 86_400_000;
        let owners = [
            format!("state-a-{}", JobId::random()),
            format!("state-b-{}", JobId::random()),
        ];
        let newest_first = |jobs: &[&JobRecord]| {
            let mut keys: Vec<(i64, JobId)> = jobs.iter().map(|j| (j.created_at, j.id)).collect();
            keys.sort_by(|a, b| b.cmp(a));
            keys.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        };
        // Three queued jobs created in the same millisecond, across a page.
        let mut queued = Vec::new();
        for (i, offset) in [3, 3, 3, 2, 1].into_iter().enumerate() {
            let job = job("primes")
                .owner(&owners[i % 2])
                .created_at(base + offset)
                .payload(json!({"pad": "x".repeat(2_000), "i": i}))
                .build();
            store.create(&job).await.unwrap();
            queued.push(job);
        }
        let mut failed = Vec::new();
        for (i, offset) in [2, 0].into_iter().enumerate() {
            let job = job("primes")
                .owner(&owners[i % 2])
                .state(JobState::Failed)
                .created_at(base + offset)
                .finished_at(base + 5)
                .error("boom")
                .build();
            store.create(&job).await.unwrap();
            failed.push(job);
        }
        let succeeded = job("primes")
            .owner(&owners[1])
            .state(JobState::Succeeded)
            .created_at(base)
            .finished_at(base + 5)
            .build();
        store.create(&succeeded).await.unwrap();
        let mut mine: Vec<JobId> = queued.iter().chain(&failed).map(|j| j.id).collect();
        mine.push(succeeded.id);

        let all_queued: Vec<&JobRecord> = queued.iter().collect();
        for limit in [1, 2, 10] {
            assert_eq!(
                by_state(store, JobState::Queued, &mine, base, limit).await,
                newest_first(&all_queued),
                "every queued job of both callers once, newest first, by pages of {limit}"
            );
        }
        let first = store
            .list_by_state(JobState::Queued, None, 3)
            .await
            .unwrap();
        let owners_listed: Vec<&str> = first.jobs.iter().map(|j| j.owner.as_str()).collect();
        assert!(
            owners
                .iter()
                .all(|owner| owners_listed.contains(&owner.as_str())),
            "one page lists both callers' jobs: {owners_listed:?}"
        );
        assert!(first.next.is_some(), "more queued jobs follow");
        assert_eq!(
            by_state(store, JobState::Failed, &mine, base, 1).await,
            newest_first(&failed.iter().collect::<Vec<_>>())
        );
        assert_eq!(
            by_state(store, JobState::Succeeded, &mine, base, 2).await,
            vec![succeeded.id]
        );

        // A claim moves the newest job from `queued` to `running`, its
        // finish on to `succeeded`; a cancel moves another to `cancelled`.
        let moved = store
            .get(newest_first(&all_queued)[0])
            .await
            .unwrap()
            .unwrap();
        store
            .claim(moved.id, base, base + 60_000, 1, TOKEN)
            .await
            .unwrap();
        let rest: Vec<&JobRecord> = all_queued
            .iter()
            .copied()
            .filter(|j| j.id != moved.id)
            .collect();
        assert_eq!(
            by_state(store, JobState::Queued, &mine, base, 2).await,
            newest_first(&rest)
        );
        assert_eq!(
            by_state(store, JobState::Running, &mine, base, 2).await,
            vec![moved.id]
        );
        store
            .finish(
                moved.id,
                1,
                TOKEN,
                &Completion::Succeeded(json!(1)),
                base + 1,
            )
            .await
            .unwrap();
        assert!(
            by_state(store, JobState::Running, &mine, base, 2)
                .await
                .is_empty()
        );
        assert_eq!(
            by_state(store, JobState::Succeeded, &mine, base, 1).await,
            vec![moved.id, succeeded.id]
        );
        let cancelled = newest_first(&rest)[0];
        store.cancel(cancelled, base + 2).await.unwrap();
        assert_eq!(
            by_state(store, JobState::Cancelled, &mine, base, 2).await,
            vec![cancelled]
        );
        assert_eq!(
            by_state(store, JobState::Queued, &mine, base, 3).await,
            newest_first(&rest)[1..].to_vec()
        );

        // A replay moves a failed job back to `queued`, a discard to `failed`.
        let again = failed[0].id;
        assert_eq!(
            store.replay(again, now_ms()).await.unwrap(),
            ReplayOutcome::Replayed
        );
        assert!(
            by_state(store, JobState::Queued, &mine, base, 2)
                .await
                .contains(&again)
        );
        assert!(
            !by_state(store, JobState::Failed, &mine, base, 2)
                .await
                .contains(&again)
        );
        assert_eq!(
            store.discard(again, base + 3).await.unwrap(),
            DiscardOutcome::Discarded
        );
        assert!(
            by_state(store, JobState::Failed, &mine, base, 2)
                .await
                .contains(&again)
        );
        assert!(
            !by_state(store, JobState::Queued, &mine, base, 2)
                .await
                .contains(&again)
        );
    }

    /// A delete removes a finished job (and its payload) at once, and
    /// leaves an unfinished one.
    pub async fn delete_removes_only_finished_jobs(store: &dyn JobStore) {
        let now = now_ms();
        let running = claimed(store, now).await;
        assert_eq!(
            store.delete(running.id).await.unwrap(),
            DeleteOutcome::Unfinished(JobState::Running)
        );
        assert!(store.get(running.id).await.unwrap().is_some());
        let large = job("primes")
            .payload(json!({"pad": "x".repeat(4_000)}))
            .build();
        store.create(&large).await.unwrap();
        store
            .claim(large.id, now, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        let done = Completion::Succeeded(json!({"count": 1}));
        store.finish(large.id, 1, TOKEN, &done, now).await.unwrap();
        assert_eq!(
            store.delete(large.id).await.unwrap(),
            DeleteOutcome::Deleted
        );
        assert_eq!(store.get(large.id).await.unwrap(), None);
        assert_eq!(
            store.delete(large.id).await.unwrap(),
            DeleteOutcome::Missing
        );
        // Its id can be written afresh: nothing of it is left.
        store.create(&large).await.unwrap();
    }

    /// A success whose result is stored apart keeps only the result's key,
    /// fenced by the attempt and idempotent like any finish.
    pub async fn a_linked_result_is_stored_as_its_key(store: &dyn JobStore) {
        let now = now_ms();
        let running = claimed(store, now).await;
        let linked = Completion::SucceededLinked("results/a/1.json".into());
        store
            .finish(running.id, 2, TOKEN, &linked, now)
            .await
            .expect_err("a stale attempt's finish is refused");
        for _ in 0..2 {
            store
                .finish(running.id, 1, TOKEN, &linked, now)
                .await
                .unwrap();
        }
        let done = stored(store, running.id).await;
        assert_eq!(done.state, JobState::Succeeded);
        assert_eq!(done.result, None);
        assert_eq!(done.result_key.as_deref(), Some("results/a/1.json"));
    }

    /// A job with a callback URL is in the webhook index from its final
    /// state until its delivery is recorded `delivered` or `failed`, listed
    /// by its `finishedAt`; a replay lists it again for its new run;
    /// `settle_webhook` takes it out. A job without a callback is never in it.
    pub async fn owed_webhooks_are_listed_from_the_final_state_until_delivered(
        store: &dyn JobStore,
    ) {
        use jobline_core::job::{DeliveryState, WebhookDelivery};
        let now = now_ms();
        let far = far_after(now);
        let hooked = job("primes")
            .callback_url("https://hooks.example.com/x")
            .build();
        let plain = job("primes").build();
        for created in [&hooked, &plain] {
            store.create(created).await.unwrap();
            assert!(!owed(store, created.id, far).await, "unfinished: not owed");
            store
                .claim(created.id, now, now + 60_000, 1, TOKEN)
                .await
                .unwrap();
            store
                .finish(created.id, 1, TOKEN, &Completion::Succeeded(json!(1)), now)
                .await
                .unwrap();
        }
        assert!(owed(store, hooked.id, now + 1).await, "finished: owed");
        assert!(
            !owed(store, hooked.id, now).await,
            "listed by its finishedAt"
        );
        assert!(!owed(store, plain.id, far).await, "no callback: never owed");
        let delivery = |state, attempts| WebhookDelivery {
            for_finished_at: now,
            state,
            attempts,
            last_status: Some(503),
            at_ms: now,
        };
        let pending = delivery(DeliveryState::Pending, 1);
        store
            .record_delivery(hooked.id, None, &pending)
            .await
            .unwrap();
        assert!(owed(store, hooked.id, far).await, "pending: still owed");
        store
            .record_delivery(
                hooked.id,
                Some(&pending),
                &delivery(DeliveryState::Delivered, 2),
            )
            .await
            .unwrap();
        assert!(!owed(store, hooked.id, far).await, "delivered: settled");

        let failing = job("primes")
            .callback_url("https://hooks.example.com/y")
            .state(JobState::Failed)
            .attempts(1)
            .finished_at(now)
            .build();
        store.create(&failing).await.unwrap();
        assert!(owed(store, failing.id, far).await);
        store
            .record_delivery(failing.id, None, &delivery(DeliveryState::Failed, 8))
            .await
            .unwrap();
        assert!(!owed(store, failing.id, far).await, "failed: settled");
        store.replay(failing.id, now + 1).await.unwrap();
        assert!(!owed(store, failing.id, far).await, "replayed: unfinished");
        store
            .claim(failing.id, now + 2, now + 60_000, 1, TOKEN)
            .await
            .unwrap();
        store
            .finish(
                failing.id,
                2,
                TOKEN,
                &Completion::Succeeded(json!(2)),
                now + 3,
            )
            .await
            .unwrap();
        assert!(
            owed(store, failing.id, now + 4).await,
            "the new run's webhook is owed"
        );
        store.settle_webhook(failing.id).await.unwrap();
        assert!(!owed(store, failing.id, far).await, "settled");
        assert!(matches!(
            store.settle_webhook(JobId::random()).await,
            Err(StoreError::Conflict { current: None })
        ));
    }

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

    /// A state's count covers every caller's jobs up to its bound, then says
    /// it is a lower bound; the oldest job in a state is found across shards.
    pub async fn states_are_counted_within_a_bound_and_their_oldest_found(store: &dyn JobStore) {
        let before = store
            .count_by_state(JobState::Cancelled, 1_000)
            .await
            .unwrap();
        assert!(before.complete, "{before:?}");
        // More jobs than shards: some shard holds two or more of them.
        let jobs = usize::from(SHARDS) * 2 + 1;
        let base = now_ms();
        let mut oldest = None;
        for i in 0..jobs {
            let job = job("primes")
                .owner(&format!("count-{}", i % 3))
                .state(JobState::Cancelled)
                .created_at(base - 1_000 * (i as i64 + 1))
                .finished_at(base)
                .build();
            store.create(&job).await.unwrap();
            oldest = Some(job.id);
        }
        let all = store
            .count_by_state(JobState::Cancelled, 1_000)
            .await
            .unwrap();
        assert_eq!((all.count, all.complete), (before.count + jobs, true));
        let bounded = store.count_by_state(JobState::Cancelled, 1).await.unwrap();
        assert!(!bounded.complete, "{bounded:?}");
        assert!(bounded.count <= usize::from(SHARDS), "{bounded:?}");
        assert!(bounded.count >= 1, "{bounded:?}");

        let found = store
            .oldest_in_state(JobState::Cancelled)
            .await
            .unwrap()
            .expect("an oldest cancelled job");
        assert_eq!(Some(found.id), oldest, "the earliest created is the oldest");
        assert_eq!(found.created_at, base - 1_000 * jobs as i64);
        assert!(
            store
                .oldest_in_state(JobState::Running)
                .await
                .unwrap()
                .is_none_or(|key| key.id != found.id)
        );
    }
}

/// The checks of a [`JobQueue`]: what SQS and the fake both honour.
pub mod queue {
    use super::*;
    use jobline_core::queue::{JobMessage, Receive};
    use std::collections::BTreeSet;

    fn receive(max_messages: i32, wait_secs: i32) -> Receive {
        Receive {
            max_messages,
            wait_secs,
            visibility_secs: 30,
        }
    }

    /// A received message stays hidden, also after a visibility change to a
    /// later time, until it is made visible; then it comes back under a new
    /// receipt handle, counted, and a delete with that handle removes it.
    pub async fn a_received_message_is_hidden_until_made_visible(queue: &dyn JobQueue) {
        let message = JobMessage {
            job_id: JobId::random(),
        };
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
            let message = JobMessage {
                job_id: JobId::random(),
            };
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
            let message = JobMessage {
                job_id: JobId::random(),
            };
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
}
