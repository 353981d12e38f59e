//! Webhooks end to end, on the real binary against the emulator: jobs with
//! callback URLs finish, the jobs table's stream carries their final
//! states to the notifier, and a receiver verifies each event with the
//! reference Standard Webhooks library (`examples/webhook-receiver.py`).
//!
//! A receiver that fails first gets the event again, with the same
//! `webhook-id`, and it is delivered; one that holds another caller's
//! secret rejects the event, which is failed at once (401); a tampered body
//! never verifies; a cancelled job is announced too; each job's `GET` shows
//! its delivery.

use jobline_tests::process::Runner;
use jobline_tests::{TestEnv, test_queue_settings};
use jobline_webhooks::{KeySource, SecretsManagerKeys};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `examples/webhook-receiver.py` as a child process, verifying every event
/// with the reference Standard Webhooks library (from `.venv`, which
/// `scripts/test` installs); killed when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    child: Child,
    pub url: String,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl WebhookReceiver {
    /// A receiver that checks signatures with `secret` and answers 500 to
    /// the first `fail_first` deliveries of each event.
    pub fn start(secret: &str, fail_first: u32) -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let python = format!("{root}/.venv/bin/python");
        assert!(
            std::path::Path::new(&python).exists(),
            "{python} is missing: run the tests with scripts/test, which installs \
             requirements-test.txt (standardwebhooks) into .venv"
        );
        let mut child = Command::new(python)
            .arg(format!("{root}/examples/webhook-receiver.py"))
            .args(["--secret", secret, "--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the webhook receiver");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("read the receiver's port");
        let port = serde_json::from_str::<Value>(&first).unwrap()["listening"]
            .as_u64()
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let (Ok(value), Ok(mut lines)) = (serde_json::from_str(&line), collected.lock())
                {
                    lines.push(value);
                }
            }
        });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/hooks"),
            lines,
        }
    }

    /// What the receiver got so far, one JSON object per request.
    pub fn received(&self) -> Vec<Value> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /jobs/{id}` until its webhook is no longer pending.
async fn settled_webhook(runner: &Runner, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, job) = jobline_tests::http::get(runner.addr, &format!("/jobs/{id}")).await;
        assert_eq!(status, 200);
        if job["webhook"]["state"] != "pending" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook of {id} is still pending: {job}\n{}",
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit(runner: &Runner, request: Value) -> String {
    let (status, body) =
        jobline_tests::http::post_jobs(runner.addr, request.to_string().as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    body["jobId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn final_states_are_delivered_signed_retried_and_recorded() {
    jobline_tests::require_emulator!();
    // Two deliveries before the DLQ, so a job that always fails is
    // dead-lettered within seconds.
    let env = TestEnv::with_settings(test_queue_settings(30, 2)).await;
    let (notify, secret_arn) = env.provision_webhooks().await;
    let runner = Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        &env,
        &[
            "--allow-local-callbacks",
            "--batching-window-secs",
            "0",
            "--function-timeout-secs",
            "15",
        ],
        &[
            ("WEBHOOK_SECRET_ID", &secret_arn),
            ("NOTIFY_QUEUE_URL", &notify.queue_url),
            ("NOTIFY_RETRY_BASE_DELAY_SECONDS", "1"),
            ("NOTIFY_RETRY_MAX_DELAY_SECONDS", "1"),
            ("HEARTBEAT_SECS", "1"),
            ("MAX_RECEIVE_COUNT", "2"),
            ("RETRY_BASE_DELAY_SECONDS", "1"),
            ("RETRY_MAX_DELAY_SECONDS", "1"),
        ],
        None,
    );

    // The caller's secret, from the API; another caller's, from the key.
    let (status, body) = jobline_tests::http::get(runner.addr, "/webhook-secret").await;
    assert_eq!(status, 200, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let keys = SecretsManagerKeys::new(env.clients.secrets.clone(), &secret_arn)
        .keys()
        .await
        .unwrap();
    assert_eq!(keys.caller_secret("anonymous").to_whsec(), secret);
    let other = keys
        .caller_secret("jwt:https://issuer.example.com|bob")
        .to_whsec();

    let flaky = WebhookReceiver::start(&secret, 1);
    let strangers = WebhookReceiver::start(&other, 0);
    let steady = WebhookReceiver::start(&secret, 0);

    let done = submit(
        &runner,
        json!({"type": "primes", "payload": {"upTo": 30}, "callbackUrl": flaky.url}),
    )
    .await;
    let misdirected = submit(
        &runner,
        json!({"type": "primes", "payload": {"upTo": 30}, "callbackUrl": strangers.url}),
    )
    .await;
    let long = submit(
        &runner,
        json!({"type": "sleep", "payload": {"seconds": 60}, "callbackUrl": flaky.url}),
    )
    .await;
    let dead = submit(
        &runner,
        json!({"type": "always-fail", "payload": {}, "callbackUrl": steady.url}),
    )
    .await;
    let plain = submit(&runner, json!({"type": "primes", "payload": {"upTo": 5}})).await;

    // Delivered on the second attempt, after a 500.
    let job = settled_webhook(&runner, &done).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["webhook"]["state"], "delivered", "{job}");
    assert_eq!(job["webhook"]["attempts"], 2);
    assert_eq!(job["webhook"]["lastStatus"], 204);

    // Signed for another caller's secret: rejected by the receiver, 401,
    // which is not retried.
    let job = settled_webhook(&runner, &misdirected).await;
    assert_eq!(job["webhook"]["state"], "failed", "{job}");
    assert_eq!(job["webhook"]["attempts"], 1);
    assert_eq!(job["webhook"]["lastStatus"], 401);

    // A cancel is a final state like any other.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = jobline_tests::http::exchange(
        runner.addr,
        format!(
            "POST /jobs/{long}/cancel HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let job = settled_webhook(&runner, &long).await;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["webhook"]["state"], "delivered", "{job}");

    // Retries spent, dead-lettered: announced as failed.
    let job = settled_webhook(&runner, &dead).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["deadLettered"], true);
    assert_eq!(job["webhook"]["state"], "delivered", "{job}");
    let failed = steady.received();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["type"], "job.failed");
    assert_eq!(failed[0]["verified"], true);

    let (_, job) = jobline_tests::http::get(runner.addr, &format!("/jobs/{plain}")).await;
    assert_eq!(job["webhook"], Value::Null, "no callback, no delivery");

    let got = flaky.received();
    let of = |id: &str| -> Vec<&Value> { got.iter().filter(|l| l["jobId"] == id).collect() };
    let attempts = of(&done);
    assert_eq!(attempts.len(), 2, "{got:?}");
    assert_eq!(attempts[0]["answered"], 500);
    assert_eq!(attempts[1]["answered"], 204);
    assert_eq!(attempts[0]["webhookId"], attempts[1]["webhookId"]);
    assert_eq!(attempts[1]["type"], "job.succeeded");
    let cancelled = of(&long);
    assert_eq!(cancelled.len(), 2, "fails first too: {got:?}");
    assert_eq!(cancelled[1]["type"], "job.cancelled");
    for line in &got {
        assert_eq!(line["verified"], true, "{line}");
        assert_eq!(line["tamperedAccepted"], false, "{line}");
        assert_eq!(line["path"], "/hooks");
    }
    let rejected = strangers.received();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["verified"], false);
    assert_eq!(rejected[0]["answered"], 401);

    // A callback URL the guard refuses never becomes a job.
    for url in [
        "https://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/",
    ] {
        let request = json!({"type": "primes", "payload": {"upTo": 5}, "callbackUrl": url});
        let (status, body) =
            jobline_tests::http::post_jobs(runner.addr, request.to_string().as_bytes()).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_callback_url");
    }

    // The notifier stops with the rest, cleanly.
    let mut runner = runner;
    assert!(runner.is_running());
    runner.terminate().assert_clean();
}
