//! The DynamoDB item of a schedule: attribute names, the codec between
//! items and [`ScheduleRecord`]s, and the bound of a fire's refusal.
//!
//! One item per schedule, keyed `owner` (partition) and `scheduleId` (sort,
//! the hyphenated id, whose string order is the id's order). The payload
//! is JSON text in a string attribute, as a job's is, so that it comes back
//! exactly as written whatever its shape (a map attribute would not keep
//! numbers such as `1.0` or `1e3` as written). The fire counts are numbers
//! that `record_fire` changes with `ADD`, so a missing count reads as 0.
//!
//! Every fire rewrites the item, and DynamoDB bills a write on the larger
//! of the item before and after, 1 write unit per started KB: the payload's
//! bound ([`SCHEDULE_PAYLOAD_BYTES`](jobline_core::schedule::SCHEDULE_PAYLOAD_BYTES),
//! 8 KiB), the callback URL's (2048 bytes) and the refusal's
//! ([`REFUSAL_BYTES`]) keep the largest item (with an owner of 128 bytes)
//! at about 10.9 KB, so a fire costs at most 11 units, and 1 for a
//! schedule whose payload and callback URL are small (its other
//! attributes take a few hundred bytes).

use crate::fields::{Fields, malformed};
use crate::item::{n, s};
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::job::JobId;
use jobline_core::schedule::{
    FireCounts, LastFire, REFUSAL_BYTES, ScheduleId, ScheduleRecord, ScheduleSpec,
    ScheduleStoreError,
};
use std::collections::HashMap;

/// The table's partition key: the caller that owns the schedule.
pub const OWNER_ATTRIBUTE: &str = "owner";
/// The table's sort key: the schedule's id, hyphenated.
pub const SCHEDULE_ID_ATTRIBUTE: &str = "scheduleId";
/// `cron(…)` or `rate(…)`, as written.
pub const EXPRESSION_ATTRIBUTE: &str = "expression";
/// The IANA time zone the expression is read in.
pub const TIMEZONE_ATTRIBUTE: &str = "timezone";
pub const JOB_TYPE_ATTRIBUTE: &str = "jobType";
/// The payload of each fire's job, as JSON text.
pub const PAYLOAD_ATTRIBUTE: &str = "payload";
/// The jobs' callback URL, absent when there is none.
pub const CALLBACK_ATTRIBUTE: &str = "callbackUrl";
/// The overlap policy, `allow` or `skip`.
pub const OVERLAP_ATTRIBUTE: &str = "overlap";
/// A boolean.
pub const PAUSED_ATTRIBUTE: &str = "paused";
pub const CREATED_ATTRIBUTE: &str = "createdAt";
pub const UPDATED_ATTRIBUTE: &str = "updatedAt";
/// Fires scheduled before this (ms) are not run.
pub const ACTIVE_FROM_ATTRIBUTE: &str = "activeFrom";
/// The number every conditional change of the definition is fenced by.
pub const VERSION_ATTRIBUTE: &str = "version";
/// The scheduled time (ms) of the last fire that created a job; with
/// [`LAST_JOB_ATTRIBUTE`], absent until the first such fire.
pub const LAST_FIRE_AT_ATTRIBUTE: &str = "lastFireAt";
/// The job id of the last fire that created a job.
pub const LAST_JOB_ATTRIBUTE: &str = "lastJobId";
/// Fires that created (or found) their job.
pub const FIRED_ATTRIBUTE: &str = "fired";
/// Fires the overlap policy skipped.
pub const SKIPPED_ATTRIBUTE: &str = "skipped";
/// Fires that could not create their job.
pub const REFUSED_ATTRIBUTE: &str = "refused";
/// The scheduled time (ms) of the last skipped or refused fire.
pub const LAST_MISSED_AT_ATTRIBUTE: &str = "lastMissedAt";
/// Why the last refused fire was refused, at most [`REFUSAL_BYTES`].
pub const LAST_REFUSAL_ATTRIBUTE: &str = "lastRefusal";

