//! `ping`: the probe of `jobline smoke`, so registered in every deployment
//! (production included), and cheap and bounded whatever its payload. Its
//! payload is one of three:
//!
//! - `{"echo": <JSON of at most 1 KiB>}` → `{"echo": …, "at": "<RFC 3339 of
//!   the worker's clock>"}`: the round trip, API to worker to API;
//! - `{"bytes": N}`, 2 ≤ N ≤ 1 MiB → a JSON string whose JSON text is exactly
//!   N bytes: over the worker's `MAX_RESULT_BYTES` (100 KiB) it is stored in
//!   the results bucket and `GET /jobs/{id}` has a `resultUrl` to fetch it;
//! - `{"sleepMs": N}`, N ≤ 30,000 → `{"sleptMs": N}` after N milliseconds,
//!   reporting its progress each second; it stops (retryably, so a client's
//!   cancel ends it `cancelled`) as soon as its attempt is cancelled. Long
//!   enough to outlast one heartbeat (`HEARTBEAT_SECS`, 10 s by default),
//!   at which a running job learns of its cancel.

use async_trait::async_trait;
use jobline_core::Clock;
use jobline_core::job_types::{DEFAULT_PEAK_MEMORY_BYTES, JobContext, JobError, JobHandler};
use serde_json::{Value, json};
use std::time::Duration;

/// See the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Ping;

/// The largest `echo`, as JSON text.
pub const MAX_ECHO_BYTES: usize = 1024;

/// The smallest `bytes`: the two quotes of the empty string.
pub const MIN_BYTES: u64 = 2;

/// The largest `bytes`: past the 100 KiB kept inline, so the result goes to
/// the bucket, yet small enough to cost nothing.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The longest `sleepMs`: longer than the default heartbeat, so a cancel
/// reaches a running ping, and short enough that holding a worker for it is
/// harmless.
pub const MAX_SLEEP_MS: u64 = 30_000;

/// How the payload's shape is described when it has none of the fields.
const SHAPE: &str =
    "payload must have exactly one of echo (JSON), bytes (an integer) or sleepMs (an integer)";

/// What a payload asks for.
#[derive(Debug, Clone, PartialEq)]
enum Request {
    Echo(Value),
    Bytes(usize),
    Sleep(u64),
}

impl Request {
    /// The request of `payload`; the message names the field and its bound,
    /// never the value sent.
    fn parse(payload: &Value) -> Result<Self, String> {
        let object = payload
            .as_object()
            .ok_or_else(|| "payload must be a JSON object".to_owned())?;
        let mut fields = object.iter();
        let (Some((name, value)), None) = (fields.next(), fields.next()) else {
            return Err(SHAPE.to_owned());
        };
        match name.as_str() {
            "echo" => {
                if value.to_string().len() > MAX_ECHO_BYTES {
                    return Err(format!(
                        "payload.echo must be JSON of at most {MAX_ECHO_BYTES} bytes"
                    ));
                }
                Ok(Self::Echo(value.clone()))
            }
            "bytes" => value
                .as_u64()
                .filter(|n| (MIN_BYTES..=MAX_BYTES).contains(n))
                .and_then(|n| usize::try_from(n).ok())
                .map(Self::Bytes)
                .ok_or_else(|| {
                    format!("payload.bytes must be an integer from {MIN_BYTES} to {MAX_BYTES}")
                }),
            "sleepMs" => value
                .as_u64()
                .filter(|n| *n <= MAX_SLEEP_MS)
                .map(Self::Sleep)
                .ok_or_else(|| {
                    format!("payload.sleepMs must be an integer from 0 to {MAX_SLEEP_MS}")
                }),
            _ => Err(SHAPE.to_owned()),
        }
    }
}

/// A JSON string whose JSON text is exactly `bytes` long (at least 2: its
/// quotes).
fn filler(bytes: usize) -> Value {
    Value::String("x".repeat(bytes.saturating_sub(2)))
}

/// Sleeps `ms` milliseconds, a second at a time with progress after each,
/// or stops with a retryable error when the attempt is cancelled.
async fn sleep(ctx: &JobContext, ms: u64) -> Result<Value, JobError> {
    let mut slept = 0;
    while slept < ms {
        ctx.progress(
            slept as f64 / ms as f64,
            &format!("slept {slept} of {ms} ms"),
        );
        let step = (ms - slept).min(1_000);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(step)) => slept += step,
            () = ctx.cancelled() => {
                return Err(JobError::Retryable("stopped before the sleep ended".to_owned()));
            }
        }
    }
    Ok(json!({ "sleptMs": ms }))
}

#[async_trait]
impl JobHandler for Ping {
    fn name(&self) -> &str {
        "ping"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        Request::parse(payload).map(drop)
    }

