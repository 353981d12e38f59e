//! The time bound and deletes at any age: a lost job is swept only after
//! its due bound, and a finished job can be deleted whenever.

use super::*;

/// The job's `dueAt` as DynamoDB holds it (none once finished).
async fn due_at(env: &TestEnv, id: JobId) -> Option<i64> {
    env.job_item(id)
        .await
        .get(DUE_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .map(|n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_message_was_lost_is_swept_only_after_its_due_bound() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    // No pollers: the messages are lost.
    let stack = stack(&env, &clock, jobline_jobs::builtin()).build();
    let (api, sweeper) = (Arc::clone(stack.api()), stack.sweeper().clone());
    let deadlines = Deadlines::new(
        QueueSettings::for_worker_timeout(env.config.worker.function_timeout_secs),
        &env.config.worker,
    );

    // Never received: its message expired unseen.
    let unseen = submit(&api, &json!({"type": "primes", "payload": {"upTo": 10}})).await;
    // Claimed on its first delivery by a worker that died, its message lost:
    // its bound stays the one it was queued with.
    let early = submit(&api, &json!({"type": "primes", "payload": {"upTo": 15}})).await;
    // Claimed on its last delivery by a worker that died: that claim moved
    // its bound to the run limit.
    let claimed = submit(&api, &json!({"type": "primes", "payload": {"upTo": 20}})).await;
    let mut claimed_at = None;
    for message in receive_all(&env.queue()).await {
        let now = clock.now_ms();
        if job_of(&message) == Some(early) {
            assert!(message.receive_count() < deadlines.max_receive_count);
            env.store()
                .claim(early, now, now + 21_000, message.receive_count(), "died")
                .await
                .unwrap();
        }
        if job_of(&message) == Some(claimed) {
            let last = deadlines.max_receive_count;
            env.store()
                .claim(claimed, now, now + 21_000, last, "died")
                .await
                .unwrap();
            claimed_at = Some((now, last));
        }
        env.queue().delete(&[message.receipt_handle]).await.unwrap();
    }
    let (claim_ms, delivery) = claimed_at.expect("its message was received");

    // Each bound as core/src/deadline.rs states it, as the items hold it.
    let created = record(&env, unseen).await.created_at;
    let early_created = record(&env, early).await.created_at;
    let due = [
        (
            claimed,
            deadlines
                .claimed(claim_ms, delivery)
                .expect("the last delivery's bound"),
            JobState::Running,
        ),
        (unseen, deadlines.queued_at(created), JobState::Queued),
        (early, deadlines.queued_at(early_created), JobState::Running),
    ];
    for (id, bound, _) in due {
        assert_eq!(due_at(&env, id).await, Some(bound));
    }
    // The last claim: the run limit and a margin. Queued: the retention
    // (4 days), the run limit and a margin.
    assert_eq!(due[0].1 - claim_ms, 3_600_000 + 60_000);
    assert_eq!(due[1].1 - created, 4 * 86_400_000 + 3_600_000 + 60_000);
    let start = clock.now_ms();
    let offset_ms = |offset: Duration| start + i64::try_from(offset.as_millis()).unwrap();
    assert!(
        (offset_ms(OFFSETS[0].1)..offset_ms(OFFSETS[1].1)).contains(&due[0].1),
        "the job claimed on its last delivery is due between +0 and +2 h"
    );
    for (_, bound, _) in &due[1..] {
        assert!(
            (offset_ms(OFFSETS[2].1)..offset_ms(OFFSETS[3].1)).contains(bound),
            "the unseen job and the one claimed early are due between +2 days and +15 days"
        );
    }

    let mut swept = Vec::new();
    for (at, offset) in OFFSETS {
        move_to(&clock, offset);
        let now = clock.now_ms();
        // Not before its bound: a sweep at the earliest bound passed since
        // the last sweep leaves every job.
        let passed: Vec<_> = due
            .iter()
            .filter(|(id, bound, _)| *bound < now && !swept.contains(id))
            .collect();
        if let Some(earliest) = passed.iter().map(|(_, bound, _)| *bound).min() {
            let report = sweeper.sweep_once(earliest).await;
            assert_eq!((report.swept, report.failed), (0, 0), "{at}");
            for (id, _, state) in &passed {
                assert_eq!(record(&env, *id).await.state, *state, "{at}");
            }
        }
        let report = sweeper.sweep_once(now).await;
        assert_eq!(report.failed, 0, "{at}");
        let mut newly = 0;
        for (id, bound, state) in due {
            let job = record(&env, id).await;
            if bound < now {
                assert_eq!(job.state, JobState::Failed, "{at}: {job:?}");
                assert!(job.dead_lettered, "{at}");
                assert_eq!(job.error.as_deref(), Some(SWEPT_ERROR));
                assert_eq!(due_at(&env, id).await, None, "{at}: out of the index");
                if !swept.contains(&id) {
                    assert_eq!(job.finished_at, Some(now), "{at}: swept now");
                    swept.push(id);
                    newly += 1;
                }
            } else {
                assert_eq!(job.state, state, "{at}: not before {bound}");
                assert_eq!(due_at(&env, id).await, Some(bound));
            }
        }
        assert_eq!(report.swept, newly, "{at}");
    }
    assert_eq!(
        swept,
        [claimed, unseen, early],
        "each swept once, in its turn"
    );
    for id in [claimed, unseen, early] {
        let (status, view) = get(&api, id).await;
        assert_eq!(status, 200);
        assert_eq!(
            (&view["status"], &view["deadLettered"], &view["error"]),
            (&json!("failed"), &json!(true), &json!(SWEPT_ERROR))
        );
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_at_any_age_and_an_unfinished_one_is_kept() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let types = jobline_jobs::builtin().with(BigResult(BIG_RESULT_CHARS));
    let running = Served::start(stack(&env, &clock, types).build()).await;
    let api = &running.api;

    let mut small = Vec::new();
    let mut large = Vec::new();
    for _ in OFFSETS {
        small.push(submit(api, &json!({"type": "primes", "payload": {"upTo": 10}})).await);
        large.push(submit(api, &json!({"type": "big"})).await);
    }
    let mut keys = Vec::new();
    for (s, l) in small.iter().zip(&large) {
        env.until(*s, 30, |j| j.state == JobState::Succeeded).await;
        let job = env.until(*l, 30, |j| j.state == JobState::Succeeded).await;
        keys.push(job.result_key.expect("stored in S3"));
    }
    // Queued, its message not yet received.
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 5}),
        callback_url: None,
    };
    let unfinished = JobRecord::new_queued(
        JobId::random(),
        ANONYMOUS_OWNER,
        &request,
        clock.now_ms(),
        env.config.retention_days,
    );
    env.store().create(&unfinished).await.unwrap();
    let bucket = env.config.results_bucket.clone().unwrap();
    let object_exists = |key: String| {
        let s3 = env.clients.s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .is_ok()
        }
    };

    for (i, (at, offset)) in OFFSETS.into_iter().enumerate() {
        move_to(&clock, offset);
        for id in [small[i], large[i]] {
            let (status, body) = delete(api, id).await;
            assert_eq!((status, &body), (204, &Value::Null), "{at}");
            assert_eq!(get(api, id).await.0, 404, "{at}");
            assert_eq!(delete(api, id).await.0, 404, "{at}: already gone");
            assert_eq!(env.store().get(id).await.unwrap(), None, "{at}");
        }
        assert!(!object_exists(keys[i].clone()).await, "{at}: result gone");
        let (status, body) = delete(api, unfinished.id).await;
        assert_eq!(status, 409, "{at}: {body}");
        assert_eq!(body["error"]["code"], "job_not_finished");
        assert_eq!(body["error"]["status"], "queued");
        // The other jobs are untouched.
        for j in i + 1..OFFSETS.len() {
            assert_eq!(get(api, small[j]).await.0, 200, "{at}");
            assert!(object_exists(keys[j].clone()).await, "{at}");
        }
    }
    running.stop().await;
    env.cleanup().await;
}