/// `reason` cut to at most [`REFUSAL_BYTES`] bytes, on a char boundary:
/// what a refused fire's record keeps.
pub fn bound_refusal(reason: &str) -> &str {
    if reason.len() <= REFUSAL_BYTES {
        return reason;
    }
    let mut end = REFUSAL_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The key of `owner`'s schedule `id`.
pub fn schedule_key(owner: &str, id: ScheduleId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (OWNER_ATTRIBUTE.to_owned(), s(owner)),
        (SCHEDULE_ID_ATTRIBUTE.to_owned(), s(id.to_string())),
    ])
}

/// The attributes of `spec` (its callback URL only when there is one).
pub(crate) fn spec_attributes(spec: &ScheduleSpec) -> Vec<(&'static str, AttributeValue)> {
    let mut attributes = vec![
        (EXPRESSION_ATTRIBUTE, s(spec.expression.as_str())),
        (TIMEZONE_ATTRIBUTE, s(spec.timezone.as_str())),
        (JOB_TYPE_ATTRIBUTE, s(spec.job_type.as_str())),
        (PAYLOAD_ATTRIBUTE, s(spec.payload.to_string())),
        (OVERLAP_ATTRIBUTE, s(spec.overlap.as_str())),
    ];
    if let Some(url) = &spec.callback_url {
        attributes.push((CALLBACK_ATTRIBUTE, s(url.as_str())));
    }
    attributes
}

/// The DynamoDB item of `schedule`, its refusal bounded by
/// [`bound_refusal`].
pub fn item_from_schedule(schedule: &ScheduleRecord) -> HashMap<String, AttributeValue> {
    let mut item = schedule_key(&schedule.owner, schedule.id);
    let counts = &schedule.counts;
    let fixed = [
        (PAUSED_ATTRIBUTE, AttributeValue::Bool(schedule.paused)),
        (CREATED_ATTRIBUTE, n(schedule.created_at)),
        (UPDATED_ATTRIBUTE, n(schedule.updated_at)),
        (ACTIVE_FROM_ATTRIBUTE, n(schedule.active_from)),
        (VERSION_ATTRIBUTE, n(schedule.version)),
        (FIRED_ATTRIBUTE, n(counts.fired)),
        (SKIPPED_ATTRIBUTE, n(counts.skipped)),
        (REFUSED_ATTRIBUTE, n(counts.refused)),
    ];
    let optional = [
        (
            LAST_FIRE_AT_ATTRIBUTE,
            schedule.last_fire.map(|f| n(f.scheduled_at)),
        ),
        (
            LAST_JOB_ATTRIBUTE,
            schedule.last_fire.map(|f| s(f.job_id.to_string())),
        ),
        (LAST_MISSED_AT_ATTRIBUTE, counts.last_missed_at.map(n)),
        (
            LAST_REFUSAL_ATTRIBUTE,
            counts.last_refusal.as_deref().map(|r| s(bound_refusal(r))),
        ),
    ];
    item.extend(
        spec_attributes(&schedule.spec)
            .into_iter()
            .chain(fixed)
            .chain(
                optional
                    .into_iter()
                    .filter_map(|(name, value)| Some((name, value?))),
            )
            .map(|(name, value)| (name.to_owned(), value)),
    );
    item
}

