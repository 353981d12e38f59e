//! Reading a schedule request (`POST /schedules`' whole definition,
//! `PATCH /schedules/{id}`'s changes) and showing a schedule.
//!
//! A definition is checked whole before anything is written: the
//! expression and its time zone by `jobline_schedule::Recurrence` (the one
//! parser that the local firer and `GET`'s next fires also use, so what is
//! accepted here is what fires), the job type and payload as `POST /jobs`
//! checks them, and the payload within [`SCHEDULE_PAYLOAD_BYTES`], since each
//! fire rewrites the schedule's item. Each error names the field to fix.

use crate::ApiError;
use crate::submission::valid_job_type;
use jobline_core::JobTypes;
use jobline_core::job::format_ms;
use jobline_core::schedule::{Overlap, SCHEDULE_PAYLOAD_BYTES, ScheduleRecord, ScheduleSpec};
use jobline_schedule::Recurrence;
use jobline_webhooks::{CallbackPolicy, CallbackUrl};
use serde_json::{Map, Value, json};

/// The fields a schedule request may carry.
const FIELDS: [&str; 6] = [
    "expression",
    "timezone",
    "type",
    "payload",
    "callbackUrl",
    "overlap",
];

/// What `PATCH` changes: each field present replaces the schedule's.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SchedulePatch {
    pub expression: Option<String>,
    pub timezone: Option<String>,
    pub payload: Option<Value>,
    /// `Some(None)`: `callbackUrl: null` removes it.
    pub callback_url: Option<Option<String>>,
    pub overlap: Option<Overlap>,
}

impl SchedulePatch {
    /// `spec` with this patch applied, and whether its timing changed.
    pub fn apply(&self, spec: &ScheduleSpec) -> (ScheduleSpec, bool) {
        let mut next = spec.clone();
        if let Some(expression) = &self.expression {
            next.expression.clone_from(expression);
        }
        if let Some(timezone) = &self.timezone {
            next.timezone.clone_from(timezone);
        }
        if let Some(payload) = &self.payload {
            next.payload = payload.clone();
        }
        if let Some(url) = &self.callback_url {
            next.callback_url.clone_from(url);
        }
        if let Some(overlap) = self.overlap {
            next.overlap = overlap;
        }
        let retimed = next.expression != spec.expression || next.timezone != spec.timezone;
        (next, retimed)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidSchedule {
        field,
        message: message.into(),
    }
}

/// The body as a JSON object of known fields.
fn fields(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.len() > SCHEDULE_PAYLOAD_BYTES * 2 {
        return Err(ApiError::BodyTooLarge {
            limit: SCHEDULE_PAYLOAD_BYTES * 2,
            size: body.len(),
        });
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let Value::Object(fields) = json else {
        return Err(ApiError::InvalidRequest(
            "a schedule request is a JSON object".to_owned(),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::InvalidRequest(format!(
            "unknown field `{unknown}`: a schedule has {}",
            FIELDS.map(|f| format!("`{f}`")).join(", ")
        )));
    }
    Ok(fields)
}

fn string(fields: &mut Map<String, Value>, name: &'static str) -> Result<Option<String>, ApiError> {
    match fields.remove(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(name, format!("`{name}` must be a string"))),
    }
}

fn payload(fields: &mut Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match fields.remove("payload") {
        None => Ok(None),
        Some(payload @ Value::Object(_)) => Ok(Some(payload)),
        Some(_) => Err(invalid("payload", "`payload` must be a JSON object")),
    }
}

fn overlap(fields: &mut Map<String, Value>) -> Result<Option<Overlap>, ApiError> {
    string(fields, "overlap")?
        .map(|text| text.parse().map_err(|e: String| invalid("overlap", e)))
        .transpose()
}

fn callback_url(
    fields: &mut Map<String, Value>,
    callbacks: Option<CallbackPolicy>,
) -> Result<Option<Option<String>>, ApiError> {
    match fields.remove("callbackUrl") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(url)) => {
            let policy = callbacks.ok_or(ApiError::WebhooksDisabled)?;
            CallbackUrl::parse(&url, policy)
                .map_err(|e| ApiError::InvalidCallbackUrl(e.to_string()))?;
            Ok(Some(Some(url)))
        }
        Some(_) => Err(invalid("callbackUrl", "`callbackUrl` must be a string")),
    }
}

