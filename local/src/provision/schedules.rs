//! The per-caller resources, as `template.yaml` deploys them: the
//! schedules table (`SCHEDULES_TABLE`), the schedule group every timer
//! lives in (`SCHEDULE_GROUP`), and the callers table (`CALLERS_TABLE`),
//! where each caller's unfinished jobs are counted.

use super::{
    ProvisionError, attribute_definition, created_or_existing, enable_recovery, failed, key_element,
};
use jobline_aws::sdk_error;

/// The schedule group that goes with resources named `name`, as the
/// template names it (`${AWS::StackName}-jobs`): the stack's timers, one
/// EventBridge Scheduler schedule each.
pub fn schedule_group_name(name: &str) -> String {
    format!("{name}-jobs")
}

/// Creates the schedule group `name`, unless it exists; returns its ARN.
/// It looks first: the emulator's `CreateScheduleGroup` replaces an existing
/// group, schedules and all, where EventBridge Scheduler answers
/// `ConflictException` (taken as "exists" too, should one be created in
/// between).
pub async fn create_schedule_group(
    client: &aws_sdk_scheduler::Client,
    name: &str,
) -> Result<String, ProvisionError> {
    let existing = || async {
        match client.get_schedule_group().name(name).send().await {
            Ok(group) => Ok(Some(group.arn.unwrap_or_else(|| name.to_owned()))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(failed(name)(sdk_error(e))),
        }
    };
    if let Some(arn) = existing().await? {
        return Ok(arn);
    }
    match client.create_schedule_group().name(name).send().await {
        Ok(created) => Ok(created.schedule_group_arn),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conflict_exception()) =>
        {
            existing()
                .await?
                .ok_or_else(|| failed(name)("the schedule group exists yet was not found".into()))
        }
        Err(e) => Err(failed(name)(sdk_error(e))),
    }
}

/// The schedules table that goes with resources named `name`.
pub fn schedules_table_name(name: &str) -> String {
    format!("{name}-schedules")
}

/// Creates the schedules table `name` as `template.yaml` deploys it
/// (`SCHEDULES_TABLE`): on demand, partition key `owner`, sort key
/// `scheduleId` (both strings), encrypted, point-in-time recovery, no
/// index, stream or TTL; an existing one is left as it is (its recovery
/// set again).
pub async fn create_schedules_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    use aws_sdk_dynamodb::types::{BillingMode, KeyType, ScalarAttributeType, SseSpecification};
    use jobline_dynamodb::schedules::item::{OWNER_ATTRIBUTE, SCHEDULE_ID_ATTRIBUTE};
    let attribute = |attribute: &str| attribute_definition(name, attribute, ScalarAttributeType::S);
    let key = |attribute: &str, kind| key_element(name, attribute, kind);
    let created = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(OWNER_ATTRIBUTE)?)
        .attribute_definitions(attribute(SCHEDULE_ID_ATTRIBUTE)?)
        .key_schema(key(OWNER_ATTRIBUTE, KeyType::Hash)?)
        .key_schema(key(SCHEDULE_ID_ATTRIBUTE, KeyType::Range)?)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await;
    created_or_existing(name, created)?;
    enable_recovery(dynamodb, name).await
}

/// The callers table that goes with resources named `name`.
pub fn callers_table_name(name: &str) -> String {
    format!("{name}-callers")
}

/// Creates the callers table `name` as `template.yaml` deploys it
/// (`CALLERS_TABLE`): on demand, partition key `owner`, encrypted, no
/// index, stream or TTL; an existing one is left as it is.
pub async fn create_callers_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    use aws_sdk_dynamodb::types::{BillingMode, KeyType, ScalarAttributeType, SseSpecification};
    use jobline_dynamodb::callers::OWNER_KEY;
    let created = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute_definition(
            name,
            OWNER_KEY,
            ScalarAttributeType::S,
        )?)
        .key_schema(key_element(name, OWNER_KEY, KeyType::Hash)?)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await;
    created_or_existing(name, created)
}

/// An ARN in the emulator's account and region for a resource the local
/// stack names but does not create (the fire function, the scheduler's
/// role): what a timer's target holds.
pub fn local_arn(service: &str, resource: &str) -> String {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let region = if service == "iam" {
        String::new()
    } else {
        region
    };
    format!("arn:aws:{service}:{region}:123456789012:{resource}")
}