/// Reads a schedule from its item; an attribute missing or of another
/// shape is [`ScheduleStoreError::Malformed`], naming it.
pub fn schedule_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<ScheduleRecord, ScheduleStoreError> {
    let fields = Fields(item);
    let malformed = |name: &str, why: &str| ScheduleStoreError::Malformed(malformed(name, why));
    let string = |name: &str| fields.string(name).map_err(ScheduleStoreError::Malformed);
    let required = |name: &str| fields.required(name).map_err(ScheduleStoreError::Malformed);
    let number = |name: &str| fields.number(name).map_err(ScheduleStoreError::Malformed);
    let time = |name: &str| number(name)?.ok_or_else(|| malformed(name, "missing"));
    let count = |name: &str| {
        fields
            .count::<u64>(name)
            .map_err(ScheduleStoreError::Malformed)
    };
    let last_fire = match (number(LAST_FIRE_AT_ATTRIBUTE)?, string(LAST_JOB_ATTRIBUTE)?) {
        (Some(scheduled_at), Some(job)) => Some(LastFire {
            scheduled_at,
            job_id: job
                .parse::<JobId>()
                .map_err(|_| malformed(LAST_JOB_ATTRIBUTE, "not a job id"))?,
        }),
        (None, None) => None,
        (Some(_), None) => return Err(malformed(LAST_JOB_ATTRIBUTE, "missing")),
        (None, Some(_)) => return Err(malformed(LAST_FIRE_AT_ATTRIBUTE, "missing")),
    };
    Ok(ScheduleRecord {
        id: required(SCHEDULE_ID_ATTRIBUTE)?
            .parse()
            .map_err(|_| malformed(SCHEDULE_ID_ATTRIBUTE, "not a schedule id"))?,
        owner: required(OWNER_ATTRIBUTE)?.clone(),
        spec: ScheduleSpec {
            expression: required(EXPRESSION_ATTRIBUTE)?.clone(),
            timezone: required(TIMEZONE_ATTRIBUTE)?.clone(),
            job_type: required(JOB_TYPE_ATTRIBUTE)?.clone(),
            payload: serde_json::from_str(required(PAYLOAD_ATTRIBUTE)?)
                .map_err(|e| malformed(PAYLOAD_ATTRIBUTE, &e.to_string()))?,
            callback_url: string(CALLBACK_ATTRIBUTE)?.cloned(),
            overlap: required(OVERLAP_ATTRIBUTE)?
                .parse()
                .map_err(|e: String| malformed(OVERLAP_ATTRIBUTE, &e))?,
        },
        paused: match item.get(PAUSED_ATTRIBUTE) {
            None => false,
            Some(value) => *value
                .as_bool()
                .map_err(|_| malformed(PAUSED_ATTRIBUTE, "not a boolean"))?,
        },
        created_at: time(CREATED_ATTRIBUTE)?,
        updated_at: time(UPDATED_ATTRIBUTE)?,
        active_from: time(ACTIVE_FROM_ATTRIBUTE)?,
        version: time(VERSION_ATTRIBUTE)?
            .try_into()
            .map_err(|_| malformed(VERSION_ATTRIBUTE, "out of range"))?,
        last_fire,
        counts: FireCounts {
            fired: count(FIRED_ATTRIBUTE)?,
            skipped: count(SKIPPED_ATTRIBUTE)?,
            refused: count(REFUSED_ATTRIBUTE)?,
            last_missed_at: number(LAST_MISSED_AT_ATTRIBUTE)?,
            last_refusal: string(LAST_REFUSAL_ATTRIBUTE)?.cloned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::item_size;
    use jobline_core::schedule::{Overlap, SCHEDULE_PAYLOAD_BYTES};
    use serde_json::json;

    fn schedule() -> ScheduleRecord {
        ScheduleRecord::new(
            "alice",
            ScheduleSpec {
                expression: "cron(0 9 * * ? *)".into(),
                timezone: "Europe/Paris".into(),
                job_type: "primes".into(),
                payload: json!({"upTo": 10, "ratio": 1.5}),
                callback_url: None,
                overlap: Overlap::Allow,
            },
            1_000,
        )
    }

    #[test]
    fn schedules_round_trip_through_items() {
        let mut schedule = schedule();
        assert_eq!(
            schedule_from_item(&item_from_schedule(&schedule)).unwrap(),
            schedule
        );
        schedule.spec.callback_url = Some("https://hooks.example.com/s".into());
        schedule.spec.overlap = Overlap::Skip;
        schedule.paused = true;
        schedule.version = 7;
        schedule.last_fire = Some(LastFire {
            scheduled_at: 5_000,
            job_id: JobId::random(),
        });
        schedule.counts = FireCounts {
            fired: 3,
            skipped: 2,
            refused: 1,
            last_missed_at: Some(4_000),
            last_refusal: Some("the backlog is full".into()),
        };
        let item = item_from_schedule(&schedule);
        assert_eq!(item[OWNER_ATTRIBUTE], s("alice"));
        assert_eq!(item[SCHEDULE_ID_ATTRIBUTE], s(schedule.id.to_string()));
        assert_eq!(schedule_from_item(&item).unwrap(), schedule);
    }

    #[test]
    fn missing_counts_read_as_zero_and_malformed_items_name_the_attribute() {
        let schedule = schedule();
        let mut item = item_from_schedule(&schedule);
        item.remove(FIRED_ATTRIBUTE);
        assert_eq!(schedule_from_item(&item).unwrap().counts.fired, 0);
        item.insert(OVERLAP_ATTRIBUTE.into(), s("queue"));
        let err = schedule_from_item(&item).unwrap_err();
        assert!(err.to_string().contains(OVERLAP_ATTRIBUTE), "{err}");
        item.remove(TIMEZONE_ATTRIBUTE);
        let err = schedule_from_item(&item).unwrap_err();
        assert!(err.to_string().contains(TIMEZONE_ATTRIBUTE), "{err}");
        let mut item = item_from_schedule(&schedule);
        item.insert(LAST_FIRE_AT_ATTRIBUTE.into(), n(1));
        let err = schedule_from_item(&item).unwrap_err();
        assert!(err.to_string().contains(LAST_JOB_ATTRIBUTE), "{err}");
    }

    #[test]
    fn refusals_are_cut_on_a_char_boundary() {
        assert_eq!(bound_refusal("full"), "full");
        let exact = "x".repeat(REFUSAL_BYTES);
        assert_eq!(bound_refusal(&exact), exact);
        let long = "é".repeat(REFUSAL_BYTES);
        let bounded = bound_refusal(&long);
        assert!(long.starts_with(bounded));
        assert_eq!(bounded.len(), REFUSAL_BYTES);
        let odd = format!("x{long}");
        assert_eq!(bound_refusal(&odd).len(), REFUSAL_BYTES - 1);
    }

    /// The write units of a fire: 1 per started KB of the larger of the
    /// item before and after.
    #[test]
    fn the_largest_schedule_item_is_at_most_11_kb() {
        let mut largest = schedule();
        largest.owner = "o".repeat(128);
        largest.spec.payload = json!("p".repeat(SCHEDULE_PAYLOAD_BYTES - 2));
        largest.spec.callback_url = Some("u".repeat(2048));
        largest.spec.expression = format!("cron({})", "1,".repeat(100));
        largest.spec.timezone = "America/Argentina/ComodRivadavia".into();
        largest.spec.job_type = "j".repeat(64);
        largest.last_fire = Some(LastFire {
            scheduled_at: i64::MAX,
            job_id: JobId::random(),
        });
        largest.counts = FireCounts {
            fired: u64::MAX,
            skipped: u64::MAX,
            refused: u64::MAX,
            last_missed_at: Some(i64::MAX),
            last_refusal: Some("r".repeat(REFUSAL_BYTES)),
        };
        let size = item_size(&item_from_schedule(&largest));
        assert!(size <= 11 * 1024, "{size}");
        assert!(size > 10 * 1024, "{size}");
        let mut small = schedule();
        small.last_fire = largest.last_fire;
        small.counts = largest.counts;
        let size = item_size(&item_from_schedule(&small));
        assert!(size < 1024, "a small schedule's fire costs 1 unit: {size}");
    }
}