    /// A `bytes` result is held three times at most: the string the handler
    /// returns, the JSON text the worker makes of it to measure and store it,
    /// and a copy on its way to DynamoDB or S3; an echo and a sleep hold a
    /// few KiB. Plus the runtime's share.
    fn peak_memory_bytes(&self) -> u64 {
        3 * MAX_BYTES + DEFAULT_PEAK_MEMORY_BYTES
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        match Request::parse(&payload).map_err(JobError::Permanent)? {
            Request::Echo(echo) => Ok(json!({
                "echo": echo,
                "at": jobline_core::job::format_ms(Clock::system().now_ms()),
            })),
            Request::Bytes(bytes) => Ok(filler(bytes)),
            Request::Sleep(ms) => sleep(ctx, ms).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_context;

    #[tokio::test]
    async fn an_echo_comes_back_with_the_workers_time() {
        let before = Clock::system().now_ms();
        let echo = json!({"hello": ["world", 1, null, {"nested": true}]});
        let out = Ping
            .run(&test_context(1), json!({ "echo": echo.clone() }))
            .await
            .unwrap();
        assert_eq!(out["echo"], echo);
        let at = out["at"].as_str().expect("at is a string");
        // RFC 3339 in UTC with milliseconds: 2026-11-29T17:09:54.123Z.
        assert_eq!((at.len(), &at[10..11], &at[23..]), (24, "T", "Z"), "{at}");
        assert!(at >= jobline_core::job::format_ms(before).as_str(), "{at}");
        assert_eq!(out.as_object().unwrap().len(), 2, "{out}");
    }

    #[tokio::test]
    async fn a_bytes_result_is_exactly_that_many_bytes_of_json() {
        for bytes in [MIN_BYTES, 3, 100 * 1024 + 1, 200_000, MAX_BYTES] {
            let out = Ping
                .run(&test_context(1), json!({ "bytes": bytes }))
                .await
                .unwrap();
            assert!(out.is_string());
            assert_eq!(out.to_string().len() as u64, bytes);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_sleeps_then_succeeds_with_progress() {
        let ctx = test_context(1);
        let started = tokio::time::Instant::now();
        let out = Ping.run(&ctx, json!({"sleepMs": 2_500})).await.unwrap();
        assert_eq!(out, json!({"sleptMs": 2_500}));
        assert_eq!(started.elapsed(), Duration::from_millis(2_500));
        let zero = Ping.run(&ctx, json!({"sleepMs": 0})).await.unwrap();
        assert_eq!(zero, json!({"sleptMs": 0}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_stops_when_cancelled() {
        let ctx = test_context(1);
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let out = Ping.run(&ctx, json!({"sleepMs": MAX_SLEEP_MS})).await;
        assert!(matches!(out, Err(JobError::Retryable(_))), "{out:?}");
        assert_eq!(started.elapsed(), Duration::from_millis(1_200));
    }

    #[test]
    fn validation_names_the_field_and_its_bound() {
        let accepted = [
            json!({"echo": null}),
            json!({"echo": "x".repeat(MAX_ECHO_BYTES - 2)}),
            json!({"bytes": MIN_BYTES}),
            json!({"bytes": MAX_BYTES}),
            json!({"sleepMs": 0}),
            json!({"sleepMs": MAX_SLEEP_MS}),
        ];
        for payload in accepted {
            assert_eq!(Ping.validate(&payload), Ok(()), "{payload}");
        }
        let refused = [
            (
                json!({"echo": "x".repeat(MAX_ECHO_BYTES - 1)}),
                "payload.echo",
                "1024 bytes",
            ),
            (json!({"bytes": 1}), "payload.bytes", "from 2 to 1048576"),
            (
                json!({"bytes": MAX_BYTES + 1}),
                "payload.bytes",
                "from 2 to 1048576",
            ),
            (json!({"bytes": "10"}), "payload.bytes", "from 2 to 1048576"),
            (
                json!({"sleepMs": MAX_SLEEP_MS + 1}),
                "payload.sleepMs",
                "0 to 30000",
            ),
            (json!({"sleepMs": 1.5}), "payload.sleepMs", "0 to 30000"),
            (json!({"sleepMs": -1}), "payload.sleepMs", "0 to 30000"),
            (json!({}), "exactly one of echo", "sleepMs"),
            (
                json!({"echo": 1, "bytes": 10}),
                "exactly one of echo",
                "sleepMs",
            ),
            (json!({"ping": 1}), "exactly one of echo", "sleepMs"),
            (json!([1]), "a JSON object", ""),
        ];
        for (payload, field, bound) in refused {
            let message = Ping.validate(&payload).unwrap_err();
            assert!(
                message.contains(field) && message.contains(bound),
                "{payload}: {message}"
            );
        }
    }

    #[tokio::test]
    async fn a_run_of_an_invalid_payload_fails_permanently() {
        let out = Ping.run(&test_context(1), json!({"bytes": 0})).await;
        assert!(matches!(out, Err(JobError::Permanent(_))), "{out:?}");
    }

    #[test]
    fn its_peak_holds_the_largest_result_three_times() {
        assert!(Ping.peak_memory_bytes() >= 3 * MAX_BYTES + DEFAULT_PEAK_MEMORY_BYTES);
        assert!(Ping.peak_memory_bytes() < 16 * 1024 * 1024, "cheap");
    }
}
