//! Creates the table and queues for local runs and tests (and, in
//! `schedules.rs`, the schedules table and the schedule group; in `bucket.rs`, the
//! results bucket and its lifecycle rules), with the settings
//! `template.yaml` deploys (a test reads the template and checks that they
//! match, so local and deployed cannot drift).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use jobline_aws::sdk_error;
use jobline_core::error::BoxError;
use jobline_core::limits::QueueSettings;
use jobline_dynamodb::{
    CREATED_ATTRIBUTE, DUE_ATTRIBUTE, DUE_INDEX, FINISHED_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE,
    KEY_ATTRIBUTE, OWNER_ATTRIBUTE, OWNER_INDEX, SHARD_ATTRIBUTE, STATE_INDEX,
    STATE_SHARD_ATTRIBUTE, TTL_ATTRIBUTE, WEBHOOK_INDEX,
};
use std::collections::HashMap;

mod bucket;
mod schedules;

pub use bucket::{create_bucket, lifecycle_rules};
pub use schedules::{
    callers_table_name, create_callers_table, create_schedule_group, create_schedules_table,
    local_arn, schedule_group_name, schedules_table_name,
};

/// The URLs of a created queue pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    pub queue_url: String,
    pub dlq_url: String,
}

pub(crate) fn failed(resource: &str) -> impl FnOnce(BoxError) -> ProvisionError + '_ {
    move |source| ProvisionError {
        resource: resource.to_owned(),
        source,
    }
}

/// Attribute `attribute` of table `table`'s keys, of `kind`.
pub(crate) fn attribute_definition(
    table: &str,
    attribute: &str,
    kind: ScalarAttributeType,
) -> Result<AttributeDefinition, ProvisionError> {
    AttributeDefinition::builder()
        .attribute_name(attribute)
        .attribute_type(kind)
        .build()
        .map_err(|e| failed(table)(sdk_error(e)))
}

/// Key element `attribute` of table (or index) `table`, of `kind`.
pub(crate) fn key_element(
    table: &str,
    attribute: &str,
    kind: KeyType,
) -> Result<KeySchemaElement, ProvisionError> {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(kind)
        .build()
        .map_err(|e| failed(table)(sdk_error(e)))
}

/// What `CreateTable` of `table` came to: a table that exists already is
/// left as it is.
pub(crate) fn created_or_existing<T>(
    table: &str,
    created: Result<T, SdkError<CreateTableError, HttpResponse>>,
) -> Result<(), ProvisionError> {
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(failed(table)(sdk_error(e))),
    }
}

/// Turns on point-in-time recovery of table `name`, as the template does.
pub(crate) async fn enable_recovery(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|e| failed(name)(sdk_error(e)))?,
        )
        .send()
        .await
        .map_err(|e| failed(name)(sdk_error(e)))?;
    Ok(())
}

/// Creates the jobs table (on-demand, TTL on `expiresAt`, point-in-time
/// recovery, encrypted, the sparse due index of unfinished jobs, the index
/// of each caller's jobs, the index of all jobs by state and the index of
/// webhooks owed, all keys only),
/// unless it exists.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    let built = |e| failed(name)(sdk_error(e));
    let attribute = |attribute: &str, kind| attribute_definition(name, attribute, kind);
    let key = |attribute: &str, kind| key_element(name, attribute, kind);
    let keys_only_index = |name: &str, partition: &str, sort: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key(sort, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(built)
    };
    let due_index = keys_only_index(DUE_INDEX, SHARD_ATTRIBUTE, DUE_ATTRIBUTE)?;
    let owner_index = keys_only_index(OWNER_INDEX, OWNER_ATTRIBUTE, CREATED_ATTRIBUTE)?;
    let state_index = keys_only_index(STATE_INDEX, STATE_SHARD_ATTRIBUTE, CREATED_ATTRIBUTE)?;
    let webhook_index = keys_only_index(WEBHOOK_INDEX, HOOK_SHARD_ATTRIBUTE, FINISHED_ATTRIBUTE)?;
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(KEY_ATTRIBUTE, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(SHARD_ATTRIBUTE, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(DUE_ATTRIBUTE, ScalarAttributeType::N)?)
        .attribute_definitions(attribute(OWNER_ATTRIBUTE, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(CREATED_ATTRIBUTE, ScalarAttributeType::N)?)
        .attribute_definitions(attribute(STATE_SHARD_ATTRIBUTE, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(HOOK_SHARD_ATTRIBUTE, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(FINISHED_ATTRIBUTE, ScalarAttributeType::N)?)
        .key_schema(key(KEY_ATTRIBUTE, KeyType::Hash)?)
        .global_secondary_indexes(due_index)
        .global_secondary_indexes(owner_index)
        .global_secondary_indexes(state_index)
        .global_secondary_indexes(webhook_index)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(built)?,
        )
        .send()
        .await;
    created_or_existing(name, created)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| failed(name)(sdk_error(e)))?,
        )
        .send()
        .await
        .map_err(|e| failed(name)(sdk_error(e)))?;
    enable_recovery(client, name).await
}

