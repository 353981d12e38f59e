//! Instant, valid answers to the AWS calls Jobline's functions make, so CPU
//! and memory per invocation can be measured without the emulator's own
//! slowness in the figures.
//!
//! Each answer is what DynamoDB or SQS returns on success. The one with
//! content is the claim: an `UpdateItem` with `ReturnValues=ALL_NEW`
//! returns the job as the claim leaves it (`running`, first attempt, the
//! lease and start time the request set), built from the job id in the key
//! and the benchmark's job request, because the worker runs what it gets.

use crate::aws_call::{Operation, Service};
use crate::events;
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::{JobId, JobRecord};
use jobline_dynamodb::item_from_record;
use serde_json::{Map, Value, json};

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct CannedResponse {
    pub status: u16,
    pub body: Value,
}

impl CannedResponse {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn refused(message: String) -> Self {
        Self {
            status: 400,
            body: json!({"__type": "com.amazonaws.bench#UnsupportedOperation", "message": message}),
        }
    }
}

/// The owner of the jobs the canned claim returns.
const OWNER: &str = "bench";

/// Answers `operation` with request body `body`.
pub fn respond(operation: &Operation, body: &[u8]) -> CannedResponse {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (operation.service, operation.name.as_str()) {
        (Service::DynamoDb, "PutItem") | (Service::Sqs, "ChangeMessageVisibility") => {
            CannedResponse::ok(json!({}))
        }
        (Service::DynamoDb, "UpdateItem") if request["ReturnValues"] == "ALL_NEW" => {
            match claimed_item(&request) {
                Ok(attributes) => CannedResponse::ok(json!({"Attributes": attributes})),
                Err(reason) => CannedResponse::refused(format!("UpdateItem: {reason}")),
            }
        }
        (Service::DynamoDb, "UpdateItem") => CannedResponse::ok(json!({})),
        (Service::Sqs, "SendMessage") => {
            CannedResponse::ok(json!({"MessageId": uuid::Uuid::new_v4().to_string()}))
        }
        (Service::Sqs, "DeleteMessageBatch" | "ChangeMessageVisibilityBatch") => {
            let successful: Vec<Value> = request["Entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|entry| json!({"Id": entry["Id"]}))
                .collect();
            CannedResponse::ok(json!({"Successful": successful, "Failed": []}))
        }
        (Service::Sqs, "ReceiveMessage") => CannedResponse::ok(json!({"Messages": []})),
        // The API's backlog bound (`MAX_BACKLOG`): an empty queue.
        (Service::Sqs, "GetQueueAttributes") => CannedResponse::ok(json!({"Attributes": {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
            "ApproximateNumberOfMessagesDelayed": "0",
        }})),
        _ => CannedResponse::refused(format!(
            "the benchmark's canned endpoint does not answer {operation}"
        )),
    }
}

/// The job item after a claim: what `ReturnValues=ALL_NEW` returns.
fn claimed_item(request: &Value) -> Result<Value, String> {
    let id: JobId = request["Key"]["jobId"]["S"]
        .as_str()
        .ok_or("no Key.jobId")?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let number = |name: &str| -> Result<i64, String> {
        request["ExpressionAttributeValues"][name]["N"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no number {name} in ExpressionAttributeValues"))
    };
    let now = number(":now")?;
    let mut job = JobRecord::new_queued(id, OWNER, &events::job_request(), now, 30);
    let token = request["ExpressionAttributeValues"][":token"]["S"]
        .as_str()
        .ok_or("no string :token in ExpressionAttributeValues")?;
    job.claim(now, number(":lease")?, token);
    Ok(Value::Object(
        item_from_record(&job)
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), attribute_json(value)?)))
            .collect::<Map<String, Value>>(),
    ))
}

/// DynamoDB's JSON form of an attribute value. A job item holds only
/// strings, numbers and booleans.
fn attribute_json(value: &AttributeValue) -> Option<Value> {
    match value {
        AttributeValue::S(s) => Some(json!({"S": s})),
        AttributeValue::N(n) => Some(json!({"N": n})),
        AttributeValue::Bool(b) => Some(json!({"BOOL": b})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_returns_the_running_job() {
        let id = JobId::random();
        let request = json!({
            "Key": {"jobId": {"S": id.to_string()}},
            "ExpressionAttributeValues": {
                ":now": {"N": "1000"}, ":lease": {"N": "61000"}, ":token": {"S": "a-delivery"},
            },
            "ReturnValues": "ALL_NEW",
        });
        let response = respond(
            &Operation::dynamodb("UpdateItem"),
            request.to_string().as_bytes(),
        );
        assert_eq!(response.status, 200);
        let attributes = &response.body["Attributes"];
        assert_eq!(attributes["jobId"]["S"], id.to_string());
        assert_eq!(attributes["state"]["S"], "running");
        assert_eq!(attributes["attempts"]["N"], "1");
        assert_eq!(attributes["leaseExpiresAt"]["N"], "61000");
        assert_eq!(attributes["claimToken"]["S"], "a-delivery");
        assert_eq!(attributes["jobType"]["S"], "primes");
    }

    #[test]
    fn a_claim_without_its_values_is_refused() {
        let request = json!({"Key": {"jobId": {"S": JobId::random().to_string()}}, "ReturnValues": "ALL_NEW"});
        let response = respond(
            &Operation::dynamodb("UpdateItem"),
            request.to_string().as_bytes(),
        );
        assert_eq!(response.status, 400);
    }

    #[test]
    fn batch_deletes_succeed_entry_by_entry_and_unknown_calls_are_refused() {
        let request = json!({"Entries": [{"Id": "0"}, {"Id": "1"}]});
        let response = respond(
            &Operation::sqs("DeleteMessageBatch"),
            request.to_string().as_bytes(),
        );
        assert_eq!(
            response.body,
            json!({"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []})
        );
        let hides = respond(
            &Operation::sqs("ChangeMessageVisibilityBatch"),
            request.to_string().as_bytes(),
        );
        assert_eq!(hides, response, "the claims' hides too");
        assert_eq!(respond(&Operation::dynamodb("Scan"), b"{}").status, 400);
    }
}
