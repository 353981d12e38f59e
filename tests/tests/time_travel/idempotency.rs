//! Idempotency keys within and past the retention from creation or replay.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_holds_for_the_retention_from_creation_or_replay_then_is_expired() {
    jobline_tests::require_emulator!();
    let mut env = env(2).await;
    // The shortest retention allowed (the queue's 4 days, a run and the
    // DLQ's 14 days), and one more offset a day past it.
    env.config.retention_days = min_retention_days(env.config.worker.max_run_secs);
    let retention = env.config.retention_days;
    let past_retention = Duration::from_secs((u64::from(retention) + 1) * DAY);
    assert!(past_retention > OFFSETS[3].1);
    let past_label = format!("+{} days", retention + 1);
    let offsets = OFFSETS
        .into_iter()
        .chain([(past_label.as_str(), past_retention)]);
    let clock = Clock::movable();
    let running = Served::start(stack(&env, &clock, jobline_jobs::builtin()).build()).await;
    let api = &running.api;
    let keyed = |key: &'static str| [("Idempotency-Key", key)];
    let body_a = json!({"type": "primes", "payload": {"upTo": 10}});
    let other_a = json!({"type": "primes", "payload": {"upTo": 11}});
    let body_b = json!({"type": "fail-times", "payload": {"failures": 2}});

    let created_from = clock.now_ms();
    let (status, accepted) = call(api, "POST", "/jobs", &keyed("report-a"), Some(&body_a)).await;
    assert_eq!(status, 202, "{accepted}");
    let a: JobId = accepted["jobId"].as_str().unwrap().parse().unwrap();
    let (status, accepted) = call(api, "POST", "/jobs", &keyed("report-b"), Some(&body_b)).await;
    assert_eq!(status, 202, "{accepted}");
    let b: JobId = accepted["jobId"].as_str().unwrap().parse().unwrap();
    let created = created_from..=clock.now_ms();
    let done_a = env.until(a, 30, |j| j.state == JobState::Succeeded).await;
    until_dead_lettered(&env, &[b], 1).await;
    for id in [a, b] {
        let job = record(&env, id).await;
        assert_eq!(
            job.expires_at,
            job.created_at / 1000 + i64::from(retention) * DAY as i64,
            "the retention from creation"
        );
        assert!(created.contains(&job.created_at));
    }

    for (i, (at, offset)) in offsets.enumerate() {
        move_to(&clock, offset);
        if offset == OFFSETS[2].1 {
            // B is retried at +2 days: kept for the retention from then.
            let before = record(&env, b).await;
            let now = clock.now_ms();
            let retried = retry(&env.store(), &env.queue(), b, now).await.unwrap();
            assert!(matches!(retried, Retried::Requeued { .. }));
            let job = until_ran_again(&env, b, &before).await;
            assert_ran_again(&job, &before, &(now..=now), retention, at);
        }
        let now_secs = clock.now_secs();
        let a_gone = done_a.expires_at <= now_secs;
        assert_eq!(
            a_gone,
            i == OFFSETS.len(),
            "{at}: A is kept {retention} days, then gone"
        );

        let (status, view) = get(api, a).await;
        let (again, answer) = call(api, "POST", "/jobs", &keyed("report-a"), Some(&body_a)).await;
        let (reused, reused_answer) =
            call(api, "POST", "/jobs", &keyed("report-a"), Some(&other_a)).await;
        let (_, listing) = call(api, "GET", "/jobs?limit=100", &[], None).await;
        let listed = listing["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["jobId"] == a.to_string());
        if a_gone {
            assert_eq!(status, 404, "{at}: past its expiresAt: {view}");
            assert_eq!(again, 409, "{at}: {answer}");
            assert_eq!(answer["error"]["code"], "idempotency_key_expired");
            assert_eq!(reused, 409, "{at}: {reused_answer}");
            assert!(!listed, "{at}: expired jobs are not listed");
            assert_eq!(delete(api, a).await.0, 404, "{at}");
            // A new key submits the work again.
            let (status, fresh) =
                call(api, "POST", "/jobs", &keyed("report-a-2"), Some(&body_a)).await;
            assert_eq!(status, 202, "{fresh}");
            let fresh: JobId = fresh["jobId"].as_str().unwrap().parse().unwrap();
            assert_ne!(fresh, a);
            let job = env.until(fresh, 30, |j| j.state.is_finished()).await;
            assert_eq!(job.state, JobState::Succeeded);
            assert_eq!(
                job.expires_at,
                job.created_at / 1000 + i64::from(retention) * DAY as i64
            );
        } else {
            assert_eq!(status, 200, "{at}: {view}");
            assert_eq!(again, 202, "{at}: {answer}");
            assert_eq!(answer["jobId"], a.to_string());
            assert_eq!(answer["status"], "succeeded");
            assert_eq!(reused, 422, "{at}: {reused_answer}");
            assert_eq!(reused_answer["error"]["code"], "idempotency_key_reused");
            assert!(listed, "{at}");
            assert_eq!(record(&env, a).await, done_a, "{at}: nothing ran again");
        }
        // B, replayed at +2 days, is kept the retention from then: its key
        // still answers with it a day past A's.
        let (status, answer) = call(api, "POST", "/jobs", &keyed("report-b"), Some(&body_b)).await;
        assert_eq!(status, 202, "{at}: {answer}");
        assert_eq!(answer["jobId"], b.to_string());
        assert_eq!(get(api, b).await.0, 200, "{at}");
    }
    running.stop().await;
    env.cleanup().await;
}
