//! Dead letters days later: replays, retries, the console's actions and
//! SQS redrives run the job again, and at +15 days the tools say the
//! dead letter is gone.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_hours_or_days_later_runs_again_and_succeeds() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let running = Served::start(stack(&env, &clock, jobline_jobs::builtin()).build()).await;
    let retention = env.config.retention_days;

    // At +0: per offset, a job the worker dead-letters (two failures, two
    // deliveries), and one whose last attempt failed as its client asked
    // to cancel it.
    let mut dead = Vec::new();
    for _ in OFFSETS {
        let body = json!({"type": "fail-times", "payload": {"failures": 2}});
        dead.push(submit(&running.api, &body).await);
    }
    let mut cancelled = Vec::new();
    for _ in OFFSETS {
        cancelled.push(dead_with_a_late_cancel(&env, clock.now_ms()).await);
    }
    until_dead_lettered(&env, &dead, 8).await;
    for id in &cancelled {
        let job = record(&env, *id).await;
        assert!(job.cancel_requested && job.dead_lettered, "{job:?}");
    }

    let mut findings = Findings::default();
    for (i, (at, offset)) in OFFSETS.into_iter().enumerate() {
        move_to(&clock, offset);
        let jobs = [dead[i], cancelled[i]];
        let mut before = Vec::new();
        for id in jobs {
            before.push(record(&env, id).await);
        }
        let requeued_from = clock.now_ms();
        if dlq_keeps_it(offset) {
            let (exit, out) = jobline_dlq(&env, &clock, dlq_replay(&jobs)).await;
            assert_eq!(exit, Exit::Success, "{at}: {out}");
            assert!(
                out.contains("replayed 2, skipped 0, failed 0"),
                "{at}: {out}"
            );
            for id in jobs {
                assert!(
                    out.contains(&format!("job {id} (fail-times): failed -> queued")),
                    "{at}: {out}"
                );
            }
        } else {
            // The DLQ's retention is over: the messages are gone.
            assert_eq!(expire_dead_letters(&env, &jobs).await, 2, "{at}");
            let (exit, out) = jobline_dlq(
                &env,
                &clock,
                DlqCommand::List(ListArgs {
                    limit: None,
                    json: false,
                }),
            )
            .await;
            assert_eq!(exit, Exit::Success);
            assert_eq!(out, "the dead-letter queue is empty\n", "{at}");
            let (exit, out) = jobline_dlq(&env, &clock, dlq_replay(&jobs)).await;
            assert_eq!(exit, Exit::Success, "{at}: {out}");
            assert!(out.contains("replayed 0,"), "{at}: {out}");
            for id in jobs {
                findings.check(
                    says_not_in_the_dlq(&out, id),
                    format!(
                        "{at}: `jobline dlq replay --job-id {id}` for a job whose dead message \
                         expired with the DLQ's 14-day retention does not say so: it names \
                         neither the job nor the missing message (nor that `jobline retry {id}` \
                         is what runs it again); it printed {out:?}"
                    ),
                );
                // The record outlives its message (its retention is longer than
                // the DLQ's): its client still sees it dead-lettered, and a
                // retry runs it.
                let (status, view) = get(&running.api, id).await;
                assert_eq!(status, 200, "{at}: {view}");
                assert_eq!(view["status"], "failed");
                assert_eq!(view["deadLettered"], true);
                let retried = retry(&env.store(), &env.queue(), id, clock.now_ms())
                    .await
                    .unwrap();
                assert!(matches!(retried, Retried::Requeued { .. }), "{retried:?}");
            }
        }
        let requeued_at = requeued_from..=clock.now_ms();
        for (id, before) in jobs.iter().zip(&before) {
            let job = until_ran_again(&env, *id, before).await;
            assert_ran_again(&job, before, &requeued_at, retention, at);
        }
        // Nothing else was touched.
        for id in dead[i + 1..].iter().chain(&cancelled[i + 1..]) {
            let job = record(&env, *id).await;
            assert_eq!((job.state, job.replays), (JobState::Failed, 0), "{at}");
        }
    }
    running.stop().await;
    env.cleanup().await;
    findings.assert_none();
}

/// The console's actions through its request handler, as a browser that
/// opened the launch URL sends them.
struct ConsoleClient {
    console: Console,
    headers: HeaderMap,
}

impl ConsoleClient {
    const PORT: u16 = 7_878;

