//! Webhooks days later: retries to exhaustion, and a master key rotated in
//! the middle of a delivery.

use super::*;

/// Webhooks on `env`'s stack: a notifier queue whose last receive is the
/// `max_receive_count`-th, retries after `retry_secs`, local callbacks
/// allowed, the master key in Secrets Manager. Sets `env.config.webhooks`;
/// returns the notifier's queues and the secret's ARN.
async fn provision_webhooks(
    env: &mut TestEnv,
    max_receive_count: u32,
    retry_secs: u32,
) -> (Queues, String) {
    let settings = QueueSettings {
        max_receive_count,
        visibility_timeout_secs: 30,
        ..QueueSettings::NOTIFY
    };
    let notify = provision::create_queues(
        &env.clients.sqs,
        &provision::notify_queue_name(&env.table),
        settings,
    )
    .await
    .unwrap();
    let secret = provision::create_webhook_secret(&env.clients.secrets, &env.table)
        .await
        .unwrap();
    env.config.webhooks = WebhookConfig {
        secret_id: Some(secret.clone()),
        queue_url: Some(notify.queue_url.clone()),
        allow_local_callbacks: true,
        max_receive_count,
        retry_base_delay_secs: retry_secs,
        retry_max_delay_secs: retry_secs,
        timeout: Duration::from_secs(5),
    };
    (notify, secret)
}

/// The stack on `clock` with webhooks on, as `jobline-local serve` builds
/// it, the master keys refreshed on `clock`.
async fn with_webhooks(env: &TestEnv, notify: &Queues, secret: &str, clock: &Clock) -> Served {
    let parts = env.webhook_parts(notify, secret, clock).await;
    Served::start(
        stack(env, clock, jobline_jobs::builtin())
            .webhooks(parts)
            .build(),
    )
    .await
}

/// The master key `secret` holds now, as a fresh reader sees it.
async fn current_master_key(env: &TestEnv, secret: &str) -> Vec<u8> {
    let value = env
        .clients
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .unwrap();
    value.secret_string.expect("a string").into_bytes()
}

