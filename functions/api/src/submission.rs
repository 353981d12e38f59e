//! Reading a `POST /jobs` request: its body as a job request, its
//! `Idempotency-Key`, and whether the job it makes fits its item.
//!
//! Sizes are checked twice, because DynamoDB refuses an item over 400 KB
//! with an error no retry cures, and a job's item must also leave room for
//! its result (the budgets of [`jobline_dynamodb::item`]): the body
//! before it is parsed ([`MAX_BODY_BYTES`]), then what will be stored
//! ([`check_sizes`]). The two differ: the payload is stored as `serde_json`
//! writes it, which can be longer than what was sent (`1E15`, 4 bytes, is
//! stored as `1000000000000000.0`, 18), and the item adds the caller's
//! identity and the fixed attributes.
//!
//! A job's `type` is a name from a small alphabet, at most
//! [`MAX_JOB_TYPE_BYTES`] ([`valid_job_type`]): it is stored on the item,
//! named in logs and metrics (a dimension), and an unknown one is named back
//! in the error, so an unbounded or arbitrary one would reach all of them.
//! A type outside the rule is `invalid_request` with a fixed message that
//! does not repeat it.
//!
//! The body is checked by hand rather than by a derived `Deserialize`:
//! serde accepts a JSON array as a struct (`["primes", {…}]` would be a
//! job) and names Rust types in its errors, while clients need messages
//! about the fields they sent.

use crate::ApiError;
use jobline_core::limits::FIXED_BUDGET_BYTES;
use jobline_core::limits::PAYLOAD_BUDGET_BYTES;
use jobline_core::limits::TRACE_CONTEXT_BUDGET_BYTES;
use jobline_core::limits::WEBHOOK_BUDGET_BYTES;
use jobline_core::{JobRecord, JobRequest};
use jobline_dynamodb::item::{item_from_record, item_size};
use jobline_webhooks::{CallbackPolicy, CallbackUrl};
use lambda_http::Request;
use serde_json::{Map, Value};

/// The largest request body read, 256 KiB (the payload's budget): a bound
/// on the work of parsing. What is stored is checked after (`check_sizes`).
pub const MAX_BODY_BYTES: usize = PAYLOAD_BUDGET_BYTES;

/// The largest item a new job may have: its payload, the fixed-size
/// attributes, the callback URL and the trace context. The rest of
/// DynamoDB's 400 KB is for what later writes add (the result, the error,
/// the delivery state) and for attributes to come.
pub const MAX_NEW_JOB_BYTES: usize =
    PAYLOAD_BUDGET_BYTES + FIXED_BUDGET_BYTES + WEBHOOK_BUDGET_BYTES + TRACE_CONTEXT_BUDGET_BYTES;

/// The longest job `type` accepted, in bytes.
pub const MAX_JOB_TYPE_BYTES: usize = 64;

/// What a `type` that breaks [`valid_job_type`] is told.
const INVALID_JOB_TYPE: &str =
    "`type` must be 1 to 64 characters from A-Z, a-z, 0-9, `.`, `_` and `-`";