    fn new(env: &TestEnv, clock: &Clock) -> Self {
        let guard = Guard::new(Self::PORT);
        let cookie = guard.cookie();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let host = format!("127.0.0.1:{}", Self::PORT);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(&host).unwrap());
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(&format!("http://{host}")).unwrap(),
        );
        Self {
            console: Console {
                store: Arc::new(env.store()),
                queue: Arc::new(env.queue()),
                dlq: Arc::new(env.dlq()),
                history: Arc::new(FixedHistory::new()),
                guard,
                emulated: true,
                bucket: None,
                clock: clock.clone(),
            },
            headers,
        }
    }

    async fn request(&self, method: Method, path: &str, body: &str) -> String {
        let response = self
            .console
            .handle(&method, path, &self.headers, body.as_bytes())
            .await;
        let status = response.status();
        let html = response.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert_eq!(status.as_u16(), 200, "{method} {path}: {html}");
        html
    }

    async fn page(&self, path: &str) -> String {
        self.request(Method::GET, path, "").await
    }

    /// Confirms `action` on job `id`; the outcome the console shows.
    async fn act(&self, action: &str, id: JobId) -> String {
        let form = format!(
            "action={action}&job={id}&csrf={}",
            self.console.guard.csrf()
        );
        let html = self.request(Method::POST, "/act", &form).await;
        let start = html.find("<p data-outcome>").expect("an outcome") + 16;
        let end = start + html[start..].find("</p>").unwrap();
        html[start..end].to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_console_actions_and_dlq_redrives_hours_or_days_later_run_the_job_again() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let running = Served::start(stack(&env, &clock, jobline_jobs::builtin()).build()).await;
    let console = ConsoleClient::new(&env, &clock);
    let retention = env.config.retention_days;

    // At +0, per offset: one job for `jobline retry`, one for the console's
    // Retry, one for its Replay, one for an SQS redrive; all dead-lettered.
    let flows = ["retry", "console retry", "console replay", "redrive"];
    let mut jobs: Vec<[JobId; 4]> = Vec::new();
    for _ in OFFSETS {
        let mut ids = [JobId::MIN; 4];
        for id in &mut ids {
            let body = json!({"type": "fail-times", "payload": {"failures": 2}});
            *id = submit(&running.api, &body).await;
        }
        jobs.push(ids);
    }
    let all: Vec<JobId> = jobs.iter().flatten().copied().collect();
    until_dead_lettered(&env, &all, 16).await;

    let mut findings = Findings::default();
    for (i, (at, offset)) in OFFSETS.into_iter().enumerate() {
        move_to(&clock, offset);
        let [by_retry, by_console_retry, by_console_replay, by_redrive] = jobs[i];
        let mut before = HashMap::new();
        for id in jobs[i] {
            before.insert(id, record(&env, id).await);
        }
        let requeued_from = clock.now_ms();
        if !dlq_keeps_it(offset) {
            // Every dead message of +0 has expired.
            expire_dead_letters(&env, &all).await;
            let html = console.page("/dlq").await;
            assert!(html.contains("data-dlq-depth>0<"), "{at}: {html}");
            let confirm = console
                .page(&format!("/confirm?action=replay&job={by_console_replay}"))
                .await;
            assert!(confirm.contains("data-dry-run>0<"), "{at}: {confirm}");
            findings.check(
                says_not_in_the_dlq(&confirm, by_console_replay),
                format!(
                    "{at}: the console lists dead-lettered job {by_console_replay} under Dead \
                     letters and offers Replay, but its message expired with the DLQ's 14-day \
                     retention; the Replay confirmation only says 0 would be replayed and \
                     \"Nothing to do.\" (not that the message is gone, nor that Retry runs it)"
                ),
            );
        }

        let retried = retry(&env.store(), &env.queue(), by_retry, clock.now_ms())
            .await
            .unwrap();
        assert!(
            matches!(retried, Retried::Requeued { .. }),
            "{at}: {retried:?}"
        );
        let outcome = console.act("retry", by_console_retry).await;
        assert!(
            outcome.starts_with("The job is queued again, sent as message"),
            "{at}: {outcome}"
        );
        if dlq_keeps_it(offset) {
            let outcome = console.act("replay", by_console_replay).await;
            assert_eq!(outcome, "1 replayed, 0 skipped, 0 failed.", "{at}");
            assert!(redrive(&env, by_redrive).await, "{at}: a dead message");
        } else {
            // No dead message to replay or redrive: the console's Retry
            // runs the job; a redrive finds nothing to move.
            let outcome = console.act("retry", by_console_replay).await;
            assert!(outcome.starts_with("The job is queued again"), "{outcome}");
            assert!(!redrive(&env, by_redrive).await, "{at}: expired");
        }
        let requeued_at = requeued_from..=clock.now_ms();

        let ran: Vec<JobId> = if dlq_keeps_it(offset) {
            jobs[i].to_vec()
        } else {
            jobs[i][..3].to_vec()
        };
        for (flow, id) in flows.iter().zip(&ran) {
            let before = &before[id];
            let job = until_ran_again(&env, *id, before).await;
            // A redrive is replayed by the worker when it receives it.
            let until = if *id == by_redrive {
                requeued_from..=clock.now_ms()
            } else {
                requeued_at.clone()
            };
            assert_ran_again(&job, before, &until, retention, &format!("{at}, {flow}"));
        }
        if !dlq_keeps_it(offset) {
            // Its message gone, the redriven job stays dead-lettered, as its
            // client sees it, until an operator retries it.
            let job = record(&env, by_redrive).await;
            assert_eq!((job.state, job.replays), (JobState::Failed, 0), "{at}");
            let (status, view) = get(&running.api, by_redrive).await;
            assert_eq!(status, 200);
            assert_eq!(view["deadLettered"], true);
        }
    }
    running.stop().await;
    env.cleanup().await;
    findings.assert_none();
}
