//! Standard Webhooks signatures: the secret format, the `v1` HMAC-SHA256
//! signature and its header, and the per-caller secrets.
//!
//! A receiver verifies an event with any Standard Webhooks library: it
//! recomputes `HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")`
//! with the key of its `whsec_…` secret and compares it, in constant time,
//! with each `v1,<base64>` entry of `webhook-signature`. Several entries,
//! space-separated, let a secret be rotated without a window in which the
//! receiver rejects events: the sender signs with the old and the new secret
//! until every receiver has the new one.
//!
//! # Per-caller secrets
//!
//! Jobline keeps one master secret, not one secret per caller: a caller's
//! secret is [`caller_secret`]`(master, owner)`, an HMAC-SHA256 of the
//! caller's identity (the job's owner) under the master key, so there is
//! nothing per caller to store, to back up or to leak, and rotating the
//! master rotates every caller's secret at once. HMAC is a pseudo-random
//! function: knowing its own secret (or any number of other callers'),
//! a caller learns nothing about the master key nor about another caller's
//! secret, so it cannot forge events that another caller's receiver would
//! accept. A secret shared by all callers would let any caller sign events
//! "from Jobline" to every other caller's receiver. The fixed label
//! `jobline-webhook-secret-v1\n` before the owner separates this use of the
//! master key from any other, and its version lets the derivation change
//! without ambiguity.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret written as text, as every Standard Webhooks
/// library expects it.
pub const SECRET_PREFIX: &str = "whsec_";

/// The fewest key bytes the specification allows (192 bits).
pub const MIN_SECRET_BYTES: usize = 24;

/// The most key bytes the specification allows.
pub const MAX_SECRET_BYTES: usize = 64;

/// What [`caller_secret`] signs before the owner: the purpose and version
/// of the derivation.
const CALLER_SECRET_LABEL: &[u8] = b"jobline-webhook-secret-v1\n";

type HmacSha256 = Hmac<Sha256>;

/// The key a receiver verifies events with. Written as text it is
/// `whsec_` followed by the base64 (standard alphabet, padded) of the key
/// bytes; its `Debug` shows only the length, never the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with {SECRET_PREFIX}")]
    MissingPrefix,
    #[error("a webhook secret is {SECRET_PREFIX} followed by standard base64")]
    NotBase64,
    #[error("a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} key bytes, not {0}")]
    Length(usize),
}

impl WebhookSecret {
    /// A secret of these key bytes, 24 to 64 of them.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let key = key.into();
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self { key })
    }

    /// Reads a `whsec_<base64>` secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(key)
    }

    /// The secret as a receiver configures it: `whsec_<base64>`. This is the
    /// key itself: show it only to the caller it belongs to.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, SecretError> {
        Self::parse(text)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({} bytes, redacted)", self.key.len())
    }
}

/// The `v1` signature of one event: `v1,<base64 of HMAC-SHA256(key,
/// "{id}.{timestamp_secs}.{body}")>`. `id` is the event's `webhook-id`
/// (the same on every retry of one event, so receivers can drop duplicates)
/// and should hold no `.`; `timestamp_secs` is the `webhook-timestamp` of
/// this attempt, in Unix seconds; `body` is the exact bytes sent.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one `v1` signature per secret, in the
/// order given, separated by spaces. During a rotation pass the old and the
/// new secret, and a receiver with either accepts the event. With no secret
/// the header is empty, which every receiver rejects.
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp_secs: u64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The secret of the caller `owner`: HMAC-SHA256(master,
/// `"jobline-webhook-secret-v1\n" + owner`), 32 bytes. See the module's
/// documentation for why one caller cannot forge another's events with it.
/// The master key should have at least 32 random bytes.
pub fn caller_secret(master: &[u8], owner: &str) -> WebhookSecret {
    let mut mac =
        HmacSha256::new_from_slice(master).expect("HMAC-SHA256 takes a key of any length");
    mac.update(CALLER_SECRET_LABEL);
    mac.update(owner.as_bytes());
    WebhookSecret {
        key: mac.finalize().into_bytes().to_vec(),
    }
}

/// The three Standard Webhooks headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id`: the event's id, the same on every attempt.
    pub id: String,
    /// `webhook-timestamp`: when this attempt was signed, in Unix seconds.
    pub timestamp: u64,
    /// `webhook-signature`: see [`signature_header`].
    pub signature: String,
}

