//! Which AWS operation an SDK request is, and tallies of recorded calls.
//!
//! DynamoDB and SQS speak a JSON protocol in the current SDKs and name the
//! operation in the `X-Amz-Target` header: `DynamoDB_20120810.PutItem`,
//! `AmazonSQS.SendMessage` (SQS moved from the query protocol to JSON in
//! 2023). Older SQS clients send a form body with
//! `Action=SendMessage&Version=2012-11-05`; that is recognised too, so a
//! change of protocol cannot make calls go uncounted. EventBridge Scheduler
//! (the timers of delayed jobs and schedules) speaks REST-JSON: no target
//! header; the service is the signing scope of the `Authorization` header
//! (`Credential=…/us-east-1/scheduler/aws4_request`) and the operation is
//! the method and path ([`Operation::scheduler_rest`]).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

/// The AWS service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Service {
    DynamoDb,
    Sqs,
    /// EventBridge Scheduler.
    Scheduler,
    Unknown,
}

/// An AWS operation, such as DynamoDB `PutItem`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub service: Service,
    pub name: String,
}

/// The SQS API version that query-protocol requests carry.
const SQS_QUERY_VERSION: &str = "2012-11-05";

impl Operation {
    pub fn dynamodb(name: &str) -> Self {
        Self {
            service: Service::DynamoDb,
            name: name.to_owned(),
        }
    }

    pub fn sqs(name: &str) -> Self {
        Self {
            service: Service::Sqs,
            name: name.to_owned(),
        }
    }

    pub fn scheduler(name: &str) -> Self {
        Self {
            service: Service::Scheduler,
            name: name.to_owned(),
        }
    }

    fn unknown(name: &str) -> Self {
        Self {
            service: Service::Unknown,
            name: name.to_owned(),
        }
    }

    /// Classifies a whole request: by its `X-Amz-Target` header; else, when
    /// its `authorization` is signed for EventBridge Scheduler, by its
    /// method and path; else by a query-protocol form body.
    pub fn classify_request(
        method: &str,
        path: &str,
        target: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Self {
        if target.is_none() && authorization.and_then(signing_service) == Some("scheduler") {
            return Self::scheduler_rest(method, path);
        }
        Self::classify(target, body)
    }

    /// An EventBridge Scheduler request by its REST route (API Reference:
    /// `CreateSchedule` is `POST /schedules/{Name}`, and so on).
    pub fn scheduler_rest(method: &str, path: &str) -> Self {
        let segments: Vec<&str> = path
            .split('?')
            .next()
            .unwrap_or_default()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let name = match (method, segments.as_slice()) {
            ("POST", ["schedules", _]) => "CreateSchedule",
            ("PUT", ["schedules", _]) => "UpdateSchedule",
            ("DELETE", ["schedules", _]) => "DeleteSchedule",
            ("GET", ["schedules", _]) => "GetSchedule",
            ("GET", ["schedules"]) => "ListSchedules",
            ("POST", ["schedule-groups", _]) => "CreateScheduleGroup",
            ("DELETE", ["schedule-groups", _]) => "DeleteScheduleGroup",
            ("GET", ["schedule-groups", _]) => "GetScheduleGroup",
            ("GET", ["schedule-groups"]) => "ListScheduleGroups",
            _ => "unclassified",
        };
        Self::scheduler(name)
    }

    /// Classifies a request by its `X-Amz-Target` header, else by a
    /// query-protocol form body.
    pub fn classify(target: Option<&str>, body: &[u8]) -> Self {
        if let Some(target) = target {
            return match target.split_once('.') {
                Some((prefix, name)) if prefix.starts_with("DynamoDB_") => Self::dynamodb(name),
                Some(("AmazonSQS", name)) => Self::sqs(name),
                _ => Self::unknown(target.rsplit('.').next().unwrap_or(target)),
            };
        }
        let form = String::from_utf8_lossy(body);
        let field = |key: &str| {
            form.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_owned())
        };
        match (field("Action"), field("Version")) {
            (Some(action), Some(version)) if version == SQS_QUERY_VERSION => Self::sqs(&action),
            (Some(action), _) => Self::unknown(&action),
            (None, _) => Self::unknown("unclassified"),
        }
    }

    /// A DynamoDB read: billed in read request units.
    pub fn is_dynamodb_read(&self) -> bool {
        self.service == Service::DynamoDb
            && matches!(
                self.name.as_str(),
                "GetItem" | "BatchGetItem" | "Query" | "Scan" | "TransactGetItems"
            )
    }

    /// A DynamoDB write: billed in write request units.
    pub fn is_dynamodb_write(&self) -> bool {
        self.service == Service::DynamoDb
            && matches!(
                self.name.as_str(),
                "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
            )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = match self.service {
            Service::DynamoDb => "DynamoDB",
            Service::Sqs => "SQS",
            Service::Scheduler => "Scheduler",
            Service::Unknown => "unknown",
        };
        write!(f, "{service}.{}", self.name)
    }
}

/// The service a SigV4 `Authorization` header is signed for: the fourth
/// part of its credential scope (`AKID/date/region/service/aws4_request`).
pub fn signing_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

/// One request as an endpoint saw it.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub operation: Operation,
    /// When the request arrived.
    pub started: Instant,
    /// When its response was ready.
    pub finished: Instant,
    pub status: u16,
}

