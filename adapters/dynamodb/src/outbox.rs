//! The outbox: the jobs table's DynamoDB Stream, read for the one change
//! every webhook follows, a job entering a final state.
//!
//! Every final state (succeeded, failed, dead-lettered, discarded, swept,
//! cancelled) is one conditional write of the job's item, whatever path made
//! it; the stream carries that write itself, old and new images
//! (`NEW_AND_OLD_IMAGES`), so no caller has to remember a second write that
//! could fail alone. [`announced`] says whether a stream record is such a
//! change for a job with a callback URL; the notifier turns each into a
//! message of its own queue. [`counted`] says how a record changes its
//! caller's count of unfinished jobs; the notifier writes that too.
//!
//! Deployed, Lambda reads the stream and invokes the notifier with its
//! records (a `FilterCriteria` drops most others before they cost an
//! invocation); locally, the local runner's `jobline_local::stream::StreamReader` reads it and builds the
//! same event, since moto serves the Streams API but triggers nothing.

use crate::item::KEY_ATTRIBUTE;
use jobline_core::job::{JobId, JobState};
use serde_json::Value;

/// The attributes of the item that [`announced`] reads, as the template's
/// `FilterCriteria` names them.
pub const STATE_ATTRIBUTE: &str = "state";
pub const CALLBACK_ATTRIBUTE: &str = "callbackUrl";
pub const ENQUEUE_FAILED_ATTRIBUTE: &str = "enqueueFailed";

/// The job whose webhook stream record `record` (one of a Lambda DynamoDB
/// Streams event's `Records`, DynamoDB JSON) calls for: a job with a
/// callback URL that has just entered a final state. A write to a job that
/// was already final (its delivery state, a discard of a failed job) and a
/// job whose submission failed (its client got an error, not a 202) call
/// for none.
pub fn announced(record: &Value) -> Option<JobId> {
    if !matches!(record["eventName"].as_str(), Some("MODIFY" | "INSERT")) {
        return None;
    }
    let images = &record["dynamodb"];
    let new = &images["NewImage"];
    let is_final = |image: &Value| {
        image[STATE_ATTRIBUTE]["S"]
            .as_str()
            .and_then(|state| state.parse::<JobState>().ok())
            .is_some_and(JobState::is_finished)
    };
    let called_back = new[CALLBACK_ATTRIBUTE]["S"].is_string();
    let enqueue_failed = new[ENQUEUE_FAILED_ATTRIBUTE]["BOOL"] == Value::Bool(true);
    if !is_final(new) || is_final(&images["OldImage"]) || !called_back || enqueue_failed {
        return None;
    }
    new[KEY_ATTRIBUTE]["S"].as_str()?.parse().ok()
}