/// Whether `job_type` can name a job type: 1 to [`MAX_JOB_TYPE_BYTES`]
/// characters from `[A-Za-z0-9._-]`.
pub fn valid_job_type(job_type: &str) -> bool {
    (1..=MAX_JOB_TYPE_BYTES).contains(&job_type.len())
        && job_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The furthest ahead a job may be delayed: a year (`runAt`,
/// `delaySeconds`), as far as EventBridge Scheduler's one-time schedules
/// are meant to reach for a job system's delays.
pub const MAX_DELAY_SECS: u32 = 365 * 86_400;

/// When a submission asks its job to run, if not at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `runAt`: at this time (ms since the epoch).
    At(i64),
    /// `delaySeconds`: this long after its acceptance.
    After(u32),
}

impl When {
    /// When the job runs, accepted at `now_ms`: a time past is now.
    pub fn run_at(self, now_ms: i64) -> i64 {
        match self {
            Self::At(at) => at.max(now_ms),
            Self::After(secs) => now_ms + i64::from(secs) * 1000,
        }
    }

    /// Reads `runAt` (RFC 3339 with an offset) or `delaySeconds` (a whole
    /// number of seconds), at most [`MAX_DELAY_SECS`] ahead of `now_ms`.
    fn read(
        run_at: Option<Value>,
        delay: Option<Value>,
        now_ms: i64,
    ) -> Result<Option<Self>, ApiError> {
        let given = |value: Option<Value>| value.filter(|value| !value.is_null());
        match (given(run_at), given(delay)) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(invalid("send `runAt` or `delaySeconds`, not both")),
            (Some(Value::String(text)), None) => {
                let at = text
                    .parse::<jiff::Timestamp>()
                    .map_err(|_| {
                        invalid(
                            "`runAt` must be an RFC 3339 time with an offset, such as \
                             2027-03-01T09:00:00+01:00 or 2027-03-01T08:00:00Z",
                        )
                    })?
                    .as_millisecond();
                if at > now_ms + i64::from(MAX_DELAY_SECS) * 1000 {
                    return Err(invalid("`runAt` must be at most one year ahead"));
                }
                Ok(Some(Self::At(at)))
            }
            (Some(_), None) => Err(invalid("`runAt` must be a string (RFC 3339)")),
            (None, Some(delay)) => delay
                .as_u64()
                .and_then(|secs| u32::try_from(secs).ok())
                .filter(|secs| *secs <= MAX_DELAY_SECS)
                .map(|secs| Some(Self::After(secs)))
                .ok_or_else(|| {
                    invalid(&format!(
                        "`delaySeconds` must be a whole number of seconds from 0 to {MAX_DELAY_SECS} \
                         (one year)"
                    ))
                }),
        }
    }
}

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The body as a job request: a JSON object with a string `type` (see
/// [`valid_job_type`]), an
/// optional object `payload` (default `{}`), an optional string
/// `callbackUrl`, and optionally when to run it ([`When`]: `runAt` or
/// `delaySeconds`, read at `now_ms`), and nothing else. It is read as JSON whatever its
/// `Content-Type`: `curl -d` sends form-urlencoded by default, and nothing
/// else is accepted anyway. A callback URL must pass `callbacks`, the
/// deployment's policy; with none (webhooks off) it is refused.
pub fn job_request(
    body: &[u8],
    callbacks: Option<CallbackPolicy>,
    now_ms: i64,
) -> Result<(JobRequest, Option<When>), ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
            size: body.len(),
        });
    }
    let json: Value = serde_json::from_slice(body).map_err(unparsable)?;
    let Value::Object(mut fields) = json else {
        return Err(invalid(
            "a job request is a JSON object with `type` and `payload`",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| {
        !matches!(
            k.as_str(),
            "type" | "payload" | "callbackUrl" | "runAt" | "delaySeconds"
        )
    }) {
        return Err(invalid(&format!(
            "unknown field `{unknown}`: a job request has `type`, `payload`, `callbackUrl`, \
             `runAt` and `delaySeconds`"
        )));
    }
    let when = When::read(
        fields.remove("runAt"),
        fields.remove("delaySeconds"),
        now_ms,
    )?;
    let Some(Value::String(job_type)) = fields.remove("type") else {
        return Err(invalid("`type` is required and must be a string"));
    };
    if !valid_job_type(&job_type) {
        return Err(invalid(INVALID_JOB_TYPE));
    }
    let payload = match fields.remove("payload") {
        None => Value::Object(Map::new()),
        Some(payload @ Value::Object(_)) => payload,
        Some(_) => return Err(invalid("`payload` must be a JSON object")),
    };
    let callback_url = match fields.remove("callbackUrl") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => {
            let policy = callbacks.ok_or(ApiError::WebhooksDisabled)?;
            CallbackUrl::parse(&url, policy)
                .map_err(|e| ApiError::InvalidCallbackUrl(e.to_string()))?;
            Some(url)
        }
        Some(_) => return Err(invalid("`callbackUrl` must be a string")),
    };
    Ok((
        JobRequest {
            job_type,
            payload,
            callback_url,
        },
        when,
    ))
}

fn invalid(message: &str) -> ApiError {
    ApiError::InvalidRequest(message.to_owned())
}