/// Creates the queue `name` and its DLQ `name-dlq`, with the redrive policy
/// on the queue and a redrive-allow policy on the DLQ that admits only it.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    settings: QueueSettings,
) -> Result<Queues, ProvisionError> {
    let dlq_name = format!("{name}-dlq");
    let dlq_url = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            settings.dlq_retention_secs.to_string(),
        )
        .send()
        .await
        .map_err(|e| failed(&dlq_name)(sdk_error(e)))?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": settings.max_receive_count,
    });
    let queue_url = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout_secs.to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            settings.retention_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| failed(name)(sdk_error(e)))?
        .queue_url
        .unwrap_or_default();
    let allow = serde_json::json!({
        "redrivePermission": "byQueue",
        "sourceQueueArns": [queue_arn(client, &queue_url).await?],
    });
    client
        .set_queue_attributes()
        .queue_url(&dlq_url)
        .attributes(QueueAttributeName::RedriveAllowPolicy, allow.to_string())
        .send()
        .await
        .map_err(|e| failed(&dlq_name)(sdk_error(e)))?;
    Ok(Queues { queue_url, dlq_url })
}

/// All attributes of a queue, by name.
pub async fn queue_attributes(
    client: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<HashMap<String, String>, ProvisionError> {
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| failed(url)(sdk_error(e)))?;
    Ok(output
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect()
        })
        .unwrap_or_default())
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, ProvisionError> {
    queue_attributes(client, url)
        .await?
        .remove("QueueArn")
        .ok_or_else(|| failed(url)("the queue has no QueueArn attribute".into()))
}

/// The notifier's queues that go with resources named `name`.
pub fn notify_queue_name(name: &str) -> String {
    format!("{name}-notify")
}

/// Creates the secret `name-webhook-master` holding a random 64-character
/// master key (from Secrets Manager's `GetRandomPassword`, as the
/// template's `GenerateSecretString` makes it), unless it exists; returns
/// its ARN.
pub async fn create_webhook_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
) -> Result<String, ProvisionError> {
    let secret = format!("{name}-webhook-master");
    let key = client
        .get_random_password()
        .password_length(64)
        .exclude_punctuation(true)
        .send()
        .await
        .map_err(|e| failed(&secret)(sdk_error(e)))?
        .random_password
        .unwrap_or_default();
    match client
        .create_secret()
        .name(&secret)
        .secret_string(key)
        .send()
        .await
    {
        Ok(created) => Ok(created.arn.unwrap_or(secret)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            let described = client
                .describe_secret()
                .secret_id(&secret)
                .send()
                .await
                .map_err(|e| failed(&secret)(sdk_error(e)))?;
            Ok(described.arn.unwrap_or(secret))
        }
        Err(e) => Err(failed(&secret)(sdk_error(e))),
    }
}

/// The results bucket that goes with resources named `name`.
pub fn bucket_name(name: &str) -> String {
    format!("{}-results", name.to_ascii_lowercase())
}

/// Deletes a table and queue pair made by the functions above.
pub async fn delete_all(
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    table: &str,
    queues: &Queues,
) -> Result<(), ProvisionError> {
    dynamodb
        .delete_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| failed(table)(sdk_error(e)))?;
    for url in [&queues.queue_url, &queues.dlq_url] {
        sqs.delete_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| failed(url)(sdk_error(e)))?;
    }
    Ok(())
}

/// Errors creating local or test resources.
#[derive(Debug, thiserror::Error)]
#[error("provisioning {resource} failed: {source}")]
pub struct ProvisionError {
    pub resource: String,
    #[source]
    pub source: BoxError,
}
