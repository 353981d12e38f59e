//! `GET /jobs?status=&type=&scheduleId=&limit=&cursor=`: the query of a
//! listing, and its cursor.
//!
//! A page is one query of the owner index (the caller's jobs only, newest
//! first) that reads at most `limit` entries, and one read of those jobs:
//! its cost never grows with the table or with other callers' jobs. The
//! `status`, `type` and `scheduleId` (the jobs a schedule's fires created)
//! filters apply to the jobs read, so a filtered page
//! may hold fewer than `limit` jobs (even none) and still have a
//! `nextCursor`: a client follows cursors until there is none.
//!
//! The cursor is opaque to clients: the hex of the last key read and a tag
//! of its caller (the first 8 bytes of the SHA-256 of the owner), so one
//! caller's cursor is refused for another (`invalid_cursor`). It names only
//! a place in the caller's own partition of the index; a forged one can
//! list nothing of anyone else's.

use crate::ApiError;
use jobline_core::store::{ListKey, MAX_LIST_LIMIT};
use jobline_core::{JobRecord, JobState};
use sha2::{Digest, Sha256};

/// The page size when the query names none.
pub const DEFAULT_LIMIT: usize = 20;

/// The longest `type` filter accepted (job type names are short).
const MAX_TYPE_LEN: usize = 64;

/// A parsed `GET /jobs` query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub(crate) status: Option<JobState>,
    pub(crate) job_type: Option<String>,
    pub(crate) schedule_id: Option<String>,
    pub(crate) limit: usize,
    pub(crate) after: Option<ListKey>,
}

impl Query {
    /// Parses `query` (the URL's query string) of a listing by `owner`.
    /// Unknown, repeated and malformed parameters are `invalid_query`, with
    /// a message naming the parameter; a cursor not made for `owner` is
    /// `invalid_cursor`.
    pub(crate) fn parse(query: &str, owner: &str) -> Result<Self, ApiError> {
        let mut parsed = Self {
            status: None,
            job_type: None,
            schedule_id: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).ok_or_else(|| invalid("a parameter name is not UTF-8"))?;
            let value = decode(value).ok_or_else(|| invalid(&format!("{name} is not UTF-8")))?;
            if seen.contains(&name) {
                return Err(invalid(&format!("{name} is given more than once")));
            }
            match name.as_str() {
                "status" => {
                    parsed.status = Some(value.parse().map_err(|_| {
                        invalid(
                            "status must be scheduled, queued, running, succeeded, failed or \
                             cancelled",
                        )
                    })?);
                }
                "type" => {
                    if value.is_empty() || value.len() > MAX_TYPE_LEN {
                        return Err(invalid(&format!(
                            "type must be a job type name of 1 to {MAX_TYPE_LEN} characters"
                        )));
                    }
                    parsed.job_type = Some(value);
                }
                "limit" => parsed.limit = limit(&value)?,
                "scheduleId" => {
                    let id: jobline_core::schedule::ScheduleId = value
                        .parse()
                        .map_err(|_| invalid("scheduleId must be a schedule's id (a UUID)"))?;
                    parsed.schedule_id = Some(id.to_string());
                }
                "cursor" => parsed.after = Some(parse_cursor(&value, owner)?),
                _ => {
                    return Err(invalid(
                        "unknown parameter; GET /jobs takes status, type, scheduleId, limit and \
                         cursor",
                    ));
                }
            }
            seen.push(name);
        }
        Ok(parsed)
    }

    /// Whether `job` passes the query's filters at `now_ms` (its status as
    /// its client sees it then, [`JobRecord::state_at`]).
    pub(crate) fn matches(&self, job: &JobRecord, now_ms: i64) -> bool {
        self.status
            .is_none_or(|status| job.state_at(now_ms) == status)
            && self
                .job_type
                .as_deref()
                .is_none_or(|job_type| job.job_type == job_type)
            && self
                .schedule_id
                .as_ref()
                .is_none_or(|id| job.schedule_id.as_ref() == Some(id))
    }
}

/// A listing's `limit` (`GET /jobs`, `GET /schedules`): 1 to
/// [`MAX_LIST_LIMIT`].
pub(crate) fn limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|limit| (1..=MAX_LIST_LIMIT).contains(limit))
        .ok_or_else(|| {
            invalid(&format!(
                "limit must be an integer from 1 to {MAX_LIST_LIMIT}"
            ))
        })
}

fn invalid(message: &str) -> ApiError {
    ApiError::InvalidQuery(message.to_owned())
}

/// The cursor that continues `owner`'s listing after `key`.
pub(crate) fn cursor(key: ListKey, owner: &str) -> String {
    hex(format!("{}.{}.{}", key.at, key.id, owner_tag(owner)).as_bytes())
}

fn parse_cursor(cursor: &str, owner: &str) -> Result<ListKey, ApiError> {
    let text = unhex(cursor)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(ApiError::InvalidCursor)?;
    let mut parts = text.split('.');
    let (Some(created_at), Some(id), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::InvalidCursor);
    };
    if tag != owner_tag(owner) {
        return Err(ApiError::InvalidCursor);
    }
    Ok(ListKey {
        at: created_at.parse().map_err(|_| ApiError::InvalidCursor)?,
        id: id.parse().map_err(|_| ApiError::InvalidCursor)?,
    })
}

/// The first 8 bytes of the SHA-256 of `owner`, in hex.
fn owner_tag(owner: &str) -> String {
    hex(&Sha256::digest(owner.as_bytes())[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 512 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Percent-decodes a query component (`+` is a space, as forms write it);
/// `None` if it is not UTF-8 or an escape is malformed.
fn decode(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let escape = component.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(escape, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::JobId;

    #[test]
    fn a_query_parses_its_filters_limit_and_cursor() {
        let key = ListKey {
            at: 1_795_000_000_123,
            id: JobId::random(),
        };
        let cursor = cursor(key, "alice");
        let query = Query::parse(
            &format!(
                "status=running&type=prime-count&limit=5&cursor={cursor}\
                 &scheduleId=0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b"
            ),
            "alice",
        )
        .unwrap();
        assert_eq!(
            query,
            Query {
                status: Some(JobState::Running),
                job_type: Some("prime-count".into()),
                schedule_id: Some("0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b".into()),
                limit: 5,
                after: Some(key),
            }
        );
        assert_eq!(Query::parse("", "alice").unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(
            Query::parse("type=a%2Db+c", "alice")
                .unwrap()
                .job_type
                .as_deref(),
            Some("a-b c")
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, named) in [
            ("status=done", "status"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=ten", "limit"),
            ("type=", "type"),
            ("colour=red", "unknown parameter"),
            ("limit=1&limit=2", "more than once"),
            ("type=%ZZ", "type"),
        ] {
            match Query::parse(query, "alice") {
                Err(ApiError::InvalidQuery(message)) => {
                    assert!(message.contains(named), "{query}: {message}");
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_cursor_serves_only_its_caller() {
        let key = ListKey {
            at: 5,
            id: JobId::random(),
        };
        let alices = cursor(key, "alice");
        assert!(matches!(
            Query::parse(&format!("cursor={alices}"), "bob"),
            Err(ApiError::InvalidCursor)
        ));
        for forged in ["zz", "abc", "", &hex(b"5.not-an-id.0000")] {
            assert!(
                matches!(
                    Query::parse(&format!("cursor={forged}"), "alice"),
                    Err(ApiError::InvalidCursor | ApiError::InvalidQuery(_))
                ),
                "{forged}"
            );
        }
    }
}