/// Why `serde_json` could not read the body. A number beyond a 64-bit
/// float's range (`1E400`) is valid JSON that cannot be stored, not a syntax
/// error; `serde_json` tells it apart only by its message.
fn unparsable(error: serde_json::Error) -> ApiError {
    let message = error.to_string();
    if message.starts_with("number out of range") {
        return invalid(&format!(
            "a number at line {} column {} is out of range: numbers must fit a 64-bit float \
             (at most about 1.8e308 in magnitude)",
            error.line(),
            error.column()
        ));
    }
    ApiError::InvalidJson(message)
}

/// Checks that `job`, about to be created, fits its budgets: its payload as
/// [`item_from_record`] writes it within [`PAYLOAD_BUDGET_BYTES`], and its
/// whole item within [`MAX_NEW_JOB_BYTES`].
pub fn check_sizes(job: &JobRecord) -> Result<(), ApiError> {
    let payload = job.payload.to_string().len();
    if payload > PAYLOAD_BUDGET_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: PAYLOAD_BUDGET_BYTES,
            size: payload,
        });
    }
    let item = item_size(&item_from_record(job));
    if item > MAX_NEW_JOB_BYTES {
        return Err(ApiError::JobTooLarge {
            limit: MAX_NEW_JOB_BYTES,
            size: item,
        });
    }
    Ok(())
}

