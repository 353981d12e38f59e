//! `webhooks::verify` against Jobline's own signatures
//! (`jobline_webhooks::signing`, what the notifier sends): a caller's
//! secret verifies its events, during a key rotation too; a wrong key, a
//! tampered body, another event's id and a stale or future timestamp are
//! refused.

use jobline_client::webhooks::{self, DEFAULT_TOLERANCE, WebhookError, WebhookHeaders};
use jobline_webhooks::signing::{WebhookHeaders as Signed, WebhookSecret, caller_secret};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SIGNED_AT: u64 = 1_795_995_195;
const BODY: &[u8] = br#"{"type":"job.succeeded","timestamp":"2026-11-30T10:13:15.000Z","data":{"jobId":"0193f0a4-0000-7000-8000-000000000001","status":"succeeded"}}"#;
const ID: &str = "msg_0193f0a4-0000-7000-8000-000000000001_1795995195000";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Checks `signed` with `secret` at `now`, the body being `body`.
fn check(
    secret: &WebhookSecret,
    signed: &Signed,
    body: &[u8],
    now: u64,
) -> Result<(), WebhookError> {
    let timestamp = signed.timestamp.to_string();
    let headers = WebhookHeaders {
        id: &signed.id,
        timestamp: &timestamp,
        signature: &signed.signature,
    };
    webhooks::verify(
        &secret.to_whsec(),
        &headers,
        body,
        at(now),
        DEFAULT_TOLERANCE,
    )
}

#[test]
fn a_callers_secret_verifies_its_events() {
    let alice = caller_secret(&[7u8; 32], "jwt:https://issuer|alice");
    let signed = Signed::signed(std::slice::from_ref(&alice), ID, SIGNED_AT, BODY);
    assert_eq!(check(&alice, &signed, BODY, SIGNED_AT), Ok(()));
    assert_eq!(check(&alice, &signed, BODY, SIGNED_AT + 299), Ok(()));
    assert_eq!(check(&alice, &signed, BODY, SIGNED_AT - 299), Ok(()));

    // Through the headers of a request, as a receiver gets them.
    let mut map = http::HeaderMap::new();
    map.insert("webhook-id", signed.id.parse().unwrap());
    map.insert(
        "webhook-timestamp",
        signed.timestamp.to_string().parse().unwrap(),
    );
    map.insert("webhook-signature", signed.signature.parse().unwrap());
    let headers = WebhookHeaders::from_headers(&map).unwrap();
    webhooks::verify(
        &alice.to_whsec(),
        &headers,
        BODY,
        at(SIGNED_AT),
        DEFAULT_TOLERANCE,
    )
    .unwrap();
}

#[test]
fn during_a_rotation_either_key_verifies() {
    let old = caller_secret(&[1u8; 32], "alice");
    let new = caller_secret(&[2u8; 32], "alice");
    let signed = Signed::signed(&[new.clone(), old.clone()], ID, SIGNED_AT, BODY);
    assert_eq!(signed.signature.split(' ').count(), 2);
    assert_eq!(check(&old, &signed, BODY, SIGNED_AT), Ok(()));
    assert_eq!(check(&new, &signed, BODY, SIGNED_AT), Ok(()));
    let other = caller_secret(&[3u8; 32], "alice");
    assert_eq!(
        check(&other, &signed, BODY, SIGNED_AT),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn a_wrong_key_a_tampered_body_or_another_id_is_refused() {
    let alice = caller_secret(&[7u8; 32], "alice");
    let bob = caller_secret(&[7u8; 32], "bob");
    let signed = Signed::signed(std::slice::from_ref(&alice), ID, SIGNED_AT, BODY);
    assert_eq!(
        check(&bob, &signed, BODY, SIGNED_AT),
        Err(WebhookError::NoMatchingSignature)
    );
    let tampered = String::from_utf8(BODY.to_vec())
        .unwrap()
        .replace("succeeded", "failed");
    assert_eq!(
        check(&alice, &signed, tampered.as_bytes(), SIGNED_AT),
        Err(WebhookError::NoMatchingSignature)
    );
    let mut truncated = BODY.to_vec();
    truncated.pop();
    assert_eq!(
        check(&alice, &signed, &truncated, SIGNED_AT),
        Err(WebhookError::NoMatchingSignature)
    );
    let other_event = Signed {
        id: "msg_other".into(),
        ..signed.clone()
    };
    assert_eq!(
        check(&alice, &other_event, BODY, SIGNED_AT),
        Err(WebhookError::NoMatchingSignature)
    );
    // The signature is of this timestamp: a replay with a fresh one fails.
    let moved = Signed {
        timestamp: SIGNED_AT + 60,
        ..signed
    };
    assert_eq!(
        check(&alice, &moved, BODY, SIGNED_AT + 60),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn a_stale_or_future_timestamp_is_refused() {
    let alice = caller_secret(&[7u8; 32], "alice");
    let signed = Signed::signed(std::slice::from_ref(&alice), ID, SIGNED_AT, BODY);
    assert_eq!(
        check(&alice, &signed, BODY, SIGNED_AT + 301),
        Err(WebhookError::TooOld(301))
    );
    assert_eq!(
        check(&alice, &signed, BODY, SIGNED_AT - 301),
        Err(WebhookError::TooNew(301))
    );
    // A wider tolerance takes it.
    let timestamp = SIGNED_AT.to_string();
    let headers = WebhookHeaders {
        id: &signed.id,
        timestamp: &timestamp,
        signature: &signed.signature,
    };
    let day = Duration::from_secs(86_400);
    webhooks::verify(
        &alice.to_whsec(),
        &headers,
        BODY,
        at(SIGNED_AT + 3_600),
        day,
    )
    .unwrap();
}
