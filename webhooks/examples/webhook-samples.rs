//! Prints signed webhook samples, one JSON object a line, for
//! `scripts/check-webhooks` to verify with the reference Standard Webhooks
//! library: `{"case", "secret", "id", "timestamp", "body", "signature",
//! "expect"}`, where `secret` is the one to verify with and `expect` is
//! `"ok"` or `"fail"`. Timestamps are now, as receivers refuse old ones.
//!
//! Usage: cargo run -p jobline-webhooks --example webhook-samples

use jobline_core::Clock;
use jobline_webhooks::{WebhookHeaders, WebhookSecret, caller_secret};

fn main() {
    let now = u64::try_from(Clock::system().now_secs()).expect("the clock is after 1970");
    let body = format!(
        r#"{{"type":"job.succeeded","timestamp":{now},"data":{{"job_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","state":"succeeded"}}}}"#
    );
    let old =
        WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret");
    let new = WebhookSecret::from_bytes((0u8..32).collect::<Vec<_>>()).expect("32 bytes");
    let master = b"jobline test master secret, 32 b";
    let alice = caller_secret(master, "alice");
    let bob = caller_secret(master, "bob");

    let print = |case: &str,
                 verify_with: &WebhookSecret,
                 headers: &WebhookHeaders,
                 body: &str,
                 expect: &str| {
        let line = serde_json::json!({
            "case": case,
            "secret": verify_with.to_whsec(),
            "id": headers.id,
            "timestamp": headers.timestamp,
            "body": body,
            "signature": headers.signature,
            "expect": expect,
        });
        println!("{line}");
    };

    let single = WebhookHeaders::signed(
        std::slice::from_ref(&old),
        "msg_single",
        now,
        body.as_bytes(),
    );
    print("one secret", &old, &single, &body, "ok");
    print(
        "one secret, verified with another",
        &new,
        &single,
        &body,
        "fail",
    );

    let rotated = WebhookHeaders::signed(
        &[old.clone(), new.clone()],
        "msg_rotated",
        now,
        body.as_bytes(),
    );
    print(
        "rotation, verified with the old secret",
        &old,
        &rotated,
        &body,
        "ok",
    );
    print(
        "rotation, verified with the new secret",
        &new,
        &rotated,
        &body,
        "ok",
    );

    let tampered = body.replace("succeeded\"}", "failed\"}");
    assert_ne!(tampered, body);
    print("tampered body", &old, &single, &tampered, "fail");

    let from_alice = WebhookHeaders::signed(
        std::slice::from_ref(&alice),
        "msg_alice",
        now,
        body.as_bytes(),
    );
    print(
        "caller A's event, A's secret",
        &alice,
        &from_alice,
        &body,
        "ok",
    );
    print(
        "caller A's event, B's secret",
        &bob,
        &from_alice,
        &body,
        "fail",
    );
}
