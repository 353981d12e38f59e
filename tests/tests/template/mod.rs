//! `template.yaml`, the SAM template that deploys Jobline, checked against
//! the code so that local runs and the deployed stack cannot drift: the queue
//! and table settings must equal `jobline_core::limits::QueueSettings::TEMPLATE` and
//! what `provision` really creates on moto, the functions' environments must
//! configure `Config` from the template's parameters, and every IAM statement
//! must name its resources. The webhooks' parts (the table's stream, the
//! notifier's queues and mappings, the master key's secret) are held to
//! `QueueSettings::NOTIFY`, the outbox's attributes and `provision` alike.
//! Delayed and recurring jobs' parts (the schedule group, the fire
//! function, the roles EventBridge Scheduler and the API use, the schedules
//! table) are held to what each may do. So is what checkov
//! (`scripts/check-template`) cannot see of the security posture: the
//! optional customer managed key reaches every resource and role that needs
//! it (`iam.rs`), and no reserved concurrency falls below an event source's
//! cap (`functions.rs`).
//!
//! One file a concern: `queues.rs`, `functions.rs`, `iam.rs`,
//! `observability.rs` and `schedules.rs`; the helpers they share are here.

use aws_sdk_dynamodb::types::{
    BillingMode, PointInTimeRecoveryStatus, SseStatus, StreamViewType, TimeToLiveStatus,
};
use jobline_core::config::{Config, WorkerConfig, min_retention_days};
use jobline_core::files;
use jobline_core::job::{JobId, JobState};
use jobline_core::limits::DLQ_RETENTION_SECS;
use jobline_core::limits::LAMBDA_MAX_TIMEOUT_SECS;
use jobline_core::limits::NOTIFIER_TIMEOUT_SECS;
use jobline_core::limits::QueueSettings;
use jobline_core::limits::SQS_MAX_VISIBILITY_SECS;
use jobline_core::limits::WORKER_TIMEOUT_SECS;
use jobline_core::metrics::{Metric, NAMESPACE};
use jobline_dynamodb::CREATED_ATTRIBUTE;
use jobline_dynamodb::DUE_ATTRIBUTE;
use jobline_dynamodb::DUE_INDEX;
use jobline_dynamodb::FINISHED_ATTRIBUTE;
use jobline_dynamodb::HOOK_SHARD_ATTRIBUTE;
use jobline_dynamodb::KEY_ATTRIBUTE;
use jobline_dynamodb::OWNER_ATTRIBUTE;
use jobline_dynamodb::OWNER_INDEX;
use jobline_dynamodb::SHARD_ATTRIBUTE;
use jobline_dynamodb::STATE_INDEX;
use jobline_dynamodb::STATE_SHARD_ATTRIBUTE;
use jobline_dynamodb::TTL_ATTRIBUTE;
use jobline_dynamodb::WEBHOOK_INDEX;
use jobline_dynamodb::outbox::{self, CALLBACK_ATTRIBUTE, STATE_ATTRIBUTE};
use jobline_local::provision;
use jobline_tests::TestEnv;
use jobline_tests::template::{
    ALARM, EVENT_SOURCE_MAPPING, FUNCTION, QUEUE, TABLE, Template, as_list, get_att, number,
    reference, statements,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod functions;
mod iam;
mod observability;
mod queues;
mod schedules;

/// Every function the template deploys.
const FUNCTIONS: [&str; 5] = [
    "ApiFunction",
    "WorkerFunction",
    "SweeperFunction",
    "NotifierFunction",
    "FireFunction",
];

/// The ARN pattern of every schedule in the stack's schedule group
/// (`schedule/<group>/<name>`), the only schedules a role may touch.
fn group_schedules() -> Value {
    json!({
        "Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"
    })
}

/// [`Template::resolved_environment`], with each `Fn::GetAtt` value (an ARN
/// the code is handed, such as the API's `FIRE_FUNCTION_ARN`) as
/// `<Resource.Attribute>`, after checking that the resource exists:
/// `resolved_environment` takes only literals and `Ref`s.
fn resolved_environment(
    template: &Template,
    function: &str,
    parameters: &HashMap<&str, &str>,
) -> HashMap<String, String> {
    let mut plain = template.clone();
    let variables =
        plain.0["Resources"][function]["Properties"]["Environment"]["Variables"].as_object_mut();
    for (name, value) in variables.into_iter().flatten() {
        let Some(target) = value.get("Fn::GetAtt") else {
            continue;
        };
        let (resource, attribute) = match target.as_array().map(Vec::as_slice) {
            Some([Value::String(resource), Value::String(attribute)]) => (resource, attribute),
            _ => panic!("{function} {name}: unexpected {value}"),
        };
        assert!(
            template.0["Resources"][resource].is_object(),
            "{function} {name} refers to unknown {resource}"
        );
        *value = json!(format!("<{resource}.{attribute}>"));
    }
    plain.resolved_environment(function, parameters)
}

/// `provision` names a DLQ `<queue>-dlq`, and its redrive-allow policy
/// admits exactly the queue, whose ARN the template builds from its name;
/// returns the queue's name (a `!Sub` template).
fn dlq_admits_only<'a>(queue: &'a Value, dlq: &Value) -> &'a str {
    let queue_name = queue["QueueName"]["Fn::Sub"]
        .as_str()
        .expect("QueueName !Sub");
    assert_eq!(
        dlq["QueueName"],
        json!({ "Fn::Sub": format!("{queue_name}-dlq") })
    );
    assert_eq!(
        dlq["RedriveAllowPolicy"],
        json!({
            "redrivePermission": "byQueue",
            "sourceQueueArns": [{
                "Fn::Sub": format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue_name}")
            }],
        })
    );
    queue_name
}