/// Waits until job `id`'s webhook is no longer pending; its view.
async fn settled_webhook(api: &Api, id: JobId, secs: u64) -> Value {
    let started = Instant::now();
    loop {
        let (status, view) = get(api, id).await;
        assert_eq!(status, 200, "{view}");
        if view["webhook"]["state"] != "pending" {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "the webhook of {id} is still pending: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the queue at `url` holds no message (a poller deletes a
/// handled message just after the notifier records its delivery).
async fn until_empty(sqs: &aws_sdk_sqs::Client, url: &str) {
    let queue = SqsJobQueue::new(sqs.clone(), url);
    let started = Instant::now();
    loop {
        let counts = queue.counts().await.unwrap();
        if counts.visible + counts.in_flight + counts.delayed == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url} still holds {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_queues(env: &TestEnv, queues: &Queues) {
    for url in [&queues.queue_url, &queues.dlq_url] {
        env.clients
            .sqs
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_run_to_exhaustion_at_any_age_and_the_job_shows_it() {
    jobline_tests::require_emulator!();
    let mut env = env(2).await;
    let (notify, secret) = provision_webhooks(&mut env, 3, 1).await;
    let clock = Clock::movable();
    let running = with_webhooks(&env, &notify, &secret, &clock).await;
    let receiver = Receiver::start(usize::MAX).await;
    let caller = caller_secret(&current_master_key(&env, &secret).await, ANONYMOUS_OWNER);

    let mut earlier: Vec<JobId> = Vec::new();
    for (at, offset) in OFFSETS {
        move_to(&clock, offset);
        // The webhooks of earlier offsets were failed for good: the
        // sweeper's pass over owed webhooks hands none of them back.
        let report = running.sweeper.sweep_once(clock.now_ms()).await;
        assert_eq!((report.requeued, report.failed), (0, 0), "{at}");

        let from = clock.now_ms();
        let body = json!({
            "type": "primes",
            "payload": {"upTo": 10},
            "callbackUrl": receiver.url,
        });
        let id = submit(&running.api, &body).await;
        let view = settled_webhook(&running.api, id, 60).await;
        let to = clock.now_ms();
        assert_eq!(
            view["status"], "succeeded",
            "{at}: a failing receiver never fails its job"
        );
        assert_eq!(view["attempts"], 1, "{at}: nor re-runs it");
        assert_eq!(
            view["webhook"],
            json!({
                "state": "failed",
                "attempts": 3,
                "lastStatus": 500,
                "updatedAt": view["webhook"]["updatedAt"],
            }),
            "{at}"
        );
        let job = record(&env, id).await;
        let finished = job.finished_at.expect("finished");
        let delivery = job.webhook.expect("recorded");
        assert_eq!(delivery.for_finished_at, finished);
        assert!((from..=to).contains(&delivery.at_ms), "{at}: {delivery:?}");
        assert_eq!(view["webhook"]["updatedAt"], format_ms(delivery.at_ms));

        let hits = receiver.hits_of(id);
        assert_eq!(hits.len(), 3, "{at}: {hits:?}");
        for hit in &hits {
            assert_eq!(
                hit.webhook_id,
                jobline_notifier::webhook_id(id, finished),
                "{at}"
            );
            let secs = u64::try_from(from / 1000).unwrap()..=u64::try_from(to / 1000).unwrap();
            assert!(
                secs.contains(&hit.timestamp),
                "{at}: webhook-timestamp {} is not on the moved clock ({secs:?})",
                hit.timestamp
            );
            assert!(hit.verifies_with(&caller), "{at}: {hit:?}");
            let event: Value = serde_json::from_slice(&hit.body).unwrap();
            assert_eq!(event["type"], "job.succeeded");
            assert_eq!(event["timestamp"], format_ms(finished));
            assert_eq!(hit.answered, 500);
        }
        // Done with: neither waiting nor dead-lettered in the notifier's queues.
        until_empty(&env.clients.sqs, &notify.queue_url).await;
        until_empty(&env.clients.sqs, &notify.dlq_url).await;
        for old in &earlier {
            assert_eq!(
                receiver.hits_of(*old).len(),
                3,
                "{at}: {old} not sent again"
            );
        }
        earlier.push(id);
    }
    running.stop().await;
    delete_queues(&env, &notify).await;
    env.cleanup().await;
}

/// A fresh 64-character master key.
fn new_master_key(n: u8) -> String {
    format!("{}{}", char::from(b'a' + n), uuid::Uuid::new_v4().simple())
        .repeat(2)
        .chars()
        .take(64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_mid_delivery_reaches_the_next_attempt() {
    jobline_tests::require_emulator!();
    let mut env = env(2).await;
    let (notify, secret) = provision_webhooks(&mut env, 6, 3).await;
    let clock = Clock::movable();
    let running = with_webhooks(&env, &notify, &secret, &clock).await;
    // Each event's first attempt fails (500); then the receiver checks the
    // signature against the secret it holds.
    let receiver = Receiver::start(1).await;
    let secret_of = |master: &[u8]| caller_secret(master, ANONYMOUS_OWNER);
    let (status, body) = call(&running.api, "GET", "/webhook-secret", &[], None).await;
    assert_eq!(status, 200, "{body}");
    let k1 = current_master_key(&env, &secret).await;
    assert_eq!(body["secret"], secret_of(&k1).to_whsec());
    receiver.hold(secret_of(&k1));
    let rotate = |n: u8| {
        let (secrets, id) = (env.clients.secrets.clone(), secret.clone());
        async move {
            secrets
                .put_secret_value()
                .secret_id(id)
                .secret_string(new_master_key(n))
                .send()
                .await
                .unwrap();
        }
    };
    let event = json!({"type": "primes", "payload": {"upTo": 10}, "callbackUrl": receiver.url});

    // 1. Rotated between two attempts, within the refresh interval: the
    // notifier still signs with the old key alone. The receiver switched to
    // the new secret, from an API environment started after the rotation
    // (a cold start reads the keys afresh); it refuses the old signature
    // (401), the notifier reads the keys again, sees the rotation and
    // retries, signed with both keys.
    let first = submit(&running.api, &event).await;
    let hits = receiver.until_hits(first, 1, 30).await;
    assert!(hits[0].verifies_with(&secret_of(&k1)), "{hits:?}");
    rotate(2).await;
    let k2 = current_master_key(&env, &secret).await;
    assert_ne!(k1, k2);
    let fresh_api = Api::new(
        Arc::new(env.store()),
        Arc::new(env.queue()),
        jobline_jobs::builtin(),
        &env.config,
    )
    .with_clock(clock.clone())
    .with_webhook_keys(Arc::new(
        SecretsManagerKeys::new(env.clients.secrets.clone(), &secret).with_clock(clock.clone()),
    ));
    let (_, body) = call(&fresh_api, "GET", "/webhook-secret", &[], None).await;
    assert_eq!(body["secret"], secret_of(&k2).to_whsec(), "the new secret");
    receiver.hold(secret_of(&k2));
    let view = settled_webhook(&running.api, first, 60).await;
    let hits = receiver.hits_of(first);
    assert!(
        hits.iter().any(|h| h.answered == 401),
        "within the refresh interval the notifier signed with the old key alone, which the \
         switched receiver refused: {hits:?}"
    );
    assert_eq!(
        view["webhook"]["state"], "delivered",
        "a receiver that switched to its new secret refused the notifier's old-key signature, \
         and the delivery was not retried with the new keys: {view}; {hits:?}"
    );
    let last = hits.last().unwrap();
    assert!(
        last.verifies_with(&secret_of(&k2)) && last.verifies_with(&secret_of(&k1)),
        "signed with both keys: {last:?}"
    );
    assert_eq!(
        last.signature,
        signature_header(
            &[secret_of(&k2), secret_of(&k1)],
            &last.webhook_id,
            last.timestamp,
            &last.body
        ),
        "the new key's signature first"
    );

    // 2. Rotated again between two attempts of the next event; the clock
    // moves past the refresh interval (to +2 h): the stack's own API hands
    // out the newest secret, and the next attempt is signed with the new
    // and the previous key, with no refusal needed.
    let second = submit(&running.api, &event).await;
    let hits = receiver.until_hits(second, 1, 30).await;
    assert!(hits[0].verifies_with(&secret_of(&k2)));
    rotate(3).await;
    let k3 = current_master_key(&env, &secret).await;
    assert!(OFFSETS[1].1 > REFRESH_INTERVAL);
    move_to(&clock, OFFSETS[1].1);
    let (_, body) = call(&running.api, "GET", "/webhook-secret", &[], None).await;
    assert_eq!(
        body["secret"],
        secret_of(&k3).to_whsec(),
        "the keys are read again once the refresh interval has passed"
    );
    receiver.hold(secret_of(&k3));
    let view = settled_webhook(&running.api, second, 60).await;
    let hits = receiver.hits_of(second);
    assert_eq!(view["webhook"]["state"], "delivered", "{view}; {hits:?}");
    assert_eq!(
        view["webhook"]["attempts"], 2,
        "no refusal: the refresh alone reached the next attempt: {hits:?}"
    );
    let last = hits.last().unwrap();
    assert_eq!(
        last.signature,
        signature_header(
            &[secret_of(&k3), secret_of(&k2)],
            &last.webhook_id,
            last.timestamp,
            &last.body
        )
    );
    running.stop().await;
    delete_queues(&env, &notify).await;
    env.cleanup().await;
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
struct Hit {
    webhook_id: String,
    timestamp: u64,
    signature: String,
    body: Vec<u8>,
    job_id: String,
    answered: u16,
}

impl Hit {
    /// Whether one of the request's signatures is `secret`'s.
    fn verifies_with(&self, secret: &WebhookSecret) -> bool {
        let expected = sign(secret, &self.webhook_id, self.timestamp, &self.body);
        self.signature.split(' ').any(|s| s == expected)
    }
}

/// A webhook receiver in this process: answers 500 to the first
/// `fail_first` requests of each event; after those, 204 when a signature
/// verifies with the secret it holds (none: any), else 401.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    secret: Arc<Mutex<Option<WebhookSecret>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let secret: Arc<Mutex<Option<WebhookSecret>>> = Arc::default();
        let (shared_hits, shared_secret) = (Arc::clone(&hits), Arc::clone(&secret));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, secret) = (Arc::clone(&shared_hits), Arc::clone(&shared_secret));
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let (hits, secret) = (Arc::clone(&hits), Arc::clone(&secret));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                            let header = |name: &str| {
                                parts
                                    .headers
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let body = body.unwrap_or_default();
                            let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let mut hit = Hit {
                                webhook_id: header("webhook-id"),
                                timestamp: header("webhook-timestamp").parse().unwrap_or(0),
                                signature: header("webhook-signature"),
                                job_id: event["data"]["jobId"].as_str().unwrap_or("").to_owned(),
                                body,
                                answered: 500,
                            };
                            let mut hits = hits.lock().unwrap();
                            let earlier = hits
                                .iter()
                                .filter(|h| h.webhook_id == hit.webhook_id)
                                .count();
                            let held = secret.lock().unwrap().clone();
                            hit.answered = if earlier < fail_first {
                                500
                            } else if held.as_ref().is_none_or(|s| hit.verifies_with(s)) {
                                204
                            } else {
                                401
                            };
                            let status = hit.answered;
                            hits.push(hit);
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            hits,
            secret,
            task,
        }
    }

    /// The requests of job `id`'s events so far.
    fn hits_of(&self, id: JobId) -> Vec<Hit> {
        let id = id.to_string();
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.job_id == id).cloned().collect()
    }

    /// Waits until job `id`'s events got `count` requests.
    async fn until_hits(&self, id: JobId, count: usize, secs: u64) -> Vec<Hit> {
        let started = Instant::now();
        loop {
            let hits = self.hits_of(id);
            if hits.len() >= count {
                return hits;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "{} request(s) of job {id} within {secs} s, not {count}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// From now on, only signatures with `secret` are accepted.
    fn hold(&self, secret: WebhookSecret) {
        *self.secret.lock().unwrap() = Some(secret);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