/// `POST /schedules`' body: `expression` and `type` required, `timezone`
/// (default `UTC`), `payload` (default `{}`), `callbackUrl`, `overlap`
/// (default `allow`).
pub fn schedule_spec(
    body: &[u8],
    callbacks: Option<CallbackPolicy>,
) -> Result<ScheduleSpec, ApiError> {
    let mut fields = fields(body)?;
    let expression = string(&mut fields, "expression")?
        .ok_or_else(|| invalid("expression", "`expression` is required: cron(…) or rate(…)"))?;
    let job_type = string(&mut fields, "type")?
        .ok_or_else(|| invalid("type", "`type` is required: the job type each fire runs"))?;
    Ok(ScheduleSpec {
        expression,
        timezone: string(&mut fields, "timezone")?.unwrap_or_else(|| "UTC".to_owned()),
        job_type,
        payload: payload(&mut fields)?.unwrap_or_else(|| json!({})),
        callback_url: callback_url(&mut fields, callbacks)?.flatten(),
        overlap: overlap(&mut fields)?.unwrap_or_default(),
    })
}

/// `PATCH /schedules/{id}`'s body: any of `expression`, `timezone`,
/// `payload`, `callbackUrl`, `overlap` (not `type`: a schedule runs one type).
pub fn schedule_patch(
    body: &[u8],
    callbacks: Option<CallbackPolicy>,
) -> Result<SchedulePatch, ApiError> {
    let mut fields = fields(body)?;
    if fields.contains_key("type") {
        return Err(invalid(
            "type",
            "a schedule's `type` cannot change: create a new schedule",
        ));
    }
    Ok(SchedulePatch {
        expression: string(&mut fields, "expression")?,
        timezone: string(&mut fields, "timezone")?,
        payload: payload(&mut fields)?,
        callback_url: callback_url(&mut fields, callbacks)?,
        overlap: overlap(&mut fields)?,
    })
}

/// Checks `spec` whole: its timing, its job type and its payload.
pub fn check_spec(spec: &ScheduleSpec, job_types: &JobTypes) -> Result<Recurrence, ApiError> {
    let recurrence = Recurrence::parse(&spec.expression, &spec.timezone)
        .map_err(|e| invalid(e.field(), e.to_string()))?;
    if !valid_job_type(&spec.job_type) {
        return Err(invalid(
            "type",
            "`type` must be 1 to 64 characters from A-Z, a-z, 0-9, `.`, `_` and `-`",
        ));
    }
    let handler = job_types
        .get(&spec.job_type)
        .ok_or_else(|| ApiError::UnknownJobType {
            job_type: spec.job_type.clone(),
            known: job_types.names().map(str::to_owned).collect(),
        })?;
    let size = spec.payload.to_string().len();
    if size > SCHEDULE_PAYLOAD_BYTES {
        return Err(invalid(
            "payload",
            format!(
                "the payload is {size} bytes; a schedule's is at most {SCHEDULE_PAYLOAD_BYTES} \
                 (each fire rewrites the schedule): put larger input in storage and name it"
            ),
        ));
    }
    handler
        .validate(&spec.payload)
        .map_err(ApiError::InvalidPayload)?;
    Ok(recurrence)
}

/// How many next fires a schedule's view shows.
pub const NEXT_FIRES: usize = 5;

/// A schedule as its caller sees it at `now_ms`: its definition (the
/// expression as written and in words), whether it is paused, its next
/// five fires (none while paused), and what its fires did.
pub fn schedule_view(schedule: &ScheduleRecord, now_ms: i64, base: &str) -> Value {
    let recurrence = Recurrence::parse(&schedule.spec.expression, &schedule.spec.timezone).ok();
    let next: Vec<String> = match (&recurrence, schedule.paused) {
        (Some(recurrence), false) => recurrence
            .next_fires(
                (now_ms - 1).max(schedule.active_from - 1),
                schedule.active_from,
                NEXT_FIRES,
            )
            .into_iter()
            .map(format_ms)
            .collect(),
        _ => Vec::new(),
    };
    let counts = &schedule.counts;
    json!({
        "scheduleId": schedule.id.to_string(),
        "expression": schedule.spec.expression,
        "timezone": schedule.spec.timezone,
        "description": recurrence.as_ref().map_or_else(|| schedule.spec.expression.clone(), Recurrence::describe),
        "type": schedule.spec.job_type,
        "payload": schedule.spec.payload,
        "callbackUrl": schedule.spec.callback_url,
        "overlap": schedule.spec.overlap.as_str(),
        "paused": schedule.paused,
        "createdAt": format_ms(schedule.created_at),
        "updatedAt": format_ms(schedule.updated_at),
        "nextFires": next,
        "lastFire": schedule.last_fire.map(|fire| json!({
            "scheduledAt": format_ms(fire.scheduled_at),
            "jobId": fire.job_id,
            "statusUrl": format!("{base}/jobs/{}", fire.job_id),
        })),
        "fires": {
            "fired": counts.fired,
            "skipped": counts.skipped,
            "refused": counts.refused,
            "lastMissedAt": counts.last_missed_at.map(format_ms),
            "lastRefusal": counts.last_refusal,
        },
        "jobsUrl": format!("{base}/jobs?scheduleId={}", schedule.id),
    })
}