/// How stream record `record` changes its caller's count of unfinished
/// jobs ([`CallerCounts`](jobline_core::caller::CallerCounts)), and whose
/// count it is: -1 when a job enters a final state (whatever path made it,
/// a failed submission's included: its admission was counted) or an
/// unfinished job's item is removed; +1 when a final job is replayed. A
/// write that keeps a job final, or unfinished, changes nothing.
pub fn counted(record: &Value) -> Option<(String, i64)> {
    let images = &record["dynamodb"];
    let state = |image: &Value| {
        image[STATE_ATTRIBUTE]["S"]
            .as_str()
            .and_then(|state| state.parse::<JobState>().ok())
    };
    let (old, new) = (state(&images["OldImage"]), state(&images["NewImage"]));
    let delta = match (record["eventName"].as_str()?, old, new) {
        ("INSERT" | "MODIFY", None, Some(new)) if new.is_finished() => -1,
        ("INSERT" | "MODIFY", Some(old), Some(new)) if !old.is_finished() && new.is_finished() => {
            -1
        }
        // A replay. Not a failed submission written again by its client's
        // retry: that new admission was counted by the API.
        ("MODIFY", Some(old), Some(new))
            if old.is_finished()
                && !new.is_finished()
                && images["OldImage"][ENQUEUE_FAILED_ATTRIBUTE]["BOOL"] != Value::Bool(true) =>
        {
            1
        }
        ("REMOVE", Some(old), _) if !old.is_finished() => -1,
        _ => return None,
    };
    let image = if delta < 0 && new.is_none() {
        &images["OldImage"]
    } else {
        &images["NewImage"]
    };
    let owner = image[crate::item::OWNER_ATTRIBUTE]["S"].as_str()?;
    Some((owner.to_owned(), delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event: &str, old: Option<&str>, new: &str, extra: Value) -> Value {
        let id = "0b6f6f0e-8a4b-4a47-9d5e-2f3f9f0c4b11";
        let image = |state: &str| {
            let mut image = json!({"jobId": {"S": id}, "state": {"S": state}});
            if let (Value::Object(image), Value::Object(extra)) = (&mut image, &extra) {
                image.extend(extra.clone());
            }
            image
        };
        let mut dynamodb = json!({"NewImage": image(new), "SequenceNumber": "1"});
        if let Some(old) = old {
            dynamodb["OldImage"] = image(old);
        }
        json!({"eventName": event, "dynamodb": dynamodb})
    }

    #[test]
    fn only_a_called_back_jobs_entry_into_a_final_state_is_announced() {
        let hook = json!({"callbackUrl": {"S": "https://hooks.example.com/x"}});
        let id: JobId = "0b6f6f0e-8a4b-4a47-9d5e-2f3f9f0c4b11".parse().unwrap();
        for (old, new) in [
            ("running", "succeeded"),
            ("running", "failed"),
            ("queued", "cancelled"),
            ("queued", "failed"),
        ] {
            let change = record("MODIFY", Some(old), new, hook.clone());
            assert_eq!(announced(&change), Some(id), "{old} -> {new}");
        }
        for (old, new) in [
            (Some("queued"), "running"),
            (Some("running"), "queued"),
            (Some("failed"), "failed"),
            (Some("succeeded"), "succeeded"),
            (Some("failed"), "queued"),
            (None, "queued"),
        ] {
            let change = record("MODIFY", old, new, hook.clone());
            assert_eq!(announced(&change), None, "{old:?} -> {new}");
        }
        let without = record("MODIFY", Some("running"), "succeeded", json!({}));
        assert_eq!(announced(&without), None, "no callback URL");
        let refused = record(
            "MODIFY",
            Some("queued"),
            "failed",
            json!({"callbackUrl": {"S": "https://h.example.com/"}, "enqueueFailed": {"BOOL": true}}),
        );
        assert_eq!(announced(&refused), None, "its client got an error");
        let removed = record("REMOVE", Some("succeeded"), "succeeded", hook);
        assert_eq!(announced(&removed), None);
    }

    #[test]
    fn final_states_count_a_caller_down_and_replays_up() {
        let owner = json!({"owner": {"S": "alice"}});
        let counted_as = |event: &str, old: Option<&str>, new: &str| {
            counted(&record(event, old, new, owner.clone()))
        };
        let down = Some(("alice".to_owned(), -1));
        for (old, new) in [
            ("running", "succeeded"),
            ("queued", "cancelled"),
            ("scheduled", "failed"),
        ] {
            assert_eq!(counted_as("MODIFY", Some(old), new), down, "{old} -> {new}");
        }
        assert_eq!(
            counted_as("MODIFY", Some("failed"), "queued"),
            Some(("alice".to_owned(), 1))
        );
        for (old, new) in [
            ("queued", "running"),
            ("failed", "failed"),
            ("running", "queued"),
        ] {
            assert_eq!(counted_as("MODIFY", Some(old), new), None, "{old} -> {new}");
        }
        assert_eq!(
            counted_as("INSERT", None, "queued"),
            None,
            "the API counted its admission"
        );
        let mut removed = record("REMOVE", Some("running"), "running", owner.clone());
        removed["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("NewImage");
        assert_eq!(counted(&removed), down);
        let mut expired = record("REMOVE", Some("succeeded"), "succeeded", owner.clone());
        expired["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("NewImage");
        assert_eq!(counted(&expired), None);
        let retried = record(
            "MODIFY",
            Some("failed"),
            "queued",
            json!({"owner": {"S": "alice"}, "enqueueFailed": {"BOOL": true}}),
        );
        assert_eq!(counted(&retried), None, "a failed submission written again");
    }
}