/// The `Idempotency-Key` header, if any: exactly one, of 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII characters and no comma (API
/// Gateway joins repeated headers with commas, so a comma may hide two keys).
pub fn idempotency_key(request: &Request) -> Result<Option<&str>, ApiError> {
    let mut values = request.headers().get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidIdempotencyKey);
    }
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        .ok_or(ApiError::InvalidIdempotencyKey)?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;
    use serde_json::json;

    /// The request of a body read at the epoch, without its time.
    fn request_of(body: &[u8], callbacks: Option<CallbackPolicy>) -> Result<JobRequest, ApiError> {
        job_request(body, callbacks, 0).map(|(request, _)| request)
    }

    #[test]
    fn a_job_runs_later_at_a_time_or_after_a_delay_within_a_year() {
        let now = 1_800_000_000_000;
        let when = |body: &str| job_request(body.as_bytes(), None, now).map(|(_, when)| when);
        assert_eq!(when(r#"{"type":"t"}"#).unwrap(), None);
        assert_eq!(
            when(r#"{"type":"t","delaySeconds":90}"#).unwrap(),
            Some(When::After(90))
        );
        let at = when(r#"{"type":"t","runAt":"2027-03-01T09:00:00+01:00"}"#).unwrap();
        assert_eq!(at, Some(When::At(1_803_888_000_000)));
        assert_eq!(When::At(5).run_at(now), now, "a time past is now");
        assert_eq!(When::After(2).run_at(now), now + 2_000);
        for (body, says) in [
            (r#"{"type":"t","runAt":"2027-03-01 09:00"}"#, "RFC 3339"),
            (r#"{"type":"t","runAt":"2027-03-01T09:00:00"}"#, "RFC 3339"),
            (r#"{"type":"t","runAt":5}"#, "must be a string"),
            (r#"{"type":"t","runAt":"2099-01-01T00:00:00Z"}"#, "one year"),
            (r#"{"type":"t","delaySeconds":-1}"#, "delaySeconds"),
            (r#"{"type":"t","delaySeconds":1.5}"#, "delaySeconds"),
            (r#"{"type":"t","delaySeconds":31536001}"#, "one year"),
            (
                r#"{"type":"t","delaySeconds":1,"runAt":"2027-03-01T09:00:00Z"}"#,
                "not both",
            ),
        ] {
            match when(body) {
                Err(ApiError::InvalidRequest(message)) => {
                    assert!(message.contains(says), "{body}: {message}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    fn message(body: &str) -> String {
        match request_of(body.as_bytes(), None) {
            Err(ApiError::InvalidRequest(message)) => message,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn only_an_object_with_type_and_payload_is_a_request_of() {
        assert_eq!(
            request_of(br#"{"type":"primes","payload":{"upTo":5}}"#, None).unwrap(),
            JobRequest {
                job_type: "primes".into(),
                payload: json!({"upTo": 5}),
                callback_url: None,
            }
        );
        assert_eq!(
            request_of(br#"{"type":"primes"}"#, None).unwrap().payload,
            json!({})
        );
        for body in [
            r#"["primes", {"upTo": 5}]"#,
            "[]",
            "\"primes\"",
            "5",
            "null",
        ] {
            let text = message(body);
            assert!(text.contains("JSON object"), "{body}: {text}");
            assert!(!text.contains("struct"), "{body}: {text}");
        }
    }

    #[test]
    fn a_callback_url_must_pass_the_policy_and_webhooks_must_be_on() {
        let body = |url: &str| format!(r#"{{"type":"primes","callbackUrl":"{url}"}}"#);
        let public = CallbackPolicy::default();
        let sent = request_of(body("https://hooks.example.com/j").as_bytes(), Some(public));
        assert_eq!(
            sent.unwrap().callback_url.as_deref(),
            Some("https://hooks.example.com/j")
        );
        for url in [
            "http://hooks.example.com/j",
            "https://169.254.169.254/latest",
            "https://10.0.0.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://user:pw@hooks.example.com/",
            // The URL Standard's other spellings of an IPv4 address: a
            // browser, and the resolver, read them as 127.0.0.1 or the
            // metadata endpoint.
            "https://0x7f000001/",
            "https://127.0.0.0x1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0177.0.0.1/",
            "https://0x7f.1/",
            "https://0xa9fea9fe/latest",
            "http://0x7f000001/",
            // Numeric-looking, and no address: no host either.
            "https://1.2.3.4.5/",
            "https://example.0x1/",
        ] {
            let error = request_of(body(url).as_bytes(), Some(public)).unwrap_err();
            assert_eq!(error.code(), "invalid_callback_url", "{url}");
            assert_eq!(error.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        }
        let local = request_of(
            body("http://127.0.0.1:9/hook").as_bytes(),
            Some(CallbackPolicy::LOCAL),
        );
        assert!(local.is_ok(), "the local runner's explicit setting");
        let local = request_of(
            body("http://0x7f000001:9/hook").as_bytes(),
            Some(CallbackPolicy::LOCAL),
        );
        assert!(local.is_ok(), "127.0.0.1 in another spelling, locally");
        let other = request_of(
            body("http://0x7f000002:9/hook").as_bytes(),
            Some(CallbackPolicy::LOCAL),
        );
        assert_eq!(other.unwrap_err().code(), "invalid_callback_url");
        let off = request_of(body("https://hooks.example.com/j").as_bytes(), None);
        assert_eq!(off.unwrap_err().code(), "webhooks_disabled");
        let wrong = request_of(br#"{"type":"primes","callbackUrl":5}"#, Some(public));
        assert_eq!(wrong.unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn messages_name_the_field() {
        assert_eq!(
            message(r#"{"payload":{}}"#),
            "`type` is required and must be a string"
        );
        assert_eq!(
            message(r#"{"type":7}"#),
            "`type` is required and must be a string"
        );
        assert_eq!(
            message(r#"{"type":"primes","foo":1}"#),
            "unknown field `foo`: a job request has `type`, `payload`, `callbackUrl`, `runAt` and \
             `delaySeconds`"
        );
        assert_eq!(
            message(r#"{"type":"primes","payload":[1]}"#),
            "`payload` must be a JSON object"
        );
    }

    #[test]
    fn a_type_is_a_short_name_and_a_bad_one_is_not_repeated() {
        let body = |job_type: &str| format!(r#"{{"type":{}}}"#, json!(job_type));
        for job_type in ["primes", "csv-stats", "a", "Report_v2.1", &"t".repeat(64)] {
            let sent = request_of(body(job_type).as_bytes(), None).unwrap();
            assert_eq!(sent.job_type, job_type);
        }
        let long = "t".repeat(MAX_JOB_TYPE_BYTES + 1);
        let huge = "x".repeat(100_000);
        for job_type in [
            long.as_str(),
            huge.as_str(),
            "",
            "has space",
            "slash/type",
            "<script>",
            "é",
            "new\nline",
        ] {
            let error = request_of(body(job_type).as_bytes(), None).unwrap_err();
            assert_eq!(error.code(), "invalid_request", "{job_type:?}");
            assert_eq!(error.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                error.to_string(),
                "`type` must be 1 to 64 characters from A-Z, a-z, 0-9, `.`, `_` and `-`"
            );
        }
    }

    #[test]
    fn every_registered_type_name_is_a_valid_type() {
        let types = jobline_jobs::registry(true);
        let names: Vec<&str> = types.names().collect();
        assert!(
            names.contains(&"csv-stats") && names.contains(&"primes"),
            "{names:?}"
        );
        for name in names {
            assert!(valid_job_type(name), "{name}");
        }
    }

    #[test]
    fn a_number_beyond_a_float_is_a_clear_422_not_a_syntax_error() {
        let error = request_of(br#"{"type":"primes","payload":{"upTo":1E400}}"#, None).unwrap_err();
        assert_eq!(error.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code(), "invalid_request");
        let text = error.to_string();
        assert!(
            text.contains("out of range") && text.contains("line 1 column 40"),
            "{text}"
        );
        // Other unreadable bodies stay syntax errors.
        assert!(matches!(
            request_of(b"{\"type\":", None),
            Err(ApiError::InvalidJson(_))
        ));
    }

    fn new_job(owner: &str, request: &JobRequest) -> JobRecord {
        JobRecord::new_queued(jobline_core::JobId::random(), owner, request, 0, 30)
    }

    #[test]
    fn the_payload_is_measured_as_it_is_stored() {
        let sent = request_of(br#"{"type":"primes","payload":{"n":1E15}}"#, None).unwrap();
        assert_eq!(sent.payload.to_string(), r#"{"n":1000000000000000.0}"#);

        // 5 bytes a number sent, 19 stored: the body fits, the payload not.
        let numbers = vec!["1E15"; MAX_BODY_BYTES / 5 - 10].join(",");
        let body = format!(r#"{{"type":"primes","payload":{{"n":[{numbers}]}}}}"#);
        assert!(body.len() <= MAX_BODY_BYTES);
        let job = new_job("anonymous", &request_of(body.as_bytes(), None).unwrap());
        let error = check_sizes(&job).unwrap_err();
        let ApiError::PayloadTooLarge { limit, size } = error else {
            panic!("{error:?}");
        };
        assert_eq!(limit, PAYLOAD_BUDGET_BYTES);
        assert_eq!(size, job.payload.to_string().len());
        assert!(size > limit);
        assert_eq!(error.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error.code(), "payload_too_large");
        assert!(error.to_string().contains("the limit is 262144 bytes"));
    }

    #[test]
    fn the_whole_new_item_is_bounded_too() {
        // `{"p":"…"}`: exactly the payload budget.
        let full = JobRequest {
            job_type: "primes".into(),
            payload: json!({"p": "x".repeat(PAYLOAD_BUDGET_BYTES - 8)}),
            // The longest callback URL accepted.
            callback_url: Some(format!("https://hooks.example.com/{}", "p".repeat(2022))),
        };
        assert_eq!(full.payload.to_string().len(), PAYLOAD_BUDGET_BYTES);
        assert_eq!(full.callback_url.as_ref().unwrap().len(), 2048);
        let long_sub = format!("jwt:https://issuer.example.com|{}", "s".repeat(4096));
        let mut traced = new_job("anonymous", &full);
        traced.traceparent = Some(jobline_core::trace_context::TraceContext::new_root());
        check_sizes(&traced).expect("a full payload fits, with its trace context");
        let error = check_sizes(&new_job(&long_sub, &full)).unwrap_err();
        let ApiError::JobTooLarge { limit, size } = error else {
            panic!("{error:?}");
        };
        assert_eq!(limit, MAX_NEW_JOB_BYTES);
        assert!(size > limit, "{size}");
        assert_eq!(error.code(), "payload_too_large");
    }

    fn with_keys(keys: &[&str]) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/jobs");
        for key in keys {
            builder = builder.header("idempotency-key", *key);
        }
        builder.body(Body::Empty).unwrap()
    }

    #[test]
    fn one_idempotency_key_without_commas() {
        assert_eq!(idempotency_key(&with_keys(&[])).unwrap(), None);
        assert_eq!(
            idempotency_key(&with_keys(&["order-42"])).unwrap(),
            Some("order-42")
        );
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        for keys in [
            &["a", "b"][..],
            &["a,b"],
            &["has space"],
            &[""],
            &[long.as_str()],
        ] {
            assert!(
                matches!(
                    idempotency_key(&with_keys(keys)),
                    Err(ApiError::InvalidIdempotencyKey)
                ),
                "{keys:?}"
            );
        }
    }
}
