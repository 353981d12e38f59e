//! The receiving side of Jobline's webhooks: [`verify`] checks an event as
//! the [Standard Webhooks](https://www.standardwebhooks.com/) specification
//! says, and [`Event`] reads it.
//!
//! Jobline signs each event with the caller's secret (`whsec_<base64 key>`,
//! from [`Client::webhook_secret`](crate::Client::webhook_secret)):
//! `webhook-signature` holds `v1,<base64 of HMAC-SHA256(key,
//! "{webhook-id}.{webhook-timestamp}.{body}")>`, several of them separated
//! by spaces while a key is rotated. An event verifies when one of them
//! matches (compared in constant time) and its timestamp is within the
//! tolerance of now, either way, so a captured event cannot be replayed
//! later. Every attempt at one event has the same `webhook-id`: drop one
//! already seen.

use crate::types::Job;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tolerance the specification recommends: five minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The prefix of a secret as text.
const SECRET_PREFIX: &str = "whsec_";

/// The three headers of a webhook, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`: the event's id, the same on every attempt.
    pub id: &'a str,
    /// `webhook-timestamp`: when the attempt was signed, in Unix seconds.
    pub timestamp: &'a str,
    /// `webhook-signature`: `v1,<base64>` entries, space-separated.
    pub signature: &'a str,
}

impl<'a> WebhookHeaders<'a> {
    /// The three headers of a request's `headers`.
    pub fn from_headers(headers: &'a http::HeaderMap) -> Result<Self, WebhookError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or(WebhookError::MissingHeader(name))
        };
        Ok(Self {
            id: header("webhook-id")?,
            timestamp: header("webhook-timestamp")?,
            signature: header("webhook-signature")?,
        })
    }
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("the webhook has no readable {0} header")]
    MissingHeader(&'static str),
    #[error("the webhook secret is not whsec_ followed by standard base64")]
    InvalidSecret,
    #[error("the webhook-timestamp is not a whole number of seconds")]
    InvalidTimestamp,
    #[error("the webhook was signed {0} s ago, longer ago than the tolerance")]
    TooOld(u64),
    #[error("the webhook was signed {0} s ahead of now, more than the tolerance")]
    TooNew(u64),
    #[error("no signature of the webhook matches the secret")]
    NoMatchingSignature,
}

/// Checks that `body` with `headers` was signed with `secret` (`whsec_…`;
/// the bare base64 is taken too) no further than `tolerance` from `now`
/// ([`DEFAULT_TOLERANCE`] is the specification's). Verify the body exactly
/// as received, before parsing it.
///
/// ```no_run
/// use jobline_client::webhooks::{self, Event, WebhookHeaders};
/// use jobline_core::Clock;
/// # fn receive(secret: &str, headers: &http::HeaderMap, body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// let signed = WebhookHeaders::from_headers(headers)?;
/// webhooks::verify(secret, &signed, body, Clock::system().system_time(), webhooks::DEFAULT_TOLERANCE)?;
/// let event = Event::parse(body)?;
/// println!("{}: job {} is {}", event.event_type, event.data.job_id, event.data.status);
/// # Ok(()) }
/// ```
pub fn verify(
    secret: &str,
    headers: &WebhookHeaders<'_>,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
        .ok_or(WebhookError::InvalidSecret)?;
    let timestamp: u64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::InvalidTimestamp)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if now > timestamp && now - timestamp > tolerance.as_secs() {
        return Err(WebhookError::TooOld(now - timestamp));
    }
    if timestamp > now && timestamp - now > tolerance.as_secs() {
        return Err(WebhookError::TooNew(timestamp - now));
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key).expect("HMAC-SHA256 takes a key of any length");
    mac.update(headers.id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if matches {
        Ok(())
    } else {
        Err(WebhookError::NoMatchingSignature)
    }
}

/// A webhook event: `{"type": "job.<status>", "timestamp", "data": <the job>}`,
/// the job as `GET /jobs/{id}` shows it (without `webhook`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `job.succeeded`, `job.failed` or `job.cancelled`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the job reached its final state.
    pub timestamp: String,
    pub data: Job,
}

impl Event {
    /// Reads a verified event's body.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn check(signature: &str, timestamp: &str, now: u64) -> Result<(), WebhookError> {
        let headers = WebhookHeaders {
            id: ID,
            timestamp,
            signature,
        };
        verify(SECRET, &headers, BODY, at(now), DEFAULT_TOLERANCE)
    }

    #[test]
    fn the_specifications_vector_verifies() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(check(SIGNATURE, &ts, TIMESTAMP), Ok(()));
        assert_eq!(
            check(&format!("v1a,xyz {SIGNATURE}"), &ts, TIMESTAMP),
            Ok(())
        );
        let bare = WebhookHeaders {
            id: ID,
            timestamp: &ts,
            signature: SIGNATURE,
        };
        let without_prefix = SECRET.trim_start_matches("whsec_");
        assert_eq!(
            verify(
                without_prefix,
                &bare,
                BODY,
                at(TIMESTAMP),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn malformed_input_is_refused_with_the_reason() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            check(SIGNATURE, "soon", TIMESTAMP),
            Err(WebhookError::InvalidTimestamp)
        );
        assert_eq!(
            check("", &ts, TIMESTAMP),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            check("v1,!!!", &ts, TIMESTAMP),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            check(&SIGNATURE.replace("v1,", "v2,"), &ts, TIMESTAMP),
            Err(WebhookError::NoMatchingSignature)
        );
        let headers = WebhookHeaders {
            id: ID,
            timestamp: &ts,
            signature: SIGNATURE,
        };
        assert_eq!(
            verify(
                "whsec_not base64",
                &headers,
                BODY,
                at(TIMESTAMP),
                DEFAULT_TOLERANCE
            ),
            Err(WebhookError::InvalidSecret)
        );
        let mut map = http::HeaderMap::new();
        map.insert("webhook-id", ID.parse().unwrap());
        map.insert("webhook-timestamp", ts.parse().unwrap());
        assert_eq!(
            WebhookHeaders::from_headers(&map),
            Err(WebhookError::MissingHeader("webhook-signature"))
        );
        map.insert("webhook-signature", SIGNATURE.parse().unwrap());
        assert_eq!(WebhookHeaders::from_headers(&map), Ok(headers));
    }
}