/// A small evaluator of the Lambda event filter patterns the template uses:
/// objects match field by field, a list matches if any of its entries does
/// (a literal, or `{"exists": bool}`).
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(name, inner)| match inner {
            Value::Array(entries) => entries.iter().any(|entry| match entry {
                Value::Object(test) if test.contains_key("exists") => {
                    let present = !event[name].is_null();
                    test["exists"].as_bool().expect("exists: bool") == present
                }
                literal => &event[name] == literal,
            }),
            nested => pattern_matches(nested, &event[name]),
        }),
        other => panic!("unexpected pattern {other}"),
    }
}

/// Every state a job can have; a new one fails to compile here until it is
/// listed.
fn every_job_state() -> Vec<JobState> {
    let all = vec![
        JobState::Scheduled,
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];
    for state in &all {
        match state {
            JobState::Scheduled
            | JobState::Queued
            | JobState::Running
            | JobState::Succeeded
            | JobState::Failed
            | JobState::Cancelled => {}
        }
    }
    all
}

/// `Fn::If` on `HasKmsKey` (a customer managed key given): `with` if
/// so, else `without`.
fn kms_if(with: Value, without: Value) -> Value {
    json!({"Fn::If": ["HasKmsKey", with, without]})
}

/// `value` as deployed without a customer managed key (`KmsKeyArn` empty,
/// the default): the second branch of an `Fn::If` on `HasKmsKey`, any
/// other value as it is.
fn without_kms_key(value: &Value) -> &Value {
    match value["Fn::If"].as_array().map(Vec::as_slice) {
        Some([condition, _, without]) if condition == "HasKmsKey" => without,
        _ => value,
    }
}

/// Every policy statement under `node`.
fn grants(list: &[(&str, Value)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(action, resource)| ((*action).to_owned(), resource.to_string()))
        .collect()
}

fn attribute(attributes: &HashMap<String, String>, name: &str) -> u64 {
    attributes[name]
        .parse()
        .unwrap_or_else(|e| panic!("{name}={}: {e}", attributes[name]))
}

/// A string parameter's default, and that it is one of its allowed values.
fn string_default<'a>(template: &'a Template, parameter: &str) -> &'a str {
    let definition = template.parameter(parameter);
    let default = definition["Default"].as_str().expect("a string default");
    assert!(
        as_list(&definition["AllowedValues"]).contains(&&json!(default)),
        "{parameter}'s default {default} is not allowed"
    );
    default
}
