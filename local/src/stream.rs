//! The local stand-in for Lambda's DynamoDB Streams event source mapping:
//! [`StreamReader`] reads the jobs table's stream from its oldest record
//! (`TRIM_HORIZON`, so a restarted runner misses nothing; the notifier
//! drops what it has already delivered) and hands out each batch as the
//! event Lambda would build, `{"Records": [...]}` in DynamoDB JSON. A batch
//! comes again until it is [`advance`](StreamReader::advance)d past, as
//! the mapping retries a batch whose invocation failed.
//!
//! Deployed, none of this runs: Lambda reads the stream.

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jobline_aws::sdk_error;
use jobline_core::error::BoxError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The most records one batch holds (the mapping's `BatchSize`).
pub const STREAM_BATCH: i32 = 100;

/// Why the stream could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the jobs table's stream failed: {operation}: {source}")]
pub struct StreamError {
    operation: &'static str,
    #[source]
    source: BoxError,
}

fn failed(operation: &'static str) -> impl FnOnce(BoxError) -> StreamError {
    move |source| StreamError { operation, source }
}

/// Reads one table's stream, shard by shard.
#[derive(Debug)]
pub struct StreamReader {
    client: Client,
    stream_arn: String,
    region: String,
    /// Each open shard's next iterator, `None` until first read.
    shards: HashMap<String, Option<String>>,
    /// The shard and iterator of the batch handed out and not yet advanced past.
    pending: Option<(String, Option<String>)>,
}

impl StreamReader {
    /// The reader of `table`'s latest stream.
    pub async fn for_table(
        dynamodb: &aws_sdk_dynamodb::Client,
        client: Client,
        table: &str,
    ) -> Result<Self, StreamError> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| failed("DescribeTable")(sdk_error(e)))?;
        let stream_arn = described
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| failed("DescribeTable")("the table has no stream".into()))?;
        let region = stream_arn.split(':').nth(3).unwrap_or_default().to_owned();
        Ok(Self {
            client,
            stream_arn,
            region,
            shards: HashMap::new(),
            pending: None,
        })
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The next batch of records, as Lambda's event; `None` when no shard
    /// has a new record. The same batch comes again until
    /// [`advance`](Self::advance).
    pub async fn next_batch(&mut self) -> Result<Option<Value>, StreamError> {
        if self.shards.is_empty() {
            self.discover().await?;
        }
        let shard_ids: Vec<String> = self.shards.keys().cloned().collect();
        for shard in shard_ids {
            let iterator = match self.shards.get(&shard).cloned().flatten() {
                Some(iterator) => iterator,
                None => self.first_iterator(&shard).await?,
            };
            self.shards.insert(shard.clone(), Some(iterator.clone()));
            let output = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(STREAM_BATCH)
                .send()
                .await
                .map_err(|e| failed("GetRecords")(sdk_error(e)))?;
            let next = output.next_shard_iterator.clone();
            let records = output.records.unwrap_or_default();
            if records.is_empty() {
                self.move_on(&shard, next);
                continue;
            }
            self.pending = Some((shard, next));
            let records: Vec<Value> = records.iter().map(|r| self.lambda_record(r)).collect();
            return Ok(Some(json!({ "Records": records })));
        }
        Ok(None)
    }

    /// Moves past the batch [`next_batch`](Self::next_batch) last handed out.
    pub fn advance(&mut self) {
        if let Some((shard, next)) = self.pending.take() {
            self.move_on(&shard, next);
        }
    }

    /// A shard's next iterator; a closed shard (no next) is done with, and
    /// when all are, the stream's shards are listed again.
    fn move_on(&mut self, shard: &str, next: Option<String>) {
        match next {
            Some(next) => {
                self.shards.insert(shard.to_owned(), Some(next));
            }
            None => {
                self.shards.remove(shard);
            }
        }
    }

    async fn discover(&mut self) -> Result<(), StreamError> {
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| failed("DescribeStream")(sdk_error(e)))?;
        for shard in described
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default()
        {
            if let Some(id) = shard.shard_id {
                self.shards.entry(id).or_insert(None);
            }
        }
        Ok(())
    }

    async fn first_iterator(&self, shard: &str) -> Result<String, StreamError> {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| failed("GetShardIterator")(sdk_error(e)))?
            .shard_iterator
            .ok_or_else(|| failed("GetShardIterator")("no iterator".into()))
    }

    /// One record as Lambda's event has it.
    fn lambda_record(&self, record: &Record) -> Value {
        let change = record.dynamodb.as_ref();
        let image = |image: Option<&HashMap<String, AttributeValue>>| image.map(image_json);
        let mut dynamodb = Map::new();
        if let Some(change) = change {
            for (name, value) in [
                (
                    "ApproximateCreationDateTime",
                    change
                        .approximate_creation_date_time
                        .map(|at| Value::from(at.secs())),
                ),
                ("Keys", image(change.keys.as_ref())),
                ("NewImage", image(change.new_image.as_ref())),
                ("OldImage", image(change.old_image.as_ref())),
                (
                    "SequenceNumber",
                    change.sequence_number.clone().map(Value::from),
                ),
                ("SizeBytes", change.size_bytes.map(Value::from)),
                (
                    "StreamViewType",
                    change
                        .stream_view_type
                        .as_ref()
                        .map(|v| Value::from(v.as_str())),
                ),
            ] {
                if let Some(value) = value {
                    dynamodb.insert(name.to_owned(), value);
                }
            }
        }
        json!({
            "eventID": record.event_id,
            "eventName": record.event_name.as_ref().map(|n| n.as_str()),
            "eventVersion": record.event_version,
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        })
    }
}

fn image_json(image: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        image
            .iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect(),
    )
}

/// One attribute value in DynamoDB JSON (`{"S": "..."}`, `{"N": "1"}`...).
fn attribute_json(value: &AttributeValue) -> Value {
    let bytes = |b: &aws_sdk_dynamodbstreams::primitives::Blob| STANDARD.encode(b.as_ref());
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::B(b) => json!({ "B": bytes(b) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(bytes).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        _ => Value::Null,
    }
}
