//! The checks of an operator's role
//! ([`OperatorStore`](jobline_core::store::OperatorStore)) and the replay it
//! shares with the worker: replay, discard, and the listings and counts by
//! state.

use super::*;

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

/// The jobs of `mine` that
/// [`OperatorStore::list_by_state`](jobline_core::store::OperatorStore::list_by_state)
/// lists in `state`, in its order, paging by `limit` until the listing's
/// cursor passes `base` (every job of `mine` is created, and due, after
/// it; other checks' jobs, on a shared table, before); each page reads at
/// most `SHARDS × limit` index entries, and a listing from the state index
/// is newest first by creation.
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
        if StateListing::of(state) == StateListing::StateIndex {
            let keys: Vec<(i64, JobId)> = page.jobs.iter().map(|j| (j.created_at, j.id)).collect();
            assert!(
                keys.windows(2).all(|pair| pair[0] > pair[1]),
                "newest first: {keys:?}"
            );
            if let Some(after) = after {
                assert!(
                    keys.iter().all(|&key| key < (after.at, after.id)),
                    "a page starts after its cursor"
                );
            }
        }
        for listed in page.jobs.iter() {
            assert_eq!(listed.state, state, "only jobs in {state} are listed");
        }
        for listed in page.jobs.iter().filter(|j| mine.contains(&j.id)) {
            assert_eq!(listed.payload, serde_json::Value::Null, "no payload read");
            assert_eq!(listed.job_type, "primes");
            found.push(listed.id);
        }
        match page.next {
            Some(next) if next.at >= base => after = Some(next),
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
    assert!(
        matches!(
            store.list_by_state(JobState::Succeeded, None, 2).await,
            Err(StoreError::Invalid { .. })
        ),
        "no index lists succeeded jobs"
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
        store.replay(again, base + 3).await.unwrap(),
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

/// A state's count covers every caller's jobs up to its bound, then says
/// it is a lower bound, from the state index (cancelled) as from the due
/// index (queued, running); succeeded jobs are counted by no index; the
/// oldest queued job is found across shards, past running ones.
pub async fn states_are_counted_within_a_bound_and_their_oldest_found(store: &dyn JobStore) {
    let before = store
        .count_by_state(JobState::Cancelled, 1_000)
        .await
        .unwrap();
    assert!(before.complete, "{before:?}");
    // More jobs than shards: some shard holds two or more of them.
    let jobs = usize::from(SHARDS) * 2 + 1;
    let base = now_ms();
    for i in 0..jobs {
        let job = job("primes")
            .owner(&format!("count-{}", i % 3))
            .state(JobState::Cancelled)
            .created_at(base - 1_000 * (i as i64 + 1))
            .finished_at(base)
            .build();
        store.create(&job).await.unwrap();
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
    assert!(matches!(
        store.count_by_state(JobState::Succeeded, 1_000).await,
        Err(StoreError::Invalid { .. })
    ));

    // The unfinished: counted from the due index, each read for its state.
    let live = |state| async move {
        let count = store.count_by_state(state, 1_000).await.unwrap();
        assert!(count.complete, "{count:?}");
        count.count
    };
    let (queued_before, running_before) =
        (live(JobState::Queued).await, live(JobState::Running).await);
    // The oldest queued job is the one queued first: created at the epoch,
    // so due before any other check's job.
    let mut unfinished = Vec::new();
    for (i, created_at) in [0, 5, 10, 20, 30].into_iter().enumerate() {
        let job = job("primes")
            .owner(&format!("live-{}", i % 2))
            .created_at(created_at)
            .build();
        store.create(&job).await.unwrap();
        unfinished.push(job);
    }
    let oldest = store.oldest_queued().await.unwrap().expect("a queued job");
    assert_eq!(
        oldest.id, unfinished[0].id,
        "the first queued is the oldest"
    );
    assert_eq!(oldest.payload, serde_json::Value::Null, "no payload read");
    // Claimed, the two oldest are running: the oldest queued is the third.
    for job in &unfinished[..2] {
        store
            .claim(job.id, base, base + 60_000, 1, TOKEN)
            .await
            .unwrap();
    }
    assert_eq!(
        store.oldest_queued().await.unwrap().map(|job| job.id),
        Some(unfinished[2].id),
        "running jobs ahead in the due index are passed over"
    );
    assert_eq!(live(JobState::Queued).await, queued_before + 3);
    assert_eq!(live(JobState::Running).await, running_before + 2);
    let bounded = store.count_by_state(JobState::Queued, 0).await.unwrap();
    assert_eq!(
        (bounded.count, bounded.complete),
        (0, false),
        "a bound of none reads none"
    );
}
