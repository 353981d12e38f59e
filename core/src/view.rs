//! A job as its client sees it, in JSON: what `GET /jobs/{id}` answers, a
//! page of `GET /jobs` lists, and a webhook event carries. One place, so
//! the three cannot drift (the OpenAPI document's `Job` schema is checked
//! against the API's answers).

use crate::job::{DeliveryState, JobRecord, format_ms};
use serde_json::{Value, json};

/// A job at `now_ms` (its `status` is [`JobRecord::state_at`] it) with its
/// inline result (`null` when there is none or it is stored apart; the API
/// adds the link).
pub fn job_view(job: &JobRecord, now_ms: i64) -> Value {
    let mut view = job_summary(job, now_ms);
    view["result"] = json!(job.result);
    view
}

/// A job without its result, which may be 100 KiB (a page of them would
/// pass Lambda's 6 MB response limit).
pub fn job_summary(job: &JobRecord, now_ms: i64) -> Value {
    json!({
        "jobId": job.id,
        "type": job.job_type,
        "status": job.state_at(now_ms),
        "createdAt": format_ms(job.created_at),
        "startedAt": job.started_at.map(format_ms),
        "runStartedAt": job.run_started_at.map(format_ms),
        "finishedAt": job.finished_at.map(format_ms),
        "attempts": job.attempts,
        "error": job.error,
        "deadLettered": job.dead_lettered,
        "discarded": job.discarded,
        "replays": job.replays,
        "progress": job.progress.as_ref().map(|progress| json!({
            "fraction": progress.fraction,
            "message": progress.message,
            "updatedAt": format_ms(progress.at_ms),
        })),
        "cancelRequested": job.cancel_requested,
        "checkpointAt": job.checkpoint_at.map(format_ms),
        "continuations": job.continuations,
        "callbackUrl": job.callback_url,
        "webhook": webhook_view(job),
        "runAt": job.run_at.map(format_ms),
        "scheduleId": job.schedule_id,
    })
}

/// The webhook delivery of the job's current final state: `null` without a
/// callback URL; `pending` with no attempt yet while the job runs or its
/// event waits; else what the notifier last recorded. A delivery recorded
/// for an earlier final state (before a replay) does not count.
pub fn webhook_view(job: &JobRecord) -> Value {
    if job.callback_url.is_none() {
        return Value::Null;
    }
    let current = job.current_delivery();
    match current {
        None => json!({
            "state": DeliveryState::Pending.as_str(),
            "attempts": 0,
            "lastStatus": null,
            "updatedAt": null,
        }),
        Some(delivery) => json!({
            "state": delivery.state.as_str(),
            "attempts": delivery.attempts,
            "lastStatus": delivery.last_status,
            "updatedAt": format_ms(delivery.at_ms),
        }),
    }
}