impl WebhookHeaders {
    /// Signs `body` for one attempt with each of `secrets` (see
    /// [`signature_header`]).
    pub fn signed(secrets: &[WebhookSecret], id: &str, timestamp_secs: u64, body: &[u8]) -> Self {
        Self {
            id: id.to_owned(),
            timestamp: timestamp_secs,
            signature: signature_header(secrets, id, timestamp_secs, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks test vector, as the reference libraries' tests
    // and the specification's examples have it.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: u64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn vector_secret() -> WebhookSecret {
        WebhookSecret::parse(VECTOR_SECRET).unwrap()
    }

    #[test]
    fn webhook_signature_matches_the_specification_test_vector() {
        let signature = sign(&vector_secret(), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        assert_eq!(signature, VECTOR_SIGNATURE);
    }

    #[test]
    fn webhook_secret_round_trips_through_its_text_form() {
        let secret = vector_secret();
        assert_eq!(secret.as_bytes().len(), 24);
        assert_eq!(secret.to_whsec(), VECTOR_SECRET);
        let parsed: WebhookSecret = VECTOR_SECRET.parse().unwrap();
        assert_eq!(parsed.as_bytes(), secret.as_bytes());
    }

    #[test]
    fn webhook_secret_refuses_malformed_text_and_lengths() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            SecretError::NotBase64
        );
        // 23 bytes, one short.
        let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        assert_eq!(
            WebhookSecret::parse(&short).unwrap_err(),
            SecretError::Length(23)
        );
        assert_eq!(
            WebhookSecret::from_bytes(vec![0u8; 65]).unwrap_err(),
            SecretError::Length(65)
        );
        assert!(WebhookSecret::from_bytes(vec![0u8; 64]).is_ok());
        assert!(WebhookSecret::parse("whsec_").is_err());
    }

    #[test]
    fn webhook_secret_debug_hides_the_key() {
        let secret = vector_secret();
        let shown = format!("{secret:?} {:?}", std::slice::from_ref(&secret));
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(shown.contains("24 bytes, redacted"), "{shown}");
        let key_bytes = format!("{:?}", secret.as_bytes());
        assert!(!shown.contains(&key_bytes));
    }

    #[test]
    fn webhook_signature_header_carries_one_signature_per_secret_for_rotation() {
        let old = vector_secret();
        let new = WebhookSecret::from_bytes([42u8; 32]).unwrap();
        let header = signature_header(
            &[old.clone(), new.clone()],
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
        );
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            entries,
            [
                VECTOR_SIGNATURE.to_owned(),
                sign(&new, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
            ]
        );
        assert_eq!(
            signature_header(&[old], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        assert_eq!(
            signature_header(&[], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            ""
        );
    }

    #[test]
    fn webhook_signature_covers_the_id_the_timestamp_and_every_body_byte() {
        let secret = vector_secret();
        let base = sign(&secret, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        assert_ne!(
            base,
            sign(&secret, "msg_other", VECTOR_TIMESTAMP, VECTOR_BODY)
        );
        assert_ne!(
            base,
            sign(&secret, VECTOR_ID, VECTOR_TIMESTAMP + 1, VECTOR_BODY)
        );
        assert_ne!(
            base,
            sign(
                &secret,
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                br#"{"test": 2432232315}"#
            )
        );
        let other = WebhookSecret::from_bytes([1u8; 24]).unwrap();
        assert_ne!(base, sign(&other, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY));
    }

    #[test]
    fn webhook_headers_hold_the_signed_attempt() {
        let headers =
            WebhookHeaders::signed(&[vector_secret()], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        assert_eq!(
            headers,
            WebhookHeaders {
                id: VECTOR_ID.to_owned(),
                timestamp: VECTOR_TIMESTAMP,
                signature: VECTOR_SIGNATURE.to_owned(),
            }
        );
    }

    #[test]
    fn webhook_caller_secret_is_the_hmac_of_the_labelled_owner() {
        let master = [9u8; 32];
        let alice = caller_secret(&master, "alice");
        // Computed independently: HMAC-SHA256(master, label + owner).
        let mut mac = HmacSha256::new_from_slice(&master).unwrap();
        mac.update(b"jobline-webhook-secret-v1\nalice");
        assert_eq!(alice.as_bytes(), &mac.finalize().into_bytes()[..]);
        assert_eq!(alice.as_bytes().len(), 32);
        // Stable, and a valid secret once written out.
        assert_eq!(caller_secret(&master, "alice").as_bytes(), alice.as_bytes());
        let reparsed = WebhookSecret::parse(&alice.to_whsec()).unwrap();
        assert_eq!(reparsed.as_bytes(), alice.as_bytes());
    }

    #[test]
    fn webhook_caller_secrets_differ_per_owner_and_per_master() {
        let master = [9u8; 32];
        let alice = caller_secret(&master, "alice");
        let bob = caller_secret(&master, "bob");
        assert_ne!(alice.as_bytes(), bob.as_bytes());
        assert_ne!(
            alice.as_bytes(),
            caller_secret(&[8u8; 32], "alice").as_bytes()
        );
        // Alice's signature does not verify under Bob's secret.
        let body = br#"{"job":"1"}"#;
        assert_ne!(
            sign(&alice, "msg_1", VECTOR_TIMESTAMP, body),
            sign(&bob, "msg_1", VECTOR_TIMESTAMP, body)
        );
        // The owner is the whole rest of the input: no owner is a prefix
        // trick away from another.
        assert_ne!(
            caller_secret(&master, "alice").as_bytes(),
            caller_secret(&master, "alice\n").as_bytes()
        );
    }
}