impl RecordedCall {
    /// Refused: a 4xx or 5xx answer, such as a failed condition.
    pub fn failed(&self) -> bool {
        self.status >= 400
    }

    /// Whether this request had its answer before `other` was sent.
    pub fn precedes(&self, other: &Self) -> bool {
        self.finished <= other.started
    }
}

/// How many calls of one operation, and how many of them failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCount {
    pub calls: usize,
    pub failed: usize,
}

/// Calls per operation (`"DynamoDB.PutItem"` …), in name order.
pub fn tally<'a>(calls: impl IntoIterator<Item = &'a RecordedCall>) -> BTreeMap<String, CallCount> {
    let mut counts: BTreeMap<String, CallCount> = BTreeMap::new();
    for call in calls {
        let count = counts.entry(call.operation.to_string()).or_default();
        count.calls += 1;
        count.failed += usize::from(call.failed());
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_protocol_targets_name_service_and_operation() {
        let put = Operation::classify(Some("DynamoDB_20120810.PutItem"), b"{}");
        assert_eq!(put, Operation::dynamodb("PutItem"));
        assert!(put.is_dynamodb_write() && !put.is_dynamodb_read());
        let send = Operation::classify(Some("AmazonSQS.SendMessage"), b"{}");
        assert_eq!(send, Operation::sqs("SendMessage"));
        assert_eq!(send.to_string(), "SQS.SendMessage");
        assert!(!send.is_dynamodb_write());
        let get = Operation::classify(Some("DynamoDB_20120810.GetItem"), b"");
        assert!(get.is_dynamodb_read());
        let other = Operation::classify(Some("AWSCognitoIdentityService.GetId"), b"");
        assert_eq!(other.service, Service::Unknown);
    }

    #[test]
    fn query_protocol_bodies_are_classified_too() {
        let body = b"Action=SendMessage&Version=2012-11-05&QueueUrl=x&MessageBody=y";
        assert_eq!(
            Operation::classify(None, body),
            Operation::sqs("SendMessage")
        );
        let sts = Operation::classify(None, b"Action=GetCallerIdentity&Version=2011-06-15");
        assert_eq!(sts.service, Service::Unknown);
        assert_eq!(sts.name, "GetCallerIdentity");
        assert_eq!(Operation::classify(None, b"{}").name, "unclassified");
    }

    #[test]
    fn scheduler_requests_are_classified_by_signing_scope_and_route() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIA/20261207/us-east-1/scheduler/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(signing_service(auth), Some("scheduler"));
        let classify = |method: &str, path: &str| {
            Operation::classify_request(method, path, None, Some(auth), b"{}")
        };
        assert_eq!(
            classify("POST", "/schedules/job-1?"),
            Operation::scheduler("CreateSchedule")
        );
        assert_eq!(classify("PUT", "/schedules/job-1").name, "UpdateSchedule");
        assert_eq!(
            classify("DELETE", "/schedules/job-1?groupName=g").name,
            "DeleteSchedule"
        );
        assert_eq!(classify("GET", "/schedules/job-1").name, "GetSchedule");
        assert_eq!(
            classify("GET", "/schedules?MaxResults=100").name,
            "ListSchedules"
        );
        assert_eq!(
            classify("GET", "/schedule-groups/g").name,
            "GetScheduleGroup"
        );
        assert_eq!(classify("PATCH", "/x").name, "unclassified");
        assert_eq!(
            Operation::scheduler("DeleteSchedule").to_string(),
            "Scheduler.DeleteSchedule"
        );
        // A JSON-protocol request is classified by its target, whatever its signature.
        let dynamo = "AWS4-HMAC-SHA256 Credential=AKIA/20261207/us-east-1/dynamodb/aws4_request";
        assert_eq!(
            Operation::classify_request(
                "POST",
                "/",
                Some("DynamoDB_20120810.GetItem"),
                Some(dynamo),
                b"{}"
            ),
            Operation::dynamodb("GetItem")
        );
        assert_eq!(signing_service("Bearer x"), None);
    }

    fn call(name: &str, start_ms: u64, end_ms: u64, status: u16) -> RecordedCall {
        let origin = Instant::now();
        RecordedCall {
            operation: Operation::dynamodb(name),
            started: origin + Duration::from_millis(start_ms),
            finished: origin + Duration::from_millis(end_ms),
            status,
        }
    }

    #[test]
    fn overlap_needs_both_in_flight_at_once() {
        assert!(!call("a", 0, 10, 200).precedes(&call("b", 5, 20, 200)));
        assert!(!call("a", 5, 8, 200).precedes(&call("b", 0, 20, 200)));
        assert!(call("a", 0, 10, 200).precedes(&call("b", 10, 20, 200)));
        assert!(!call("a", 11, 12, 200).precedes(&call("b", 0, 10, 200)));
    }

    #[test]
    fn tallies_count_calls_and_failures_per_operation() {
        let calls = [
            call("UpdateItem", 0, 1, 200),
            call("UpdateItem", 1, 2, 400),
            call("PutItem", 2, 3, 200),
        ];
        let counts = tally(&calls);
        assert_eq!(
            counts["DynamoDB.UpdateItem"],
            CallCount {
                calls: 2,
                failed: 1
            }
        );
        assert_eq!(counts["DynamoDB.PutItem"].calls, 1);
        assert_eq!(counts.len(), 2);
    }
}
